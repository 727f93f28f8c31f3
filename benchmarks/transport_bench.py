"""CPU per API call of the Supplier API client over httpcore (httpx's own transport) and
over aiohttp (``appliance/api/transport.py``, the default), side by side in one run.

The same ``SupplierClient`` (limiter, retries, capped reads) makes ``GET /letters/{id}/data``
calls, 8 at a time as the intake's download slots do, against one sandbox in its own
process (no visibility timeout, no TPS limit: the client is measured, not the server).
Rounds alternate the transports so the machine's noise falls on both.  Prints one JSON
line.  Usage:
    python benchmarks/transport_bench.py [--calls 1500] [--rounds 2] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest_bench import start_sandbox  # noqa: E402

from appliance.api.client import CONNECTIONS, SupplierClient  # noqa: E402
from appliance.api.transport import api_transport  # noqa: E402
from appliance.config.settings import sandbox_api  # noqa: E402


def transport(name: str) -> httpx.AsyncBaseTransport:
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    if name == "httpcore":
        return httpx.AsyncHTTPTransport(limits=limits)
    return api_transport(verify=True, limits=limits)


async def one_round(url: str, name: str, calls: int, concurrency: int = 8) -> dict:
    client = SupplierClient(sandbox_api(url, rate_limit=1_000_000), transport=transport(name))
    ids = [letter.id for letter in await client.list_letters(limit=2500)][:calls]
    slots = asyncio.Semaphore(concurrency)

    async def data(letter_id: str) -> None:
        async with slots:
            await client.data_url(letter_id)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(data(i) for i in ids))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await client.aclose()
    return {"calls": len(ids), "cpu_ms_per_call": 1000 * cpu / len(ids), "calls_per_s": len(ids) / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    a = ap.parse_args()
    if a.quick:
        a.calls, a.rounds = 40, 1
    # the client is measured, not the server: no visibility timeout, no TPS limit
    proc, url = start_sandbox(a.calls, 0, "--visibility-timeout", "0", "--tps-limit", "0")
    runs: dict[str, list[dict]] = {"httpcore": [], "aiohttp": []}
    try:
        for _ in range(a.rounds):
            for name in runs:
                runs[name].append(asyncio.run(one_round(url, name, a.calls)))
    finally:
        proc.terminate()
        proc.wait()
    out = {name: {"cpu_ms_per_call": round(statistics.median(r["cpu_ms_per_call"] for r in rs), 3),
                  "calls_per_s": round(statistics.median(r["calls_per_s"] for r in rs), 1),
                  "calls": rs[0]["calls"]} for name, rs in runs.items()}
    print(json.dumps({"benchmark": "transport", **out, "rounds": a.rounds,
                      "cpu_ratio_httpcore_vs_aiohttp": round(out["httpcore"]["cpu_ms_per_call"]
                                                            / out["aiohttp"]["cpu_ms_per_call"], 2)}))


if __name__ == "__main__":
    main()
