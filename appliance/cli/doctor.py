"""``appliance doctor``: is this floor ready to print?  One line per check (the checks:
``appliance.runtime.doctor``); exit status 1 whenever a FAIL line is printed."""

from __future__ import annotations

from appliance.cli.common import config_path, floor_args
from appliance.config.profile import floor_from_args
from appliance.runtime.doctor import run_checks


def register(sub) -> None:
    p = sub.add_parser("doctor", help="check state folder, key, API, clock, CUPS queues, serial ports, disk",
                       description="Check that the configured floor can start and print: the state folder "
                                   "and its lock, the private key, the API and its token, the clock, "
                                   "CUPS queues, serial ports and free disk. One line per check; exit "
                                   "status 1 when any FAILs.")
    floor_args(p, profile_help="only check this hardware profile (no state folder, key or API)")
    p.add_argument("--user", metavar="NAME",
                   help="judge folders and files for this user (default: the User= of an installed "
                        "appliance.service when run as root, else you)")
    p.set_defaults(func=cmd_doctor)


def label(c) -> str:
    if not c.ok:
        return "FAIL"
    return "warn" if getattr(c, "warning", False) else "ok  "


def cmd_doctor(args) -> int:
    profile, config = floor_from_args(config_path(args.config), args.profile)
    results = run_checks(profile, config, user=args.user)
    for c in results:
        print(f"{label(c)}  {c.subject}: {c.message}", flush=True)
    failed = sum(not c.ok for c in results)
    warned = sum(c.ok and bool(getattr(c, "warning", False)) for c in results)
    print(f"{len(results) - failed - warned} ok, {warned} warning(s), {failed} problem(s)")
    return 1 if failed else 0
