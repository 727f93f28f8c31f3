"""Optional Prometheus endpoint (``[metrics] listen = "127.0.0.1:9464"``; off by default).

Nothing is counted twice: one custom collector reads, at scrape time, the figures the
pipeline already keeps for ``appliance status`` and the console (its snapshot, counters,
the API client's call counts, the limiter, the store).  Those live on the event loop, so the
scrape (prometheus-client's HTTP server, in its own thread) asks the loop for one consistent
reading and builds the metric families from that plain dict.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from appliance.config.settings import MetricsSettings, parse_listen

log = logging.getLogger("appliance.metrics")

FINAL = ("DISPATCHED", "REJECTED", "FAILED", "CANCELLED")
#: How long a scrape waits for the event loop before answering with what it has (nothing).
READ_TIMEOUT = 5.0


def reading(pipe) -> dict[str, Any]:
    """Everything a scrape shows, read on the event loop (consistent, no locks needed)."""
    snap = pipe.snapshot()
    limiter = pipe.client.limiter
    return {
        "snapshot": snap,
        "stages": dict(Counter(r["stage"] for r in pipe.store.in_flight())),
        "api": dict(pipe.client.stats),
        "limiter": {"tokens": limiter.tokens, "burst": limiter.current_burst,
                    "rate": float(limiter.current), "paused": limiter.paused,
                    "penalties": limiter.penalties, "decreases": limiter.decreases},
    }


class PipelineCollector:
    """A prometheus-client collector over ``reading(pipe)``."""

    def __init__(self, pipe, loop: asyncio.AbstractEventLoop):
        self.pipe, self.loop = pipe, loop

    def _read(self) -> dict[str, Any] | None:
        async def read() -> dict[str, Any]:
            return reading(self.pipe)

        try:
            return asyncio.run_coroutine_threadsafe(read(), self.loop).result(READ_TIMEOUT)
        except Exception as e:  # loop stopping or blocked: answer without figures, say why once
            log.warning("metrics: no reading from the pipeline (%s)", type(e).__name__)
            return None

    def describe(self):
        return []  # figures are only known at scrape time

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        r = self._read()
        up = GaugeMetricFamily("appliance_up", "1 when the pipeline answered this scrape, else 0")
        up.add_metric([], 1 if r else 0)
        yield up
        if r is None:
            return
        snap, counters = r["snapshot"], r["snapshot"].get("counters", {})

        def gauge(name, doc, labels=(), rows=()):
            g = GaugeMetricFamily(name, doc, labels=list(labels))
            for lab, v in rows:
                g.add_metric(list(lab), float(v))
            return g

        def counter(name, doc, labels=(), rows=()):
            c = CounterMetricFamily(name, doc, labels=list(labels))
            for lab, v in rows:
                c.add_metric(list(lab), float(v))
            return c

        yield gauge("appliance_letters", "Letters known to this box by status (archive included)", ["status"],
                    [((s,), n) for s, n in sorted(snap.get("counts", {}).items())])
        yield gauge("appliance_letters_in_flight", "Letters not final, by working stage", ["stage"],
                    [((s,), n) for s, n in sorted(r["stages"].items())])
        yield counter("appliance_letters_in", "Letters taken from the API since the daemon started",
                      rows=[((), counters.get("listed", 0))])
        yield counter("appliance_letters_out", "Letters that reached a final status since the daemon started",
                      ["status"], [((s,), counters.get(f"status.{s}", 0)) for s in FINAL])
        yield counter("appliance_status_changes", "Status changes recorded since the daemon started",
                      ["status"],
                      [((k[7:],), v) for k, v in sorted(counters.items()) if k.startswith("status.")])
        api = r["api"]
        errors = {k: v for k, v in api.items() if k == "malformed" or k.startswith("error")}
        yield counter("appliance_api_calls", "Supplier API requests sent, by kind", ["kind"],
                      [((k,), v) for k, v in sorted(api.items()) if k not in errors])
        yield counter("appliance_api_errors",
                      "Supplier API requests that failed (kind.answer: an HTTP status, a transport "
                      "error, token) or whose answer broke the contract (malformed)",
                      ["kind"], [((k.removeprefix("error."),), v) for k, v in sorted(errors.items())])
        lim = r["limiter"]
        if lim["tokens"] is not None:
            yield gauge("appliance_api_limiter_tokens", "Requests the rate limiter would let go at once now",
                        rows=[((), lim["tokens"])])
        yield gauge("appliance_api_limiter_burst", "Requests the limiter lets go at once when full (scaled)",
                    rows=[((), lim["burst"])])
        yield gauge("appliance_api_limiter_paused", "1 while a Retry-After is waited out",
                    rows=[((), 1 if lim["paused"] else 0)])
        yield gauge("appliance_api_limiter_rate", "Requests per second the limiter allows now (AIMD)",
                    rows=[((), lim["rate"])])
        yield counter("appliance_api_throttled", "HTTP 429 answers (each slows the limiter)",
                      rows=[((), lim["penalties"])])
        yield counter("appliance_api_limiter_decreases", "Times 429s made the limiter cut its rate",
                      rows=[((), lim["decreases"])])
        upd = snap.get("updates", {})
        yield gauge("appliance_outbox_updates", "Status updates not yet proven applied at the API, by state",
                    ["state"], [((k,), upd.get(k, 0)) for k in ("unsent", "sent", "refused")])
        yield gauge("appliance_outbox_depth", "Status updates in the outbox (unsent, sent or refused)",
                    rows=[((), snap.get("outbox", 0))])
        yield gauge("appliance_outbox_oldest_unproven_seconds",
                    "Age of the oldest update answered 202 and not yet read back applied",
                    rows=[((), upd.get("unproven_age", 0.0))])
        alerts = snap.get("alert_counts") or {}
        yield gauge("appliance_alerts_open", "Open alerts by severity", ["severity"],
                    [((sev,), alerts.get(sev, 0)) for sev in ("critical", "warning", "info")])
        yield gauge("appliance_held", "Letters waiting for an operator", rows=[((), snap.get("held", 0))])
        devices = snap.get("devices", {})
        yield gauge("appliance_device_state", "1 for each device's current state",
                    ["device", "family", "state"],
                    [((n, d.get("family", ""), str(d.get("state"))), 1) for n, d in sorted(devices.items())])
        yield gauge("appliance_device_load", "Letters handed to a device and not yet done", ["device"],
                    [((n,), d.get("load", 0)) for n, d in sorted(devices.items())])
        yield gauge("appliance_device_queue_depth", "Work a device's driver holds", ["device"],
                    [((n,), d.get("queue_depth", 0)) for n, d in sorted(devices.items())])
        yield gauge("appliance_device_stock", "Consumables as a device last reported them",
                    ["device", "item"],
                    [((n, k[6:]), v) for n, d in sorted(devices.items())
                     for k, v in sorted((d.get("counters") or {}).items()) if k.startswith("stock_")])
        intake = snap.get("intake", {})
        yield counter("appliance_intake_worker_restarts",
                      "Intake worker processes that died or were killed mid-task (each replaced)",
                      rows=[((), intake.get("worker_deaths", 0))])
        yield counter("appliance_intake_pool_rebuilds", "Whole intake worker pools replaced",
                      rows=[((), intake.get("pool_rebuilds", 0))])
        yield gauge("appliance_intake_busy", "Intake workers busy now", rows=[((), intake.get("busy", 0))])
        yield counter("appliance_task_restarts", "Supervised tasks restarted after a failure", ["task"],
                      [((t["name"],), t["restarts"]) for t in snap.get("tasks", [])])
        yield gauge("appliance_healthy", "1 while no supervised task keeps failing",
                    rows=[((), 1 if snap.get("healthy", True) else 0)])
        dl = snap.get("deadlines") or {}
        yield gauge("appliance_deadlines_at_risk", "Letters that will miss their dispatch-by at the current rate",
                    rows=[((), dl.get("at_risk", 0))])
        yield gauge("appliance_deadlines_missed", "Letters that missed their dispatch-by, by day (the "
                    "deadline's) and pack, for the last 14 days kept", ["day", "pack"],
                    [((day, pack), n) for day, packs in sorted((dl.get("missed") or {}).items())
                     for pack, n in sorted(packs.items())])
        yield counter("appliance_deadlines_missed_total", "Letters that missed their dispatch-by (all days kept)",
                      rows=[((), dl.get("missed_total", 0))])


class MetricsServer:
    def __init__(self, server, thread, address: tuple[str, int]):
        self._server, self._thread, self.address = server, thread, address

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics(settings: MetricsSettings | None, pipe) -> MetricsServer | None:
    """Serve /metrics for ``pipe`` at ``settings.listen``; None when it is not set.  Call
    from the event loop's thread.  An address that cannot be opened is one UserError line."""
    if settings is None or not settings.listen:
        return None
    from prometheus_client import CollectorRegistry, start_http_server

    from appliance.core.errors import UserError

    try:
        host, port = parse_listen(settings.listen)
    except ValueError as e:
        raise UserError(f"[metrics] listen: {e}") from None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(pipe, asyncio.get_running_loop()))
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as e:
        raise UserError(f"[metrics] listen: cannot serve on {host}:{port} ({e.strerror or e}); "
                        "pick a free port or fix the address") from None
    log.info("metrics at http://%s:%d/metrics", host, server.server_port)
    return MetricsServer(server, thread, (host, server.server_port))
