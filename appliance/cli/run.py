"""``appliance run``: the long-running daemon (``appliance.runtime.daemon``)."""

from __future__ import annotations

import asyncio
import logging

from appliance.config.settings import DEFAULT_CONFIG_PATH
from appliance.control.protocol import DEFAULT_SOCKET
from appliance.runtime.daemon import run_daemon
from appliance.runtime.logs import quiet_http_logs


def register(sub) -> None:
    r = sub.add_parser("run", help="run the appliance daemon (poll, print, report) until SIGTERM",
                       description="The long-running daemon. SIGTERM or SIGINT drains cleanly.")
    r.add_argument("--config", metavar="PATH", default=DEFAULT_CONFIG_PATH)
    r.add_argument("--log-level", default="INFO")
    r.add_argument("--socket", metavar="PATH", default=DEFAULT_SOCKET,
                   help=f"control socket for consoles (default {DEFAULT_SOCKET})")
    r.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_http_logs()
    return asyncio.run(run_daemon(args.config, args.socket))
