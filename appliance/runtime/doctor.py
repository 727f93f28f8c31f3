"""``appliance doctor``: is this floor ready to print?  One line per problem, with the fix.

Each device family contributes checks through a ``doctor_checks(profile, config)``
function in its driver module (listed in ``CHECKS``), so the doctor knows no device
details itself.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from appliance.config.profile import floor_from_args
from appliance.core.errors import UserError


@dataclass(frozen=True)
class Check:
    ok: bool
    subject: str  # what was checked, e.g. "printer mono-duplex"
    message: str  # what was found; for a failure, also the fix


#: "module:function" returning list[Check]; imported only when the profile uses that family.
CHECKS = {
    "cups": "drivers.cups.printer:doctor_checks",
    "serial": "drivers.serial.finisher:doctor_checks",
    "files": "drivers.files.inserter:doctor_checks",
}


def register(sub) -> None:
    p = sub.add_parser("doctor", help="check configuration, API settings, CUPS queues and serial ports",
                       description="Check that the configured floor can print; one line per problem.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--config", metavar="PATH", help="appliance.toml (checks it and its profile)")
    src.add_argument("--profile", metavar="TOML", help="only check this hardware profile")
    p.set_defaults(func=cmd_doctor)


def run_checks(profile, config=None) -> list[Check]:
    results = [Check(True, "profile", f"{profile.source}: {len(profile.printers)} printer(s), "
                                      f"{len(profile.inserters)} inserter(s), {len(profile.frankers)} franker(s)")]
    used = {d.driver for d in profile.devices()}
    for driver, target in CHECKS.items():
        if driver not in used:
            continue
        module, _, fn = target.partition(":")
        try:
            results += getattr(importlib.import_module(module), fn)(profile, config)
        except ImportError as e:
            results.append(Check(False, f"{driver} driver", f"cannot load ({e}); run ./setup.sh"))
    return results


def cmd_doctor(args) -> int:
    profile, config = floor_from_args(args.config, args.profile)
    if config is not None:
        if config.api.auth == "jwt":
            from appliance.api.auth import load_private_key
            try:
                load_private_key(config.api.private_key)
                print(f"ok    private key {config.api.private_key}")
            except UserError as e:
                print(f"FAIL  private key: {e}")
    results = run_checks(profile, config)
    for c in results:
        print(f"{'ok  ' if c.ok else 'FAIL'}  {c.subject}: {c.message}")
    failed = sum(not c.ok for c in results)
    print(f"{len(results) - failed} ok, {failed} problem(s)")
    return 1 if failed else 0
