"""``appliance printers``: the fleet in the profile, with live state, queue depth and
capabilities.  CUPS printers are asked for their state; file printers show their folder."""

from __future__ import annotations

import json

from appliance.cli.common import config_path, floor_args
from appliance.config.profile import floor_from_args


def register(sub) -> None:
    p = sub.add_parser("printers", help="list the printers in the profile with live state and queue depth",
                       description="List the fleet: state, queue depth and capabilities of every printer.")
    floor_args(p, profile_help="a hardware profile")
    p.add_argument("--json", action="store_true", help="one JSON object per printer")
    p.set_defaults(func=cmd_printers)


def capabilities(caps) -> str:
    parts = ["/".join(sorted(caps.paper_sizes))]
    if caps.paper_ids:
        parts.append("paper " + ",".join(sorted(caps.paper_ids)))
    parts.append(f"<={caps.max_weight_gsm}gsm")
    parts.append("colour" if caps.colour else "mono")
    parts.append("duplex" if caps.duplex else "simplex")
    parts += sorted(caps.features)
    return " ".join(parts)


def fleet_rows(profile) -> list[dict]:
    live = {}
    if any(p.driver == "cups" for p in profile.printers):
        from drivers.cups.admin import fleet_status  # needs pycups only for CUPS floors
        live = fleet_status(profile)
    rows = []
    for spec in profile.printers:
        row = {"name": spec.name, "driver": spec.driver, "capabilities": capabilities(spec.caps)}
        if spec.name in live:
            st = live[spec.name]
            row.update(state=st.state, queued=st.queued, where=f"{st.queue}@{st.server or 'default'}",
                       detail=st.detail or ", ".join(st.reasons))
        else:
            row.update(state="idle", queued=0, where=spec.settings.get("output_dir") or "(state dir)", detail="")
        rows.append(row)
    return rows


def cmd_printers(args) -> int:
    profile, _ = floor_from_args(config_path(args.config), args.profile)
    rows = fleet_rows(profile)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    cols = ["name", "driver", "state", "queued", "where", "capabilities", "detail"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.upper().ljust(widths[c]) for c in cols).rstrip())
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols).rstrip())
    return 0
