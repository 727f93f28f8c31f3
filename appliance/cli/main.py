"""``appliance`` command line: a thin shell over the modules that do the work.

Each command family lives in its own module exposing ``register(subparsers)``; that
function adds its sub-command(s) and sets ``func`` (taking ``args``, returning an exit
code).  User mistakes surface as ``UserError`` and are printed as one line, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from appliance.core.errors import UserError

#: Modules that contribute sub-commands, in the order ``--help`` lists them.
COMMAND_MODULES = [
    "appliance.cli.sandbox",
    "appliance.cli.api",
    "appliance.cli.demo",
    "appliance.cli.run",
    "appliance.cli.printers",
    "appliance.cli.devices",
    "appliance.cli.doctor",
    "appliance.cli.operate",
    "appliance.cli.alerts",
    "appliance.cli.mi",
    "appliance.cli.returns",
    "appliance.cli.audit",
    "appliance.cli.console",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appliance",
        description="Print-floor edge appliance controller for NHS Notify letter suppliers.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # Every command may write letter state or patient data (the daemon, MI, returns, exports):
    # nothing it creates is readable by other users, whatever umask it was started with.
    # (Put back afterwards: main() also runs inside other programs, such as the tests.)
    umask = os.umask(0o077)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"appliance: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    finally:
        os.umask(umask)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
