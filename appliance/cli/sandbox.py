"""``appliance sandbox``: run the local Notify Supplier API sandbox until interrupted."""

from __future__ import annotations

import argparse
import asyncio

from appliance.sandbox.model import SandboxOptions
from appliance.sandbox.runner import serve


def register(sub) -> None:
    p = sub.add_parser("sandbox", help="run a strict, stateful local Notify Supplier API sandbox")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9000, help="port (default 9000; 0 picks a free one)")
    p.add_argument("--letters", type=int, default=50, help="PENDING letters to start with")
    p.add_argument("--bad-ratio", type=float, default=0.1,
                   help="share of deliberately bad letters (hash/corrupt/sheets)")
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
    p.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> SandboxOptions:
    return SandboxOptions(
        letters=args.letters, bad_ratio=args.bad_ratio, seed=args.seed,
        rate_limit_every=args.rate_limit_every, retry_after=args.retry_after,
        error_ratio=args.error_ratio, latency_ms=args.latency_ms, drop_ratio=args.drop_ratio,
        log_path=args.log_path,
    )


def run(args: argparse.Namespace) -> int:
    asyncio.run(serve(options_from_args(args), args.host, args.port))
    return 0
