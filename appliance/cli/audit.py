"""``appliance audit``: per inserter batch, pieces expected, enclosed, diverted, reprinted,
held and outstanding; as a table, JSON or CSV (``--csv FILE``, ``-`` for standard output).

Asks the running daemon over the control socket; with ``--state DIR`` it reads the audit
facts of a stopped appliance's state directory instead.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from appliance.control.client import DEFAULT_SOCKET, call
from appliance.core.errors import UserError
from appliance.pipeline.audit import AuditLog, to_csv


def register(sub) -> None:
    p = sub.add_parser("audit", help="per inserter batch: expected, enclosed, diverted, reprinted, outstanding")
    p.add_argument("--socket", metavar="PATH", default=DEFAULT_SOCKET,
                   help=f"daemon control socket (default {DEFAULT_SOCKET})")
    p.add_argument("--state", metavar="DIR", help="read a stopped appliance's state directory instead")
    p.add_argument("--device", help="only this inserter")
    p.add_argument("--limit", type=int, default=200, help="newest batches shown (default 200)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--csv", metavar="FILE", help="write CSV to FILE ('-' = standard output)")
    out.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audit)


def fetch(args) -> list[dict]:
    if args.state:
        folder = Path(args.state) / "audit"
        if not folder.is_dir():
            raise UserError(f"{folder}: no audit facts here; give the appliance's state directory "
                            "(the one holding hot.json)")
        return AuditLog(folder).rows(args.device, args.limit)
    return call(args.socket, "audit", device=args.device, limit=args.limit)["rows"]


def format_rows(rows: list[dict]) -> str:
    head = f"{'inserter':<14} {'batch':>5} {'expected':>8} {'enclosed':>8} {'diverted':>8} " \
           f"{'reprinted':>9} {'held':>4} {'outstanding':>11}  last"
    lines = [head]
    for r in rows:
        lines.append(f"{r['device']:<14} {r['batch']:>5} {r['expected']:>8} {r['enclosed']:>8} {r['diverted']:>8} "
                     f"{r['reprinted']:>9} {r['held']:>4} {r['outstanding']:>11}  "
                     f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(r['last']))}")
    if not rows:
        lines.append("no inserter batches recorded yet")
    return "\n".join(lines)


def cmd_audit(args) -> int:
    rows = fetch(args)
    if args.csv:
        text = to_csv(rows)
        if args.csv == "-":
            sys.stdout.write(text)
        else:
            try:
                Path(args.csv).write_text(text, encoding="utf-8")
            except OSError as e:
                raise UserError(f"{args.csv}: cannot write the CSV ({e.strerror}); choose another path") from None
            print(f"{len(rows)} batch(es) written to {args.csv}")
    elif args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_rows(rows))
    return 0
