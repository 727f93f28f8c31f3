"""``appliance devices``: the inserters and franking machines, their links, counters, stock.

For a serial machine the running appliance's own view is used when it is fresh (the
driver writes ``<state_dir>/devices/<name>/status.json`` every second while it holds the
port); otherwise the command opens the port itself and asks the machine for its status.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from appliance.cli.common import config_path, floor_args, socket_arg
from appliance.config.profile import floor_from_args
from appliance.control.client import call
from appliance.core.errors import UserError

FRESH_SECONDS = 10.0


def register(sub) -> None:
    p = sub.add_parser("devices", help="list inserters and franking machines: link, counters, stock",
                       description="List the finishing machines of a floor with link state, counters and stock.")
    floor_args(p, profile_help="a hardware profile (asks each machine directly)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    socket_arg(p)
    p.add_argument("what", nargs="*", metavar="envelopes INSERTER [add|remove ID]",
                   help="the envelope ids loaded at an inserter, asked of the running daemon; "
                        "add or remove one when the feeders are reloaded")
    p.set_defaults(func=cmd_devices)


def _snapshot(state_dir: Path | None, name: str) -> dict | None:
    if state_dir is None:
        return None
    path = state_dir / "devices" / name / "status.json"
    try:
        snap = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return snap if time.time() - snap.get("t", 0) < FRESH_SECONDS else None


def describe(spec, state_dir: Path | None) -> dict:
    row = {"name": spec.name, "family": spec.family, "driver": spec.driver}
    if spec.driver != "serial":
        return {**row, "link": "-", "state": "in-process simulator" if spec.driver == "sim" else "?", "detail": ""}
    snap = _snapshot(state_dir, spec.name)
    if snap:
        return {**row, "port": snap["port"], "protocol": snap["protocol"], "link": snap["link"],
                "state": snap["state"], "source": "running appliance", "counters": snap["counters"],
                "stock": snap.get("stock", {}), "detail": snap.get("detail", "")}
    from drivers.serial.doctor import probe_device

    p = probe_device(spec)
    fields = {k: v for k, v in p.status.items() if k not in ("state",)}
    return {**row, "port": p.port, "protocol": p.protocol, "link": "ok" if p.ok else "failed",
            "state": p.status.get("state", "-"), "source": "asked the machine", "counters": fields,
            "stock": {}, "detail": p.message}


def _line(r: dict) -> str:
    counters = " ".join(f"{k}={v}" for k, v in sorted((r.get("counters") or {}).items())
                        if not k.startswith("link_bytes"))
    stock = " ".join(f"{k}={v}" for k, v in (r.get("stock") or {}).items())
    head = f"{r['family']:<9} {r['name']:<16} {r['driver']:<7} {r.get('port', '-'):<28} link={r['link']:<8} state={r['state']}"
    tail = "\n".join(f"          {label}: {text}" for label, text in
                     (("stock", stock), ("counters", counters), ("note", r.get("detail", ""))) if text)
    return head + ("\n" + tail if tail else "")


def cmd_envelopes(args) -> int:
    what = args.what
    if (what[0] != "envelopes" or len(what) not in (2, 4)
            or (len(what) == 4 and what[2] not in ("add", "remove"))):
        raise UserError("usage: appliance devices envelopes INSERTER [add|remove ENVELOPE_ID]")
    kw = {"inserter": what[1]}
    if len(what) == 4:
        kw.update(action=what[2], envelope=what[3])
    answer = call(args.socket, "envelopes", **kw)
    print(json.dumps(answer, indent=2) if args.json else answer["message"])
    return 0


def cmd_devices(args) -> int:
    if getattr(args, "what", None):  # appliance devices envelopes ...
        return cmd_envelopes(args)
    profile, config = floor_from_args(config_path(args.config), args.profile)
    state_dir = config.state_dir if config else None
    rows = [describe(spec, state_dir) for spec in profile.inserters + profile.frankers]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(f"{profile.source}: no inserters or franking machines (letters are finished by hand)")
    else:
        for r in rows:
            print(_line(r))
    return 1 if any(r["link"] == "failed" for r in rows) else 0
