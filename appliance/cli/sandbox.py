"""``appliance sandbox``: run the local Notify Supplier API sandbox until interrupted.

It starts as the deployed server behaves (``model.FAITHFUL``: visibility timeout, updates
applied after the 202, 60 s data URLs, 300 TPS); ``--faithful-off`` or a flag's 0 turns
each off.  ``SandboxOptions()`` in Python starts the same way.
"""

from __future__ import annotations

import argparse
import asyncio

from appliance.sandbox.model import DOCUMENT_ONLY, FAITHFUL, SandboxOptions
from appliance.sandbox.runner import serve

#: flag dest -> (type, help).  Default None = FAITHFUL's value (or off with --faithful-off).
_FAITHFUL_FLAGS = {
    "visibility_timeout": (float, ("seconds a listed letter stays hidden from every client "
                                   "(real server: 300; 0 = lists it again at once)")),
    "apply_delay": (float, ("seconds before an accepted PATCH/POST applies; the 202 comes "
                            "first (real server: about 1, a queue worker; 0 = before the 202)")),
    "drop_updates": (float, ("share of accepted updates silently never applied (real server: "
                             "an enqueue failure is only logged; default 0)")),
    "tps_limit": (int, ("API requests served per second, beyond which 429 with Retry-After: 1 "
                        "(real server: 300 per API app; 0 = no limit)")),
    "presign_ttl": (int, ("seconds a pre-signed data URL lives before 403 'Request has "
                          "expired' (real server: 60; with --faithful-off 300)")),
}


def register(sub) -> None:
    p = sub.add_parser("sandbox", help="run a strict, stateful local Notify Supplier API sandbox")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9000, help="port (default 9000; 0 picks a free one)")
    p.add_argument("--letters", type=int, default=50, help="PENDING letters to start with")
    p.add_argument("--bad-ratio", type=float, default=0.1,
                   help="share of deliberately bad letters (hash/corrupt/sheets/coverage)")
    p.add_argument("--seed", type=int, default=1, help="seed for letters and faults")
    p.add_argument("--rate-limit-every", type=int, default=0,
                   help="answer every Nth API request with 429 (0 = never)")
    p.add_argument("--retry-after", type=float, default=1, help="Retry-After seconds on 429")
    p.add_argument("--error-ratio", type=float, default=0.0,
                   help="share of API requests answering 500/502")
    p.add_argument("--latency-ms", type=float, default=0, help="delay added to each API request")
    p.add_argument("--drop-ratio", type=float, default=0.0,
                   help="share of API requests whose connection is closed unanswered")
    p.add_argument("--log", dest="log_path", default=None,
                   help="append one JSON line per request to this file")
    p.add_argument("--faithful-off", action="store_true",
                   help="behave as the OpenAPI document alone: nothing hidden after listing, "
                        "updates applied before the 202, 300 s data URLs, no TPS limit")
    for dest, (kind, text) in _FAITHFUL_FLAGS.items():
        p.add_argument("--" + dest.replace("_", "-"), dest=dest, type=kind, default=None, help=text)
    p.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> SandboxOptions:
    """The options a command line asks for: FAITHFUL unless --faithful-off, then the flags."""
    faithful = {}
    for dest in _FAITHFUL_FLAGS:
        given = getattr(args, dest)
        if given is not None:
            faithful[dest] = given
        elif args.faithful_off:
            faithful[dest] = DOCUMENT_ONLY.get(dest, 0)
        else:
            faithful[dest] = FAITHFUL.get(dest, 0)
    return SandboxOptions(
        letters=args.letters, bad_ratio=args.bad_ratio, seed=args.seed,
        rate_limit_every=args.rate_limit_every, retry_after=args.retry_after,
        error_ratio=args.error_ratio, latency_ms=args.latency_ms, drop_ratio=args.drop_ratio,
        log_path=args.log_path, **faithful,
    )


def run(args: argparse.Namespace) -> int:
    asyncio.run(serve(options_from_args(args), args.host, args.port))
    return 0
