"""``appliance run``: the long-running daemon (``appliance.runtime.daemon``).

What stops a start (a file where a folder should be, a folder owned by another user, a
missing key, a bad profile) ends as ONE line on stderr naming the path or setting and the
fix, exit status 2 -- never a traceback.  Anything unforeseen is logged with its traceback
(that is a bug to report) and the command still ends with one line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
from pathlib import Path

from appliance.cli.common import config_arg, config_path, socket_arg
from appliance.core.errors import UserError
from appliance.runtime.daemon import run_daemon
from appliance.runtime.logs import LEVELS, setup_logging

log = logging.getLogger("appliance")


def register(sub) -> None:
    r = sub.add_parser("run", help="run the appliance daemon (poll, print, report) until SIGTERM",
                       description="The long-running daemon. SIGTERM or SIGINT drains cleanly. "
                                   "Run 'appliance doctor' first on a new box.")
    config_arg(r)
    r.add_argument("--log-level", default="info", type=str.lower, choices=LEVELS,
                   help="how much to log (default info; debug also logs every HTTP request)")
    socket_arg(r)
    r.set_defaults(func=cmd_run)


def _whoami() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _setting_of(path: str, config: str, socket: str) -> str:
    """Which setting names the folder ``path`` is in (best effort; never raises)."""
    if not path:
        return "the paths in the configuration and --socket"
    p = Path(path)
    if p in (Path(socket), Path(socket).parent):
        return "--socket"
    try:
        from appliance.config.settings import load_config

        cfg = load_config(config)
    except Exception:  # the daemon got past loading it; this is only for the wording
        return "[paths] state_dir"
    if p == cfg.spool_dir or cfg.spool_dir in p.parents:
        return "[paths] spool_dir"
    return "[paths] state_dir"


def start_failure(e: OSError, config: str, socket: str) -> str:
    """One line for an OSError that stopped the start: the path, the setting, the fix."""
    path = str(e.filename or "")
    setting = _setting_of(path, config, socket)
    what = f"{path}: " if path else ""
    if isinstance(e, (NotADirectoryError, FileExistsError)):
        return (f"{what}a file is in the way of a folder the appliance needs; move the file away "
                f"or set {setting} elsewhere ('appliance doctor' checks this)")
    if isinstance(e, PermissionError):
        user = _whoami()
        folder = path if not path or Path(path).is_dir() else str(Path(path).parent)
        return (f"{what}permission denied for user {user}; chown -R {user} {folder} (or run as the "
                f"service user, or systemd-tmpfiles --create), or set {setting} elsewhere")
    if isinstance(e, IsADirectoryError):
        return f"{what}is a folder where a file was expected; move it away or fix {setting}"
    return f"{what}{e.strerror or e}; check {setting} ('appliance doctor' checks the set-up)"


def cmd_run(args) -> int:
    setup_logging(args.log_level)
    config = config_path(args.config)
    try:
        return asyncio.run(run_daemon(config, args.socket))
    except UserError:
        raise  # main() prints it as one line
    except OSError as e:
        log.debug("start failed", exc_info=True)  # the traceback, for --log-level debug
        raise UserError(start_failure(e, config, args.socket)) from None
    except Exception as e:  # a bug: keep its traceback in the log, still end with one line
        log.exception("the daemon stopped on an unexpected error")
        raise UserError(f"the daemon stopped on an unexpected error ({type(e).__name__}: {e}); "
                        "the log above has the details") from None
