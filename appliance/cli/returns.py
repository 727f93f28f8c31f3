"""``appliance returns`` (a stack of scanned returns) and ``appliance tracking-import``
(carrier tracking CSV: DELIVERED / FORWARDED).

Every line is checked here first; bad lines are reported by number and never leave this
process.  Good lines go to the running daemon over its control socket; with the daemon
stopped they are written to the state directory (``--config``) and the daemon sends them
when it next starts.  Exit code 0 only when every line was applied.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

from appliance.cli.common import config_arg, config_path
from appliance.control.client import DEFAULT_SOCKET, DaemonNotRunning, call
from appliance.core.errors import UserError
from appliance.core.returns import Parsed, apply_rows, parse_returns, parse_tracking_csv, summary
from appliance.core.status import RETURN_REASONS

CHUNK = 5000  # rows per control request (keeps each request line well under its cap)


def register(sub) -> None:
    p = sub.add_parser("returns", help="record a stack of returned letters (RETURNED, R01-R10)",
                       description="One scanned id per line (with --reason for the whole stack) "
                                   "or 'id,R01' per line. Letters finished long ago are fine.")
    _common(p)
    p.add_argument("--reason", metavar="R01..R10",
                   help="reason for every id without one: " + "; ".join(f"{k} {v}" for k, v in RETURN_REASONS.items()))
    p.set_defaults(func=cmd_returns)

    p = sub.add_parser("tracking-import", help="apply a carrier tracking CSV (DELIVERED, FORWARDED)",
                       description="CSV with a header naming letter_id and status (DELIVERED, "
                                   "FORWARDED, or RETURNED with a reason column R01-R10).")
    _common(p)
    p.set_defaults(func=cmd_tracking)


def _common(p) -> None:
    p.add_argument("file", nargs="?", default="-", help="input file ('-' or omitted: stdin)")
    p.add_argument("--check", action="store_true", help="only check the lines; send nothing")
    p.add_argument("--socket", metavar="PATH", default=DEFAULT_SOCKET,
                   help=f"daemon control socket (default {DEFAULT_SOCKET})")
    config_arg(p, "used when the daemon is not running")


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{name}: no such file; give the path of the scanned list") from None
    except UnicodeDecodeError:
        raise UserError(f"{name}: not UTF-8 text; save it as UTF-8 CSV") from None
    except OSError as e:
        raise UserError(f"{name}: cannot read ({e.strerror})") from None


def apply(parsed: Parsed, socket: str, config: str) -> tuple[list[dict], str]:
    """Apply the good rows; (results, where they went)."""
    rows = [asdict(r) for r in parsed.rows]
    if not rows:
        return [], ""
    try:
        results: list[dict] = []
        for i in range(0, len(rows), CHUNK):
            results += call(socket, "bulk_status", rows=rows[i:i + CHUNK])["results"]
        return results, "sent to the running daemon"
    except DaemonNotRunning:
        pass
    from appliance.config.settings import load_config
    from appliance.store.store import Store

    cfg = load_config(config_path(config))
    with Store(cfg.state_dir) as store:  # locked: refuses if a daemon owns it after all
        results = apply_rows(store, parsed.rows)
        store.flush()
    return results, f"written to {cfg.state_dir}; the daemon sends them when it next starts"


def _report(parsed: Parsed, args) -> int:
    if args.check:
        for bad in parsed.bad:
            print(f"NOT APPLIED {bad}")
        print(f"{len(parsed.rows)} line(s) good, {len(parsed.bad)} bad; nothing sent (--check)")
        return 1 if parsed.bad else 0
    results, where = apply(parsed, args.socket, args.config)
    lines, code = summary(parsed.bad, results)
    for line in lines:
        print(line)
    if where and any(r["ok"] for r in results):
        print(where)
    return code


def cmd_returns(args) -> int:
    try:
        parsed = parse_returns("", args.reason)  # a wrong stack reason stops before reading
        parsed = parse_returns(_read(args.file), args.reason)
    except ValueError as e:
        raise UserError(f"--reason: {e}") from None
    return _report(parsed, args)


def cmd_tracking(args) -> int:
    return _report(parse_tracking_csv(_read(args.file)), args)
