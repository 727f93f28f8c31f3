"""``appliance tui``: the operator console (``tui.app``), attached to the running daemon."""

from __future__ import annotations

import asyncio

from appliance.control.client import DEFAULT_SOCKET, ControlClient


def register(sub) -> None:
    p = sub.add_parser("tui", help="operator console attached to the running daemon",
                       description="Keyboard console for the print floor. Closing it never "
                                   "affects printing.")
    p.add_argument("--socket", metavar="PATH", default=DEFAULT_SOCKET,
                   help=f"daemon control socket (default {DEFAULT_SOCKET})")
    p.set_defaults(func=cmd_tui)


async def _check(path: str) -> None:
    async with ControlClient(path) as c:  # DaemonNotRunning: one line, no screen switch
        await c.call("status")


def cmd_tui(args) -> int:
    asyncio.run(_check(args.socket))
    from tui.app import ConsoleApp

    ConsoleApp(args.socket).run()
    return 0
