"""``appliance run``: the long-running daemon against a configured Supplier API.

Under systemd (Type=notify) it reports READY once the pipeline and control socket are up,
pets the watchdog while the event loop is alive, and says STOPPING while it drains.
SIGTERM/SIGINT drain cleanly: what is in flight is recorded and resumed on next start.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from appliance.api.auth import load_private_key
from appliance.config.profile import load_profile
from appliance.config.settings import load_config
from appliance.control.client import DEFAULT_SOCKET
from appliance.core.packs import load_packs
from appliance.pipeline.pipeline import PipelineSettings
from appliance.runtime import sdnotify
from appliance.runtime.assemble import build

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
    # --- metrics (issue 16): optional Prometheus endpoint over the pipeline's own figures ---
    from appliance.runtime.metrics import start_metrics
    try:
        metrics = start_metrics(cfg.metrics, app.pipeline)
    except BaseException:
        await app.stop()
        raise
    # --- end metrics ---
    daily = asyncio.create_task(app.mi.scheduler(), name="mi-daily")
    log.info("running: %s, profile %s", cfg.api.base_url, profile.name)
    sdnotify.notify(f"READY=1\nSTATUS=printing for {cfg.api.base_url} with profile {profile.name}")
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
        if metrics:  # metrics (issue 16)
            await asyncio.to_thread(metrics.stop)
        await app.stop()
    return 0
