"""``appliance run``: the long-running daemon against a configured Supplier API.

Under systemd (Type=notify) it reports READY once the pipeline and control socket are up,
pets the watchdog while the event loop is alive, and says STOPPING while it drains.
SIGTERM/SIGINT drain cleanly: what is in flight is recorded and resumed on next start.
SIGHUP (``systemctl reload appliance``) re-reads the floor profile (``runtime.reload``),
saying RELOADING then READY; a profile that does not load is one log line and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from appliance.api.auth import load_private_key
from appliance.config.profile import load_profile
from appliance.config.settings import load_config
from appliance.control.client import DEFAULT_SOCKET
from appliance.core.errors import UserError
from appliance.core.packs import load_packs
from appliance.pipeline.pipeline import PipelineSettings
from appliance.runtime import sdnotify
from appliance.runtime.assemble import Appliance, build
from appliance.runtime.metrics import start_metrics
from appliance.runtime.reload import reload_profile

log = logging.getLogger("appliance")


async def _watchdog(interval: float, healthy) -> None:
    """Pet systemd's watchdog while the loop runs and every supervised task is healthy: a
    task that keeps failing (or a blocked loop) lets systemd restart the daemon."""
    told = False
    while True:
        if healthy():
            sdnotify.notify("WATCHDOG=1")
            told = False
        elif not told:
            told = True
            log.error("a task keeps failing; no longer petting the watchdog, so systemd restarts "
                      "the daemon ('appliance status' shows which task)")
            sdnotify.notify("STATUS=a task keeps failing; waiting for the watchdog to restart")
        await asyncio.sleep(interval)


async def _reloader(wanted: asyncio.Event, config_path: str, app: Appliance, ready: str) -> None:
    """Re-read the profile each time SIGHUP asks; the old one stays on any failure."""
    while True:
        await wanted.wait()
        wanted.clear()
        sdnotify.notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            path = load_config(config_path).profile
            line, refused = await reload_profile(app.pipeline, load_profile(path))
            log.log(logging.WARNING if refused else logging.INFO, "reload: %s", line)
        except UserError as e:
            log.error("reload refused, the floor keeps profile %s: %s", app.pipeline.profile.name, e)
        except Exception:  # never let a reload take the floor down
            log.exception("reload failed, the floor keeps profile %s", app.pipeline.profile.name)
        sdnotify.notify(f"READY=1\nSTATUS={ready} {app.pipeline.profile.name}")


async def run_daemon(config_path: str, socket_path: str = DEFAULT_SOCKET) -> int:
    cfg = load_config(config_path)
    profile = load_profile(cfg.profile)
    if cfg.api.auth == "jwt":
        load_private_key(cfg.api.private_key)  # refuse to start on a missing or exposed key
    settings = PipelineSettings(spool_dir=cfg.spool_dir, poll_interval=cfg.poll_interval,
                                limit=cfg.limit, batch_size=cfg.batch_size,
                                max_pdf_bytes=cfg.api.max_pdf_bytes,
                                stale_after=cfg.stale_after_hours * 3600,
                                spool_retention=cfg.spool_retention_hours * 3600,
                                visibility_timeout=cfg.visibility_timeout,
                                accept_margin=cfg.accept_margin, prove_after=cfg.prove_after,
                                intake=cfg.intake)
    app = build(settings, cfg.api, profile, load_packs(cfg.packs_dir), state_dir=cfg.state_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start(socket_path, max_clients=cfg.max_clients)
    try:  # optional Prometheus endpoint over the pipeline's own figures
        metrics = start_metrics(cfg.metrics, app.pipeline)
    except BaseException:
        await app.stop()
        raise
    daily = asyncio.create_task(app.mi.scheduler(), name="mi-daily")
    log.info("running: %s, profile %s", cfg.api.base_url, profile.name)
    ready = f"printing for {cfg.api.base_url} with profile"
    sdnotify.notify(f"READY=1\nSTATUS={ready} {profile.name}")
    reload_wanted = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, reload_wanted.set)
    reloader = asyncio.create_task(_reloader(reload_wanted, config_path, app, ready), name="reload")
    interval = sdnotify.watchdog_interval()
    dog = asyncio.create_task(_watchdog(interval, app.pipeline.supervisor.healthy)) if interval else None
    try:
        await stop.wait()
    finally:
        log.info("draining")
        sdnotify.notify("STOPPING=1")
        if dog:
            dog.cancel()
        daily.cancel()
        reloader.cancel()
        loop.remove_signal_handler(signal.SIGHUP)
        if metrics:
            await asyncio.to_thread(metrics.stop)
        await app.stop()
    return 0
