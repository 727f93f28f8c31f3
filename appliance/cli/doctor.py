"""``appliance doctor``: is this floor ready to print?  One line per check (the checks:
``appliance.runtime.doctor``)."""

from __future__ import annotations

from appliance.cli.common import floor_args
from appliance.config.profile import floor_from_args
from appliance.core.errors import UserError
from appliance.runtime.doctor import run_checks


def register(sub) -> None:
    p = sub.add_parser("doctor", help="check configuration, API settings, CUPS queues and serial ports",
                       description="Check that the configured floor can print; one line per problem.")
    floor_args(p, "appliance.toml (checks it and its profile)", "only check this hardware profile")
    p.set_defaults(func=cmd_doctor)


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
