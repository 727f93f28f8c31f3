"""``appliance doctor``: is this floor ready to print?  One line per problem, with the fix.

Each device family contributes checks through a ``doctor_checks(profile, config)``
function, found through the driver registry (``drivers.doctor_checks``), so the doctor
knows no device details itself.
"""

from __future__ import annotations

import drivers
from appliance.config.profile import floor_from_args
from appliance.core.checks import Check
from appliance.core.errors import UserError


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
    for driver in sorted({d.driver for d in profile.devices()}):
        try:
            checks = drivers.doctor_checks(driver)
            if checks is not None:
                results += checks(profile, config)
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
