"""``appliance mi preview|submit|export|resolve``: the day's management information.

While the daemon runs, these go over its control socket (the daemon owns the journal and
is the one submitter).  When it is not running, they read ``<state_dir>/mi`` directly,
found through ``--config``; a submission then holds the same lock the daemon would, so
two submitters can never race.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from pathlib import Path

from appliance.cli.common import config_arg, config_path
from appliance.control.client import DEFAULT_SOCKET, DaemonNotRunning, call
from appliance.core.errors import UserError
from appliance.mi.missed import MISSED_ITEM

CSV_COLUMNS = ("day", "specification_id", "group_id", "line_item", "named", "quantity",
               "stock_remaining", "timestamp", "submitted", "to_submit", "states", "mi_ids")


def register(sub) -> None:
    mi = sub.add_parser("mi", help="management information: preview, submit, export",
                        description="Daily management information (MI), counted from device events and sent "
                                    "to POST /mi (README: 'Management information (MI)').")
    actions = mi.add_subparsers(dest="mi_action", metavar="ACTION", required=True)

    def common(p, date=True):
        p.add_argument("--socket", metavar="PATH", default=DEFAULT_SOCKET,
                       help=f"daemon control socket (default {DEFAULT_SOCKET})")
        config_arg(p, "used when the daemon is not running")
        if date:
            p.add_argument("--date", default="yesterday", metavar="YYYY-MM-DD",
                           help="the day (profile time zone); also 'today', 'yesterday' (default)")

    p = actions.add_parser("preview", help="what the day's MI lines are and what was sent")
    common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_preview)

    p = actions.add_parser("submit", help="send the day's missing MI lines (POST /mi) and verify them")
    common(p)
    p.add_argument("--partial", action="store_true", help="allow today (the rest follows later)")
    p.add_argument("--allow-default-names", action="store_true",
                   help="also send lines whose line item has no name in the profile's [mi]")
    p.set_defaults(func=cmd_submit)

    p = actions.add_parser("export", help="write the day's MI report as CSV")
    common(p)
    p.add_argument("--csv", required=True, metavar="PATH", help="file to write ('-' for stdout)")
    p.set_defaults(func=cmd_export)

    p = actions.add_parser("resolve", help="settle an uncertain MI line after checking with Notify")
    common(p, date=False)
    p.add_argument("key", help="the entry key shown by preview (day/spec/group/item#seq)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--mi-id", help="Notify has the line under this MI id (it is verified)")
    how.add_argument("--not-sent", action="store_true", help="Notify never got it: send it again")
    p.set_defaults(func=cmd_resolve)


# --- where the work happens --------------------------------------------------------------


def _direct(args, need_client: bool):
    from appliance.config.profile import load_profile
    from appliance.config.settings import load_config
    from appliance.core.packs import load_packs
    from appliance.runtime.assemble import offline_mi

    cfg = load_config(config_path(args.config))
    profile = load_profile(cfg.profile)
    return offline_mi(cfg, profile, load_packs(cfg.packs_dir), with_client=need_client)


def _run(args, cmd: str, **kw):
    """Ask the daemon; if none runs, do it here against the state directory."""
    try:
        return call(args.socket, cmd, **kw)
    except DaemonNotRunning:
        pass
    need_client = cmd != "mi_report"
    svc = _direct(args, need_client)

    async def here():
        try:
            if cmd == "mi_report":
                return svc.report(kw["date"])
            if cmd == "mi_submit":
                return await svc.submit(kw["date"], partial=kw["partial"],
                                        allow_default_names=kw["allow_default_names"])
            return await svc.resolve(kw["key"], mi_id=kw["mi_id"], not_sent=kw["not_sent"])
        finally:
            svc.close()
            if svc.client is not None:
                await svc.client.aclose()

    return asyncio.run(here())


# --- commands ----------------------------------------------------------------------------


def format_report(rep: dict) -> str:
    out = [f"MI for {rep['day']} ({rep['timezone']}): {rep['events']} counted device events"]
    if rep.get("devices"):
        out.append("devices  " + "  ".join(f"{d}: " + ", ".join(f"{k}={n}" for k, n in kinds.items())
                                           for d, kinds in rep["devices"].items()))
    out.append(f"{'line item':<28} {'specification':<26} {'group':<14} {'qty':>7} {'stock':>7} "
               f"{'sent':>7}  state")
    for r in rep["lines"]:
        states = ",".join(e["state"] for e in r["entries"]) or "-"
        stock = "" if r["stock_remaining"] is None else r["stock_remaining"]
        name = r["line_item"] + ("" if r["named"] else " *")
        out.append(f"{name:<28} {r['specification_id'] or '-':<26} {r['group_id'] or '-':<14} "
                   f"{r['quantity']:>7} {stock!s:>7} {r['submitted']:>7}  {states}")
    if not rep["lines"]:
        out.append("(no material used that day)")
    if rep.get("unnamed"):
        held = ("" if rep.get("allow_default_names")
                else ", not submitted until named in the profile's [mi]")
        out.append(f"* default name{held}: {', '.join(rep['unnamed'])}")
    for r in rep["lines"]:
        for e in r["entries"]:
            if e["state"] in ("uncertain", "mismatch", "refused"):
                out.append(f"! {e['key']}: {e['state']}: {e.get('error') or ''}")
    if rep.get("journal_errors"):
        out.append(f"! {rep['journal_errors']} device event(s) could not be journalled (see the log)")
    missed = rep.get("missed_deadlines") or {}
    out.append(f"missed dispatch deadlines {sum(missed.values())}" + (": " + ", ".join(
        f"{pack} {n}" for pack, n in sorted(missed.items())) if missed else ""))
    return "\n".join(out)


def cmd_preview(args) -> int:
    rep = _run(args, "mi_report", date=args.date)
    print(json.dumps(rep, indent=2) if args.json else format_report(rep))
    return 0


def cmd_submit(args) -> int:
    res = _run(args, "mi_submit", date=args.date, partial=args.partial,
               allow_default_names=args.allow_default_names)
    for s in res["sent"]:
        print(f"sent {s['key']} quantity {s['quantity']} -> MI {s['mi_id']}")
    for v in res["verified"]:
        print(f"verified {v['key']} (GET /mi/{v['mi_id']})")
    for line in res["skipped"]:
        print(f"not sent: {line}")
    for line in res["problems"]:
        print(f"problem: {line}", file=sys.stderr)
    if not (res["sent"] or res["skipped"] or res["problems"]):
        print(f"MI for {res['day']}: nothing missing; nothing sent")
    return 1 if res["problems"] or res["skipped"] else 0


def write_csv(rep: dict, out) -> int:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rep["lines"]:
        w.writerow([r["day"], r["specification_id"] or "", r["group_id"] or "", r["line_item"],
                    "yes" if r["named"] else "no", r["quantity"],
                    "" if r["stock_remaining"] is None else r["stock_remaining"], r["timestamp"],
                    r["submitted"], r["to_submit"], " ".join(e["state"] for e in r["entries"]),
                    " ".join(e["mi_id"] for e in r["entries"] if e.get("mi_id"))])
    # missed dispatch deadlines per pack: counted here for the supplier, never submitted as MI
    for pack, n in sorted((rep.get("missed_deadlines") or {}).items()):
        w.writerow([rep["day"], pack, "", MISSED_ITEM, "no", n, "", "", 0, 0, "not-mi", ""])
    return len(rep["lines"])


def cmd_export(args) -> int:
    rep = _run(args, "mi_report", date=args.date)
    if args.csv == "-":
        write_csv(rep, sys.stdout)
        return 0
    path = Path(args.csv)
    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            n = write_csv(rep, f)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}; choose another --csv path") from None
    print(f"{n} MI line(s) for {rep['day']} written to {path}")
    return 0


def cmd_resolve(args) -> int:
    print(_run(args, "mi_resolve", key=args.key, mi_id=args.mi_id, not_sent=args.not_sent))
    return 0
