"""``appliance demo``: letters end to end on the embedded floor (``appliance.runtime.demo``)."""

from __future__ import annotations

import asyncio

from appliance.control.protocol import DEFAULT_SOCKET
from appliance.runtime.demo import run_demo
from appliance.runtime.demo_scenarios import SCENARIOS
from appliance.runtime.logs import setup_logging


def register(sub) -> None:
    p = sub.add_parser("demo", help="run letters end to end against the built-in sandbox (no hardware)",
                       description="Start the local sandbox and the pipeline on the embedded demo "
                                   "floor; exit 0 once every letter has a final status.")
    p.add_argument("--letters", type=int, default=200, help="letters the sandbox offers (default 200)")
    p.add_argument("--bad-ratio", type=float, default=0.1,
                   help="share of letters with a bad PDF (default 0.1)")
    p.add_argument("--seed", type=int, default=1,
                   help="which letters the sandbox makes (default 1); with a reused --state-dir, letters "
                        "already final there are not offered again")
    p.add_argument("--profile", metavar="TOML",
                   help="hardware profile (default: file printers + serial inserter and franking "
                        "machine simulated on ptys)")
    p.add_argument("--state-dir", metavar="DIR",
                   help="keep state here; reusing one resumes its unfinished letters (default: a temporary "
                        "folder, deleted when the demo finishes, kept and named when it does not)")
    p.add_argument("--sim-option", action="append", default=[], metavar="NAME:KEY=VALUE",
                   help="option for a simulated machine, e.g. fm200:stock=40 (a small ink cartridge) or "
                        "fm200:refill_seconds=0 (nobody refills it; the default: refilled after 1 s); "
                        "repeatable")
    p.add_argument("--scenario", choices=SCENARIOS,
                   help="play a floor situation: envelopes = one envelope not loaded at the start; its "
                        "letters are held before printing until the demo's operator loads it")
    p.add_argument("--summary-json", metavar="PATH", help="write final figures as JSON")
    p.add_argument("--sandbox-log", metavar="PATH", help="write the sandbox's request log (JSON lines)")
    p.add_argument("--timeout", type=float, default=600, help="give up after this many seconds")
    p.add_argument("--quiet", action="store_true",
                   help="no live progress line (the final table still prints)")
    p.add_argument("--metrics", metavar="HOST:PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics while the demo runs "
                        "(port 0: any free one, printed at start)")
    p.add_argument("--cups", action="store_true",
                   help="print through a real private cupsd with emulated IPP printers "
                        "(needs cups + cups-ipp-utils; about 1 s per job per printer)")
    p.add_argument("--socket", metavar="PATH",
                   help=f"serve the control socket here (default with --hold: {DEFAULT_SOCKET})")
    p.add_argument("--hold", action="store_true",
                   help="keep running after every letter is final, until SIGINT/SIGTERM "
                        "(so a console can attach)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    # Warnings (alerts) are counted in the summary; keep the progress line readable.
    setup_logging("error")  # the daemon's human lines (time, device, letter), URLs redacted
    return asyncio.run(run_demo(args))
