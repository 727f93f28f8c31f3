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
from appliance.api.client import SupplierClient
from appliance.config.profile import load_profile
from appliance.config.settings import DEFAULT_CONFIG_PATH, load_config
from appliance.control.client import DEFAULT_SOCKET
from appliance.core.packs import load_packs
from appliance.mi.service import MiService, mi_client
from appliance.pipeline.pipeline import Pipeline, PipelineSettings
from appliance.runtime import sdnotify
from appliance.runtime.demo import _start_control
from appliance.runtime.logs import quiet_http_logs
from appliance.store.store import Store

log = logging.getLogger("appliance")


def register(sub) -> None:
    r = sub.add_parser("run", help="run the appliance daemon (poll, print, report) until SIGTERM",
                       description="The long-running daemon. SIGTERM or SIGINT drains cleanly.")
    r.add_argument("--config", metavar="PATH", default=DEFAULT_CONFIG_PATH)
    r.add_argument("--log-level", default="INFO")
    r.add_argument("--socket", metavar="PATH", default=DEFAULT_SOCKET,
                   help=f"control socket for consoles (default {DEFAULT_SOCKET})")
    r.set_defaults(func=cmd_run)


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
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(cfg.state_dir)
    client = SupplierClient(cfg.api)
    settings = PipelineSettings(spool_dir=cfg.spool_dir, poll_interval=cfg.poll_interval,
                                limit=cfg.limit, batch_size=cfg.batch_size,
                                max_pdf_bytes=cfg.api.max_pdf_bytes,
                                stale_after=cfg.stale_after_hours * 3600,
                                spool_retention=cfg.spool_retention_hours * 3600,
                                intake=cfg.intake)
    packs = load_packs(cfg.packs_dir)
    pipe = Pipeline(settings, client, store, profile, packs, state_dir=cfg.state_dir)
    # MI counts every device event from the first one: listen before the pipeline starts.
    mi = MiService(cfg.state_dir, profile.mi, packs, mi_client(cfg.api), alert=pipe.alert)
    pipe.listeners.append(mi.journal)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await pipe.start()
    control = await _start_control(pipe, socket_path, max_clients=cfg.max_clients)
    if control:
        control.mi = mi
    daily = asyncio.create_task(mi.scheduler(), name="mi-daily")
    log.info("running: %s, profile %s", cfg.api.base_url, profile.name)
    sdnotify.notify(f"READY=1\nSTATUS=printing for {cfg.api.base_url} with profile {profile.name}")
    interval = sdnotify.watchdog_interval()
    dog = asyncio.create_task(_watchdog(interval, pipe.supervisor.healthy)) if interval else None
    try:
        await stop.wait()
    finally:
        log.info("draining")
        sdnotify.notify("STOPPING=1")
        if dog:
            dog.cancel()
        daily.cancel()
        if control:
            await control.stop()
        await pipe.stop()
        mi.close()
        await client.aclose()
        await mi.client.aclose()
        store.close()
    return 0


def cmd_run(args) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_http_logs()
    return asyncio.run(run_daemon(args.config, args.socket))
