"""Blocking CUPS queries for the command line: ``appliance doctor`` and ``appliance printers``.

These run once from the CLI's own thread, so they call pycups directly (one connection
per server) instead of through the driver's worker threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.core.errors import UserError
from drivers.cups.ipp import PRINTER_STOPPED, PrinterFacts, alert_worthy, device_state, reasons_of
from drivers.cups.session import NOT_FOUND, CupsRefused, CupsUnavailable, call, connect, describe_server

PRINTER_ATTRS = ["printer-state", "printer-state-reasons", "printer-is-accepting-jobs",
                 "printer-state-message", "queued-job-count", "device-uri"]


@dataclass
class QueueStatus:
    server: str
    queue: str
    state: str  # idle | busy | stopped | offline (as the driver would report it)
    detail: str = ""
    found: bool = False
    enabled: bool = False
    accepting: bool = False
    queued: int = 0
    device_uri: str = ""
    reasons: list[str] = field(default_factory=list)


def cups_printers(profile) -> list:
    return [p for p in profile.printers if p.driver == "cups"]


def queue_of(spec) -> tuple[str, str]:
    return spec.settings.get("server", ""), spec.settings.get("queue") or spec.name


def queue_status(conn, server: str, queue: str) -> QueueStatus:
    try:
        a = call(conn, lambda c: c.getPrinterAttributes(queue, requested_attributes=PRINTER_ATTRS))
    except CupsRefused as e:
        if e.status == NOT_FOUND:
            return QueueStatus(server, queue, "offline", "queue not found")
        return QueueStatus(server, queue, "offline", str(e))
    facts = PrinterFacts(a.get("printer-state"), reasons_of(a.get("printer-state-reasons")),
                         bool(a.get("printer-is-accepting-jobs", True)), a.get("printer-state-message", ""))
    queued = int(a.get("queued-job-count", 0))
    state, detail = device_state(reachable=True, exists=True, paused=False, stalled=False,
                                 busy=queued > 0, facts=facts)
    return QueueStatus(server, queue, state, detail, True, facts.state != PRINTER_STOPPED, facts.accepting,
                       queued, a.get("device-uri", ""), [r for r in facts.reasons if r != "none"])


def fleet_status(profile) -> dict[str, QueueStatus]:
    """Live status of every CUPS printer in the profile, by printer name."""
    out: dict[str, QueueStatus] = {}
    by_server: dict[str, list] = {}
    for spec in cups_printers(profile):
        by_server.setdefault(queue_of(spec)[0], []).append(spec)
    for server, specs in by_server.items():
        try:
            conn = connect(server)
        except CupsUnavailable as e:
            for spec in specs:
                out[spec.name] = QueueStatus(server, queue_of(spec)[1], "offline", f"CUPS does not answer: {e}")
            continue
        for spec in specs:
            try:
                out[spec.name] = queue_status(conn, server, queue_of(spec)[1])
            except CupsUnavailable as e:
                out[spec.name] = QueueStatus(server, queue_of(spec)[1], "offline", f"CUPS does not answer: {e}")
    return out


def _names_visible(conn) -> bool | None:
    """Can this client read job names (needed to match jobs to letters after a restart)?
    None when CUPS holds no job to tell by."""
    jobs = call(conn, lambda c: c.getJobs(which_jobs="all", requested_attributes=["job-id", "job-name"]))
    if not jobs:
        return None
    return any("job-name" in a for a in jobs.values())


def doctor_checks(profile, config=None) -> list:
    """One Check per CUPS server and per queue; each failure names the fix."""
    from appliance.core.checks import Check

    specs = cups_printers(profile)
    if not specs:
        return []
    try:
        from drivers.cups.session import import_cups
        import_cups()
    except UserError as e:
        return [Check(False, "cups driver", str(e))]
    checks = []
    by_server: dict[str, list] = {}
    for spec in specs:
        by_server.setdefault(queue_of(spec)[0], []).append(spec)
    for server, group in by_server.items():
        where = describe_server(server)
        try:
            conn = connect(server)
            visible = _names_visible(conn)
        except (CupsUnavailable, CupsRefused) as e:
            checks.append(Check(False, f"CUPS {where}", f"does not answer ({e}); start cupsd "
                                                       "(systemctl start cups) or fix server = in the profile"))
            continue
        checks.append(Check(True, f"CUPS {where}", "answers"))
        if visible is False:
            checks.append(Check(False, f"CUPS {where}", "hides job names from this client, so a restart cannot "
                                                       "match jobs to letters; add 'JobPrivateValues none' to "
                                                       "<Policy default> in cupsd.conf"))
        for spec in group:
            queue = queue_of(spec)[1]
            subject = f"printer {spec.name}"
            try:
                st = queue_status(conn, server, queue)
            except CupsUnavailable as e:
                checks.append(Check(False, subject, f"CUPS stopped answering ({e})"))
                continue
            if not st.found:
                checks.append(Check(False, subject, f"queue {queue} not found on {where}; create it with "
                                                    f"lpadmin -p {queue} -E -v ipp://PRINTER-ADDRESS/ipp/print "
                                                    "-m everywhere"))
                continue
            if not st.enabled:
                checks.append(Check(False, subject, f"queue {queue} is stopped ({st.detail}); start it with "
                                                    f"cupsenable {queue}"))
            if not st.accepting:
                checks.append(Check(False, subject, f"queue {queue} rejects jobs; accept them with cupsaccept {queue}"))
            for reason in alert_worthy(tuple(r for r in st.reasons if r != "paused")):  # paused = stopped
                checks.append(Check(False, subject, f"queue {queue} reports {reason}; see the printer"))
            if st.enabled and st.accepting:
                checks.append(Check(True, subject, f"queue {queue} on {where}: {st.state}, accepting, "
                                                   f"{st.queued} queued, device {st.device_uri or '?'}"))
    return checks
