"""``appliance alerts``: what needs a person on the floor, and acknowledging it.

Lists the running daemon's open alerts (most severe first), with ``--all`` the recently
closed ones too; ``--ack KEY`` closes one, recorded with who and when (``--who``, default
the login name) in the letter's timeline and the daemon's audit.
"""

from __future__ import annotations

import getpass
import json
import time

from appliance.cli.common import socket_arg
from appliance.control.client import call


def register(sub) -> None:
    p = sub.add_parser("alerts", help="open alerts of the running daemon; --ack KEY closes one",
                       description=__doc__.split("\n\n", 1)[1].strip())
    socket_arg(p)
    p.add_argument("--all", action="store_true", help="also the recently closed ones")
    p.add_argument("--ack", metavar="KEY", help="acknowledge (close) the open alert with this key")
    p.add_argument("--who", metavar="NAME", help="who acknowledges it (default: your login name)")
    p.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")
    p.set_defaults(func=cmd_alerts)


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def format_alerts(open_: list[dict], closed: list[dict]) -> str:
    if not open_ and not closed:
        return "no open alerts"
    lines = [f"{len(open_)} open alert(s)" if open_ else "no open alerts"]
    for a in open_:
        lines.append(_line(a))
    if closed:
        lines.append(f"{len(closed)} closed")
        for a in closed:
            by = a.get("closed_by") or "cleared"
            lines.append(_line(a) + f"  (closed {_clock(a.get('closed_at'))} by {by})")
    return "\n".join(lines)


def _clock(t) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t or 0))


def _line(a: dict) -> str:
    times = f" x{a['count']}" if a.get("count", 1) > 1 else ""
    lid = f" letter {a['letter_id']}" if a.get("letter_id") else ""
    return (f"  {a.get('severity', '?'):<8} {_clock(a.get('last_seen') or a.get('t'))}{times:<6} "
            f"{a.get('key')}{lid}\n      {a.get('source')}: {a.get('message')}")


def cmd_alerts(args) -> int:
    if args.ack:
        print(call(args.socket, "ack", key=args.ack, who=args.who or _who()))
        return 0
    got = call(args.socket, "alerts", closed=bool(args.all))
    if args.json:
        print(json.dumps(got, indent=2, default=str))
    else:
        print(format_alerts(got.get("open") or [], got.get("closed") or []))
    return 0
