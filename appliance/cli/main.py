"""``appliance`` command line: a thin shell over the modules that do the work.

Each command family lives in its own module exposing ``register(subparsers)``; that
function adds its sub-command(s) and sets ``func`` (taking ``args``, returning an exit
code).  User mistakes surface as ``UserError`` and are printed as one line, no traceback;
so do a closed pipe (``appliance status | head -1``) and Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import sys

from appliance.cli.common import CONFIG_HELP
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


def version() -> str:
    try:
        return importlib.metadata.version("nhs-notify-appliance")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed: run ./setup.sh)"


class Parser(argparse.ArgumentParser):
    """Every sub-command's --help opens with a description: its one-line ``help`` unless
    it is given a longer ``description`` of its own (sub-sub-commands too)."""

    def add_subparsers(self, **kw):
        action = super().add_subparsers(**kw)  # its parsers are made with type(self)
        plain = action.add_parser

        def add_parser(name, **kw):
            if kw.get("help") and not kw.get("description"):
                kw["description"] = kw["help"][0].upper() + kw["help"][1:] + "."
            return plain(name, **kw)

        action.add_parser = add_parser
        return action


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="appliance",
        description="Print-floor edge appliance controller for NHS Notify letter suppliers.",
        epilog=f"Commands that read the configuration take --config PATH: {CONFIG_HELP}.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _stdout_closed() -> int:
    """The reader of our output went away (``| head``): stop quietly.  Output still
    buffered would fail again at exit, so standard output now goes nowhere."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (inside a test): nothing to do
        pass
    return 141  # what a shell reports for a program ended by SIGPIPE


def main(argv: list[str] | None = None) -> int:
    # Every command may write letter state or patient data (the daemon, MI, returns, exports):
    # nothing it creates is readable by other users, whatever umask it was started with.
    # (Put back afterwards: main() also runs inside other programs, such as the tests.)
    umask = os.umask(0o077)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)  # --help and --version print here
        if not getattr(args, "func", None):
            parser.print_help()
            sys.stdout.flush()
            return 2
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not as a traceback at exit
        return code
    except UserError as e:
        print(f"appliance: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _stdout_closed()
    finally:
        os.umask(umask)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
