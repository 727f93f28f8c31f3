"""Ingest and status-reporting throughput, appliance vs a naive sequential client.

Both run in the same invocation against fresh sandboxes in their own process (so client
and server do not share a GIL):

* **appliance**: the real Pipeline (list -> 303 -> download -> sha256 -> pypdf -> ACCEPTED
  or REJECTED -> routed) with the client limiter at ``--rate`` TPS, printers and
  finishing that take no time, so the figure is the appliance's, not the devices'.
  Measured: letters/s until every letter is ACCEPTED/REJECTED in the store, and API calls
  per letter once every status has been acknowledged.
* **naive**: what upstream's reference mock supplier does: list, then one request at a
  time per letter (data + follow the 303, hash, parse, one PATCH per status).

Prints one JSON line.  Usage:
    python benchmarks/ingest_bench.py [--letters 2000] [--rate 300] [--naive-letters 300]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from pypdf import PdfReader

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.api.client import SupplierClient  # noqa: E402
from appliance.config.profile import load_profile  # noqa: E402
from appliance.config.settings import sandbox_api  # noqa: E402
from appliance.core.packs import load_packs  # noqa: E402
from appliance.pipeline.pipeline import Pipeline, PipelineSettings  # noqa: E402
from appliance.store.store import Store  # noqa: E402

FAST_FLOOR = """
[profile]
name = "bench"
[[printer]]
name = "mono"
driver = "file"
max_weight_gsm = 100
duplex = true
job_seconds = 0.0
[[printer]]
name = "colour"
driver = "file"
max_weight_gsm = 100
colour = true
duplex = true
job_seconds = 0.0
[[printer]]
name = "special"
driver = "file"
max_weight_gsm = 200
duplex = true
features = ["BRAILLE", "AUDIO"]
job_seconds = 0.0
[[inserter]]
name = "ins"
driver = "sim"
piece_seconds = 0.0
[[franker]]
name = "frank"
driver = "sim"
piece_seconds = 0.0
"""


def start_sandbox(letters: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "sandbox", "--port", "0", "--letters", str(letters),
         "--seed", "3"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    m = re.search(r"(http://[0-9.]+:\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"sandbox did not start: {line}")
    # keep draining its output so a full pipe can never stall the server
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, m.group(1)


async def appliance_run(letters: int, rate: float, workdir: Path) -> dict:
    proc, url = start_sandbox(letters)
    try:
        floor = workdir / "floor.toml"
        floor.write_text(FAST_FLOOR)
        state = workdir / "state"
        store = Store(state)
        client = SupplierClient(sandbox_api(url, rate_limit=rate))
        pipe = Pipeline(PipelineSettings(spool_dir=state / "spool", poll_interval=0.05,
                                         max_in_flight=2500),
                        client, store, load_profile(floor), load_packs(), state_dir=state)
        t0 = time.perf_counter()
        await pipe.start()
        ingest_s = None
        while True:
            decided = sum(n for s, n in store.counts().items() if s != "PENDING")
            if ingest_s is None and decided >= letters:
                ingest_s = time.perf_counter() - t0
            if pipe.idle() and ingest_s is not None:
                break
            await asyncio.sleep(0.01)
        total_s = time.perf_counter() - t0
        await pipe.stop()
        await client.aclose()
        store.close()
        stats = dict(client.stats)
        api_calls = sum(v for k, v in stats.items() if k != "presigned")
        return {"letters": letters, "ingest_s": round(ingest_s, 3),
                "ingest_letters_per_s": round(letters / ingest_s, 1),
                "all_statuses_s": round(total_s, 3), "api_calls": stats,
                "api_calls_total": api_calls,
                "status_requests": stats.get("post_letters", 0) + stats.get("patch", 0),
                "rate_limit": rate}
    finally:
        proc.terminate()
        proc.wait()


def naive_run(letters: int) -> dict:
    """One request at a time; one PATCH per status, as the upstream reference mock does."""
    proc, url = start_sandbox(letters)
    try:
        headers = lambda: {"X-Request-ID": str(time.time_ns()),  # noqa: E731
                           "Content-Type": "application/vnd.api+json"}
        calls = 0
        with httpx.Client(base_url=url, timeout=30) as http:
            t0 = time.perf_counter()
            data = http.get(f"/letters?limit={min(letters, 2500)}", headers=headers()).json()["data"]
            calls += 1
            statuses = 0
            for item in data:
                lid = item["id"]
                r = http.get(f"/letters/{lid}/data", headers=headers())
                calls += 1
                pdf = httpx.get(r.headers["location"], timeout=30).content
                ok = hashlib.sha256(pdf).hexdigest() == item["attributes"]["sha256Hash"]
                try:
                    ok = ok and len(PdfReader(io.BytesIO(pdf)).pages) > 0
                except Exception:
                    ok = False
                path = ["ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED"] if ok else ["REJECTED"]
                for status in path:
                    attrs = {"status": status}
                    if status == "REJECTED":
                        attrs |= {"reasonCode": "BAD_PDF", "reasonText": "bad pdf"}
                    http.patch(f"/letters/{lid}", headers=headers(), content=json.dumps(
                        {"data": {"type": "Letter", "id": lid, "attributes": attrs}}))
                    calls += 1
                    statuses += 1
            total = time.perf_counter() - t0
        return {"letters": len(data), "seconds": round(total, 3),
                "letters_per_s": round(len(data) / total, 1), "api_calls_total": calls,
                "status_requests": statuses}
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--letters", type=int, default=2000)
    ap.add_argument("--naive-letters", type=int, default=300)
    ap.add_argument("--rate", type=float, default=300.0)
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    a = ap.parse_args()
    if a.quick:
        a.letters, a.naive_letters = 60, 20
    with tempfile.TemporaryDirectory() as tmp:
        ours = asyncio.run(appliance_run(a.letters, a.rate, Path(tmp)))
    naive = naive_run(a.naive_letters)
    per_letter_ours = ours["status_requests"] / ours["letters"]
    per_letter_naive = naive["status_requests"] / naive["letters"]
    print(json.dumps({
        "benchmark": "ingest",
        "appliance": ours,
        "naive": naive,
        "ingest_ratio_vs_naive": round(ours["ingest_letters_per_s"] / naive["letters_per_s"], 2),
        "ingest_share_of_rate_limit": round(ours["ingest_letters_per_s"] / a.rate, 3),
        "status_requests_per_10000_letters": {"appliance": round(per_letter_ours * 10000),
                                              "naive": round(per_letter_naive * 10000)},
        "status_request_ratio": round(per_letter_naive / per_letter_ours, 1) if per_letter_ours else None,
    }))


if __name__ == "__main__":
    main()
