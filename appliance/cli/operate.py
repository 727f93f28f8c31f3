"""Operator commands that talk to the running daemon over the control socket.

``appliance status``, ``appliance letters``, ``appliance pause|resume|drain DEVICE``,
``appliance reprint ID``, ``appliance retry ID``, ``appliance cancel ID``, ``appliance fail ID --code C | --reason TEXT``,
``appliance return ID --reason R01``, ``appliance resolve ID OUTCOME``.
"""

from __future__ import annotations

import json
import time

from appliance.cli.common import socket_arg
from appliance.control.client import call
from appliance.core.deadlines import deadlines_line
from appliance.core.errors import UserError
from appliance.core.status import RETURN_REASONS, TransitionError, return_reason


def register(sub) -> None:
    p = sub.add_parser("status", help="devices, counts and alerts of the running daemon")
    socket_arg(p)
    p.add_argument("--json", action="store_true", help="print the raw status as JSON")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("letters", help="list letters known to the running daemon")
    socket_arg(p)
    p.add_argument("q", nargs="?", default="", help="part of a letter id")
    for flag in ("group", "specification", "status", "device", "stage"):
        p.add_argument(f"--{flag}")
    p.add_argument("--refused", action="store_true",
                   help="only letters with an update refused by Notify (resolve with retry/handled)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_letters)

    for name, what in (("pause", "stop giving work to a device (it holds its queue)"),
                       ("resume", "let a paused or drained device take work again"),
                       ("drain", "let a device finish its queue but give it nothing new")):
        p = sub.add_parser(name, help=what)
        socket_arg(p)
        p.add_argument("device")
        p.set_defaults(func=cmd_device, action=name)

    p = sub.add_parser("reprint", help="print an ACCEPTED or PRINTED letter again")
    socket_arg(p)
    p.add_argument("id")
    p.set_defaults(func=lambda a: _act(a, "reprint", id=a.id))

    p = sub.add_parser("retry", help="try again: a fetch held at intake, an update refused by "
                                     "Notify, or an unanswered ACCEPTED (prints it here)")
    socket_arg(p)
    p.add_argument("id")
    p.set_defaults(func=lambda a: _act(a, "retry", id=a.id))

    p = sub.add_parser("handled", help="a refused update (or an unanswered ACCEPTED) was dealt "
                                       "with at Notify: drop it, with a note for the timeline")
    socket_arg(p)
    p.add_argument("id")
    p.add_argument("--note", required=True, help="what was done (kept in the letter's timeline)")
    p.set_defaults(func=lambda a: _act(a, "handled", id=a.id, note=a.note))

    p = sub.add_parser("cancel", help="cancel a letter that has not been enclosed")
    socket_arg(p)
    p.add_argument("id")
    p.add_argument("--reason", default=None)
    p.set_defaults(func=lambda a: _act(a, "cancel", id=a.id, reason=a.reason))

    p = sub.add_parser("fail", help="mark a letter FAILED (agreed --code if the profile lists them)")
    socket_arg(p)
    p.add_argument("id")
    p.add_argument("--code", help="an agreed reason code from the profile's [failure_reasons]")
    p.add_argument("--reason", help="reason text (default: the agreed text for --code)")
    p.set_defaults(func=cmd_fail)

    p = sub.add_parser("return", help="record a returned letter (RETURNED with R01-R10)")
    socket_arg(p)
    p.add_argument("id")
    p.add_argument("--reason", required=True, metavar="R01..R10",
                   help="; ".join(f"{k} {v}" for k, v in RETURN_REASONS.items()))
    p.set_defaults(func=cmd_return)

    p = sub.add_parser("resolve", help="settle a piece on operator hold")
    socket_arg(p)
    p.add_argument("id")
    p.add_argument("outcome", choices=["enclosed", "dispatched", "reprint", "fail"])
    p.add_argument("--code", help="with fail: one of the profile's agreed FAILED reason codes")
    p.set_defaults(func=lambda a: _act(a, "resolve", id=a.id, outcome=a.outcome,
                                       **({"code": a.code} if a.code else {})))


def _act(args, cmd: str, **kw) -> int:
    print(call(args.socket, cmd, **kw))
    return 0


def cmd_device(args) -> int:
    return _act(args, args.action, device=args.device)


def cmd_fail(args) -> int:
    if not (args.code or args.reason):
        raise UserError("give --code CODE (an agreed reason) or --reason TEXT")
    kw = {"id": args.id, "reason": args.reason}
    if args.code:
        kw["code"] = args.code
    return _act(args, "fail", **kw)


def cmd_return(args) -> int:
    try:
        code, _ = return_reason(args.reason)
    except TransitionError as e:
        raise UserError(str(e)) from None
    return _act(args, "return", id=args.id, reason=code)


def format_status(s: dict) -> str:
    intake = s.get("intake") or {}
    up = s.get("updates") or {}
    lines = [f"API {'ok' if s.get('api_ok') else 'UNREACHABLE'}   held {s.get('held', 0)}   "
             f"outbox {s.get('outbox', 0)}   intake: {intake.get('running', 0)} fetching, "
             f"{intake.get('waiting_retry', 0)} waiting to retry, "
             f"{intake.get('worker_deaths', 0)} worker(s) replaced",
             f"refused by Notify {up.get('refused', 0)}   updates: {up.get('unsent', 0)} to send, "
             f"{up.get('sent', 0)} sent not yet proven (oldest {up.get('unproven_age', 0):.0f} s)   "
             f"let go {up.get('let_go', 0)}   ACCEPTED lost {up.get('accepted_lost', 0)}"]
    if up.get("refused"):
        lines.append("  see them: appliance letters --refused; then appliance retry ID, or "
                     "appliance handled ID --note TEXT")
    for t in s.get("tasks") or []:
        lines.append(f"TASK {t['name']} {t['state']} after {t['restarts']} failure(s): {t['last_error']}")
    counts = s.get("counts") or {}
    lines.append("letters  " + "  ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    dl = s.get("deadlines")
    if dl:
        lines.append(deadlines_line(dl))
        lines += [f"  at risk {r['id']} ({r['pack']}, by {r['dispatch_by'][11:16]}): {r['why']}"
                  for r in (dl.get("risks") or [])[:5]]
    lines.append(f"{'device':<18} {'family':<9} {'state':<9} {'load':>4} {'queue':>5}")
    for name, d in (s.get("devices") or {}).items():
        lines.append(f"{name:<18} {d.get('family', ''):<9} {d.get('state') or '?':<9} "
                     f"{d.get('load', 0):>4} {d.get('queue_depth', 0):>5}")
    alerts = s.get("alerts") or []  # open ones, most severe first
    if alerts:
        lines.append(f"open alerts {len(alerts)}" + ("  (first 10; appliance alerts lists all)"
                                                     if len(alerts) > 10 else ""))
        for a in alerts[:10]:
            when = time.strftime("%H:%M:%S", time.localtime(a.get("t") or 0))
            lid = f" ({a['letter_id']})" if a.get("letter_id") else ""
            times = f" x{a['count']}" if a.get("count", 1) > 1 else ""
            lines.append(f"  {a.get('severity', 'warning'):<8} {when}{times} {a.get('source')}: "
                         f"{a.get('message')}{lid}")
    return "\n".join(lines)


def cmd_status(args) -> int:
    s = call(args.socket, "status")
    print(json.dumps(s, indent=2, default=str) if args.json else format_status(s))
    return 0


def cmd_letters(args) -> int:
    filt = {k: getattr(args, k) for k in ("group", "specification", "status", "device", "stage")
            if getattr(args, k)}
    if args.refused:
        filt["refused"] = True
    res = call(args.socket, "letters", q=args.q, limit=args.limit, offset=args.offset, **filt)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{'id':<40} {'status':<11} {'stage':<12} {'device':<16} specification")
    for r in res["letters"]:
        print(f"{r['id']:<40} {r.get('status') or '':<11} {r.get('stage') or '':<12} "
              f"{r.get('device') or '':<16} {r.get('specification_id') or ''}")
        if r.get("refused"):
            why = r["refused"]
            print(f"    refused by Notify: {why.get('status')} -> {why.get('http_status')} "
                  f"{str(why.get('detail'))[:100]}")
    shown = len(res["letters"])
    print(f"{shown} of {res['total']} shown" + (" (use --offset/--limit for more)" if shown < res["total"] else ""))
    return 0
