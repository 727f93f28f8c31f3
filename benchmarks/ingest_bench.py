"""Ingest throughput and CPU per letter: the appliance beside a simple client, one run.

Every part gets a fresh sandbox in its own process, started as the deployed server behaves
(``appliance sandbox`` defaults to ``FAITHFUL``: a listed letter hidden for 300 s, updates
applied 1 s after the 202, 60 s pre-signed URLs, 300 TPS), with ``--latency-ms`` added to
each API request.  The measured side runs in its own child process, so its CPU is its own
process tree's (from /proc, ``proc_cpu.tree_cpu``) and never the sandbox's; ``--pin CPU``
puts that child (and so the daemon's intake workers) on one core, the sandbox not, as a
stand-in for a small box.  Parts (``--parts``):

* ``appliance`` -- the real Pipeline (list -> 303 -> download in an intake worker ->
  sha256 -> pypdf -> ACCEPTED / REJECTED -> routed and "printed" on devices that take no
  time), client limiter at ``--rate``, ink coverage off: letters/s until every letter is
  decided in the store, CPU ms per letter of the daemon plus its workers over that time,
  and API calls per letter (when decided, and once every status is acknowledged).
  ``--worker-nice N`` sets the intake workers' ``[intake] nice`` (default: the setting's
  default), to compare throughput with and without the lower priority.
* ``coverage`` -- the same with ``[intake] coverage`` on: the coverage render's extra CPU
  per page (against ``appliance``; pages of the sandbox letters pypdf can read).
* ``httpx`` / ``aiohttp`` -- ``benchmarks/simple_client.py``: the obvious concurrent
  client (32 letters at a time, a token bucket at ``--rate``, one batched POST per 32, no
  durability or isolation), over each library: what the appliance's guarantees cost.
  ``aiohttp`` is skipped with a note when it is not installed.

The ratios say how close the appliance comes to the simple clients, and to the rate limit
(every letter needs one ``/data`` call, so the limit caps ingest near ``--rate`` letters/s).

Prints one JSON line.  Usage:
    python benchmarks/ingest_bench.py [--letters 2000] [--rate 300] [--latency-ms 0]
        [--pin CPU] [--in-flight 2500] [--worker-nice N] [--parts appliance,coverage,httpx,aiohttp]
        [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PARTS = ("appliance", "coverage", "httpx", "aiohttp")
SEED = 3

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


# --- the measured sides, each in a child process --------------------------------------

async def appliance_child(url: str, letters: int, rate: float, coverage: bool, in_flight: int,
                          nice: int | None = None) -> dict:
    """The Pipeline against ``url`` until ``letters`` are decided, then until idle."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    from proc_cpu import own_cpu, peak_rss_mb, tree_cpu

    from appliance.api.client import SupplierClient
    from appliance.config.profile import load_profile
    from appliance.config.settings import sandbox_api
    from appliance.core.packs import load_packs
    from appliance.intake.settings import IntakeSettings
    from appliance.pipeline.pipeline import Pipeline, PipelineSettings
    from appliance.store.store import Store

    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    (work / "floor.toml").write_text(FAST_FLOOR)
    state = work / "state"
    store = Store(state)
    client = SupplierClient(sandbox_api(url, rate_limit=rate))
    intake = IntakeSettings(coverage=coverage)  # check slots: cores + 2 (default_workers)
    if nice is not None:
        intake = replace(intake, nice=nice)
    pipe = Pipeline(PipelineSettings(spool_dir=state / "spool", poll_interval=0.05, max_in_flight=in_flight,
                                     intake=intake),
                    client, store, load_profile(work / "floor.toml"), load_packs(), state_dir=state)
    me = os.getpid()
    await pipe.start()  # starting the worker pool is a fixed cost, not a letter's
    cpu0, own0, t0 = tree_cpu(me, set()), own_cpu(me), time.perf_counter()
    most_in_flight = 0
    while sum(n for s, n in store.counts().items() if s != "PENDING") < letters:
        most_in_flight = max(most_in_flight, store.in_flight_count())
        await asyncio.sleep(0.05)
    wall, cpu, own = time.perf_counter() - t0, tree_cpu(me, set()) - cpu0, own_cpu(me) - own0
    at_decided = dict(client.stats)
    rss = peak_rss_mb(me)
    settled = await pipe.run_until_idle(timeout=120)
    at_idle = dict(client.stats)
    await pipe.stop()
    await client.aclose()
    store.close()

    def api(stats: dict) -> int:
        return sum(v for k, v in stats.items() if k in ("list", "get", "data", "patch", "post_letters",
                                                          "read_back", "mi_post", "mi_get"))

    return {"letters": letters, "workers": intake.workers, "coverage": coverage, "worker_nice": intake.nice,
            "max_in_flight": in_flight,
            "daemon_peak_rss_mb": round(rss, 1), "most_letters_in_flight": most_in_flight,
            "seconds": round(wall, 3), "letters_per_s": round(letters / wall, 1),
            "cpu_ms_per_letter": round(1000 * cpu / letters, 2),
            "daemon_cpu_ms_per_letter": round(1000 * own / letters, 2),  # the event loop's process
            "workers_cpu_ms_per_letter": round(1000 * (cpu - own) / letters, 2),  # intake workers
            "api_calls_per_letter": round(api(at_decided) / letters, 3),
            "api_calls_per_letter_all_statuses": round(api(at_idle) / letters, 3) if settled else None,
            "api_calls_when_decided": at_decided, "api_calls_all_statuses": at_idle if settled else None}


# --- the orchestrator ---------------------------------------------------------------------

def start_sandbox(letters: int, latency_ms: float, *options: str) -> tuple[subprocess.Popen, str]:
    """``appliance sandbox`` with its faithful defaults unless ``options`` change them (not
    pinned: it stands for Notify)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "sandbox", "--port", "0", "--letters", str(letters),
         "--seed", str(SEED), "--latency-ms", str(latency_ms), *options],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = proc.stdout.readline()
    m = re.search(r"(http://[0-9.]+:\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"sandbox did not start: {line}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # a full pipe never stalls it
    return proc, m.group(1)


def run_part(part: str, a) -> dict:
    if part == "aiohttp" and importlib.util.find_spec("aiohttp") is None:
        return {"skipped": "aiohttp is not installed (pip install aiohttp to compare it)"}
    from proc_cpu import tree_cpu

    sandbox, url = start_sandbox(a.letters, a.latency_ms)
    try:
        if part in ("appliance", "coverage"):
            cmd = [sys.executable, str(HERE / "ingest_bench.py"), "--child", url, "--letters", str(a.letters),
                   "--rate", str(a.rate), "--coverage", "on" if part == "coverage" else "off",
                   "--in-flight", str(a.in_flight)]
            if a.worker_nice is not None:
                cmd += ["--worker-nice", str(a.worker_nice)]
        else:
            cmd = [sys.executable, str(HERE / "simple_client.py"), url, "--lib", part,
                   "--rate", str(a.rate), "--expect", str(a.letters)]
        pin = (lambda: os.sched_setaffinity(0, {a.pin})) if a.pin is not None else None
        sb0 = tree_cpu(sandbox.pid, set())
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1200, preexec_fn=pin,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        sb_cpu = tree_cpu(sandbox.pid, set()) - sb0
    finally:
        sandbox.terminate()
        sandbox.wait()
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        return {"error": (out.stderr or out.stdout).strip().splitlines()[-3:] or ["no output"]}
    fig = json.loads(lines[-1])
    fig["sandbox_cpu_ms_per_letter"] = round(1000 * sb_cpu / a.letters, 2)  # includes the idle tail
    return fig


def readable_pages(letters: int) -> int:
    """Pages the coverage render sees: those of the sandbox's letters that pypdf can read."""
    sys.path.insert(0, str(ROOT))
    from appliance.sandbox import Sandbox, SandboxOptions

    sb = Sandbox(SandboxOptions(letters=letters, seed=SEED))
    return sum(lt.pages for lt in sb.letters.values() if lt.kind != "corrupt")


def ratio(x: float | None, y: float | None) -> float | None:
    return round(x / y, 2) if x and y else None


def summary(parts: dict, a) -> dict:
    """The ratios the issue asks for, from whichever parts ran."""
    get = lambda part, key: parts.get(part, {}).get(key)  # noqa: E731
    out: dict = {}
    ours = get("appliance", "letters_per_s")
    if ours:
        out["appliance_share_of_rate_limit"] = round(ours / a.rate, 3)
    for lib in ("httpx", "aiohttp"):
        out[f"letters_per_s_appliance_vs_{lib}"] = ratio(ours, get(lib, "letters_per_s"))
        out[f"cpu_per_letter_appliance_vs_{lib}"] = ratio(get("appliance", "cpu_ms_per_letter"),
                                                         get(lib, "cpu_ms_per_letter"))
        if get(lib, "letters_per_s"):
            out[f"{lib}_share_of_rate_limit"] = round(get(lib, "letters_per_s") / a.rate, 3)
    on, off = get("coverage", "cpu_ms_per_letter"), get("appliance", "cpu_ms_per_letter")
    if on is not None and off is not None:
        pages = readable_pages(a.letters)
        out["coverage_pages"] = pages
        out["coverage_cpu_ms_per_page"] = round((on - off) * a.letters / pages, 2)
    return {k: v for k, v in out.items() if v is not None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--letters", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=300.0, help="client rate limit, calls/s (the API's: 300)")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="latency the sandbox adds to each API call")
    ap.add_argument("--pin", type=int, default=None, metavar="CPU",
                    help="run the measured side (daemon + workers, or simple client) on this core only")
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--in-flight", type=int, default=2500, help="the appliance's max_in_flight")
    ap.add_argument("--worker-nice", type=int, default=None, metavar="N",
                    help="the intake workers' [intake] nice (default: IntakeSettings')")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    ap.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)  # the appliance side, internal
    ap.add_argument("--coverage", choices=("on", "off"), default="off", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(asyncio.run(appliance_child(a.child, a.letters, a.rate, a.coverage == "on",
                                                     a.in_flight, a.worker_nice))))
        return
    if a.quick:
        a.letters = min(a.letters, 60)
    sys.path.insert(0, str(HERE))
    wanted = [p.strip() for p in a.parts.split(",") if p.strip()]
    unknown = set(wanted) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    parts = {part: run_part(part, a) for part in wanted}
    print(json.dumps({
        "benchmark": "ingest", "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} cores", "letters": a.letters, "rate_limit": a.rate,
        "latency_ms": a.latency_ms, "pinned_to_cpu": a.pin,
        "sandbox": "faithful defaults (visibility timeout 300 s, apply delay 1 s, 300 TPS)",
        **parts, "ratios": summary(parts, a)}))


if __name__ == "__main__":
    main()
