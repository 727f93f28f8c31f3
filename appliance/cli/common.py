"""Argument groups the command families share (as OctoPrint's ``cli/common``)."""

from __future__ import annotations

from appliance.config.settings import DEFAULT_CONFIG_PATH
from appliance.control.protocol import DEFAULT_SOCKET


def socket_arg(p) -> None:
    """``--socket``: where the running daemon listens."""
    p.add_argument("--socket", metavar="PATH", default=DEFAULT_SOCKET,
                   help=f"daemon control socket (default {DEFAULT_SOCKET})")


def floor_args(p, config_help: str = f"appliance.toml (default {DEFAULT_CONFIG_PATH})",
               profile_help: str = "a hardware profile") -> None:
    """``--config PATH`` or ``--profile TOML``: which floor a command looks at."""
    src = p.add_mutually_exclusive_group()
    src.add_argument("--config", metavar="PATH", help=config_help)
    src.add_argument("--profile", metavar="TOML", help=profile_help)
