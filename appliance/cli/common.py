"""Argument groups the command families share (as OctoPrint's ``cli/common``)."""

from __future__ import annotations

import os

from appliance.config.settings import DEFAULT_CONFIG_PATH
from appliance.control.protocol import DEFAULT_SOCKET

#: Every command finds appliance.toml the same way: --config, else $APPLIANCE_CONFIG, else this.
CONFIG_ENV = "APPLIANCE_CONFIG"
CONFIG_HELP = f"appliance.toml (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG_PATH})"


def default_config() -> str:
    return os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH


def config_arg(p, what: str = "") -> None:
    """``--config PATH`` with the one default every command shares."""
    p.add_argument("--config", metavar="PATH", default=None, type=str,
                   help=CONFIG_HELP + (f"; {what}" if what else ""))


def config_path(value: str | None) -> str:
    """The appliance.toml a command reads: ``--config``, else the shared default."""
    return value or default_config()


def socket_arg(p) -> None:
    """``--socket``: where the running daemon listens."""
    p.add_argument("--socket", metavar="PATH", default=DEFAULT_SOCKET,
                   help=f"daemon control socket (default {DEFAULT_SOCKET})")


def floor_args(p, config_help: str = "", profile_help: str = "a hardware profile") -> None:
    """``--config PATH`` or ``--profile TOML``: which floor a command looks at.  Use
    ``floor_of(args)`` to load it."""
    src = p.add_mutually_exclusive_group()
    src.add_argument("--config", metavar="PATH",
                     help=CONFIG_HELP + (f"; {config_help}" if config_help else ""))
    src.add_argument("--profile", metavar="TOML", help=profile_help)
