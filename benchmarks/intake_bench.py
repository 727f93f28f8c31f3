"""Intake in worker processes: what isolation costs, and what it protects.

Three parts, all in one invocation so their figures compare on one machine state:

* ``ingest`` -- letters/s and CPU-ms per letter (daemon + intake workers) for the code
  before the intake workers (``--baseline REV``, checked out in a temporary git worktree:
  download and pypdf in the daemon's own process) and for this tree with 1, 2 and 4
  check workers.  Same sandbox (own process), same limiter, devices that take no time.
* ``rss`` -- a real ``appliance run`` daemon checking eight bombs (2 GB content stream,
  10 x 70 MB object streams, 20 000 xref entries on one object, a 60 000 x 60 000 image,
  100 000-deep nesting, 5 000 pages, an object-stream CPU burner, a 1 GB gzip body) beside
  good letters: the daemon's peak RSS (target <= 150 MB) and the largest worker's.
* ``bombs`` -- time until 200 good letters are DISPATCHED with and without eight bombs and
  eight storage drips (1 byte/s) listed before them (target: ratio <= 1.5).
* ``coverage`` (not run by default) -- ``ingest`` with ink coverage measured and not
  (``[intake] coverage``), the largest ``--workers`` each; ``benchmarks/coverage_bench.py``
  runs it beside its renderer comparison.

Prints one JSON line.  Usage:
    python benchmarks/intake_bench.py [--parts ingest,rss,bombs] [--letters 2000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proc_cpu import descendants, peak_rss_mb, tree_cpu  # noqa: F401 (the CHILD imports tree_cpu from here)

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "5f03022"  # the last commit that downloaded and parsed PDFs in the daemon itself


# --- ingest: one run of a code tree, in its own process --------------------------------

CHILD = r'''
import asyncio, json, os, re, subprocess, sys, threading, time, inspect
code, letters, rate, workers = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
coverage = sys.argv[6] if len(sys.argv) > 6 else ""  # "on" / "off"; "" = the tree's default
sys.path.insert(0, code)
sys.path.insert(0, os.path.join(code, "benchmarks"))
from ingest_bench import FAST_FLOOR
from appliance.api.client import SupplierClient
from appliance.config.settings import sandbox_api
from appliance.core.packs import load_packs
from appliance.pipeline.pipeline import Pipeline, PipelineSettings
from appliance.config.profile import load_profile
from appliance.store.store import Store
sys.path.insert(0, sys.argv[5])
from intake_bench import tree_cpu

async def main():
    sandbox = subprocess.Popen([sys.executable, "-m", "appliance", "sandbox", "--port", "0",
                                "--letters", str(letters), "--seed", "3"], cwd=code,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = re.search(r"(http://[0-9.]+:\d+)", sandbox.stdout.readline()).group(1)
    threading.Thread(target=sandbox.stdout.read, daemon=True).start()
    import tempfile
    from pathlib import Path
    work = Path(tempfile.mkdtemp(prefix="intake-bench-"))
    (work / "floor.toml").write_text(FAST_FLOOR)
    state = work / "state"
    store = Store(state)
    client = SupplierClient(sandbox_api(url, rate_limit=rate))
    kw = {"spool_dir": state / "spool", "poll_interval": 0.05, "max_in_flight": 2500}
    params = inspect.signature(PipelineSettings).parameters
    if "intake" in params:
        from appliance.intake.settings import IntakeSettings
        extra = {"coverage": coverage == "on"} if coverage else {}
        kw["intake"] = IntakeSettings(workers=workers, **extra)
    else:
        kw["download_workers"] = 32
    pipe = Pipeline(PipelineSettings(**kw), client, store, load_profile(work / "floor.toml"),
                    load_packs(), state_dir=state)
    await pipe.start()
    cpu0, t0 = tree_cpu(os.getpid(), {sandbox.pid}), time.perf_counter()
    while sum(n for s, n in store.counts().items() if s != "PENDING") < letters:
        await asyncio.sleep(0.01)
    wall, cpu = time.perf_counter() - t0, tree_cpu(os.getpid(), {sandbox.pid}) - cpu0
    await pipe.stop()
    await client.aclose()
    store.close()
    sandbox.terminate()
    print(json.dumps({"letters_per_s": round(letters / wall, 1),
                      "cpu_ms_per_letter": round(1000 * cpu / letters, 2), "seconds": round(wall, 2)}))

if __name__ == "__main__":
    asyncio.run(main())
'''


def run_child(code: Path, letters: int, rate: float, workers: int, coverage: str = "") -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(code), str(letters), str(rate), str(workers),
                          str(ROOT / "benchmarks"), coverage], capture_output=True, text=True, cwd=code,
                         timeout=900)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        return {"error": (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]}
    return json.loads(lines[-1])


def baseline_tree(rev: str, into: Path) -> Path | None:
    """A worktree of ``rev`` (None if this is not a git clone that has it, e.g. a CI copy)."""
    r = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), rev],
                       capture_output=True, text=True)
    return into if r.returncode == 0 else None


def part_ingest(a) -> dict:
    out: dict = {"letters": a.letters, "rate_limit": a.rate}
    with tempfile.TemporaryDirectory(prefix="intake-baseline-") as tmp:
        tree = baseline_tree(a.baseline, Path(tmp) / "tree") if a.baseline else None
        try:
            out["baseline"] = ({"rev": a.baseline, **run_child(tree, a.letters, a.rate, 0)} if tree
                               else {"rev": a.baseline, "skipped": "revision not available here"})
        finally:
            if tree:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                               capture_output=True)
    for w in a.workers:
        out[f"workers_{w}"] = run_child(ROOT, a.letters, a.rate, w)
    return out


def part_coverage(a) -> dict:
    """Ingest with coverage measured and not, one after the other on this tree; CPU per page
    from the difference (pages: those of the sandbox's seed-3 letters that parse)."""
    sys.path.insert(0, str(ROOT))
    from appliance.sandbox import Sandbox, SandboxOptions

    sb = Sandbox(SandboxOptions(letters=a.letters, seed=3))
    pages = sum(lt.pages for lt in sb.letters.values() if lt.kind != "corrupt")
    w = max(a.workers)
    on, off = run_child(ROOT, a.letters, a.rate, w, "on"), run_child(ROOT, a.letters, a.rate, w, "off")
    out = {"letters": a.letters, "pages": pages, "workers": w, "on": on, "off": off}
    if "cpu_ms_per_letter" in on and "cpu_ms_per_letter" in off:
        extra = (on["cpu_ms_per_letter"] - off["cpu_ms_per_letter"]) * a.letters
        out["coverage_cpu_ms_per_page"] = round(extra / pages, 2)
    return out


# --- rss and bombs: a real daemon ------------------------------------------------------

def _bombs(quick: bool) -> list[bytes]:
    sys.path.insert(0, str(ROOT))
    from tests.fixtures import hostile_pdfs as h

    if quick:
        return [h.content_bomb(decoded_mb=300), h.objstm_bomb(streams=4, inflated_mb=30),
                h.image_bomb(), h.deep_nesting(depth=50000)]
    return [h.content_bomb(), h.objstm_bomb(), h.shared_offset_xref(), h.image_bomb(),
            h.deep_nesting(), h.many_pages(), h.objstm_bomb(streams=12, inflated_mb=7),
            h.a4(2)]  # the eighth: an honest letter behind a 1 GB gzip body (storage bomb)


def run_daemon(good: int, hostile: bool, quick: bool, workers: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from appliance.runtime.demo import demo_profile_path
    from appliance.sandbox import SandboxOptions, run_in_thread

    with run_in_thread(SandboxOptions(letters=0, bad_ratio=0, seed=11, apply_delay=0.05)) as sb, \
            tempfile.TemporaryDirectory(prefix="intake-daemon-") as tmp:
        if hostile:
            bombs = _bombs(quick)
            for i, pdf in enumerate(bombs):
                sb.add_letter(pdf, storage_faults=["gzip-bomb"] if i == 7 else None)
            for _ in range(8):
                sb.add_letter(storage_faults=["drip"])
        good_ids = sb.add_letters(good, bad_ratio=0)
        cfg = Path(tmp) / "appliance.toml"
        cfg.write_text(f'[api]\nbase_url = "{sb.base_url}"\nauth = "none"\nmax_pdf_mb = 20\n'
                       f'[poll]\ninterval = 0.1\n[intake]\nworkers = {workers}\n'
                       f'[paths]\nstate_dir = "{tmp}/state"\nprofile = "{demo_profile_path()}"\n')
        proc = subprocess.Popen([sys.executable, "-m", "appliance", "run", "--config", str(cfg),
                                 "--socket", f"{tmp}/ctl.sock"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd=ROOT)
        worker_peak, t0, done = 0.0, time.monotonic(), None
        try:
            while time.monotonic() - t0 < 600:
                for pid in descendants(proc.pid):
                    worker_peak = max(worker_peak, peak_rss_mb(pid))
                if all(sb.letters[i].status == "DISPATCHED" for i in good_ids):
                    done = time.monotonic() - t0
                    break
                time.sleep(0.1)
            daemon_peak = peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
        return {"good_letters": good, "seconds_until_good_dispatched": round(done, 2) if done else None,
                "daemon_peak_rss_mb": round(daemon_peak, 1), "largest_worker_rss_mb": round(worker_peak, 1)}


def part_rss(a) -> dict:
    return run_daemon(50 if not a.quick else 10, True, a.quick, 2)


def part_bombs(a) -> dict:
    n = 200 if not a.quick else 20
    calm = run_daemon(n, False, a.quick, 2)
    rough = run_daemon(n, True, a.quick, 2)
    t0, t1 = calm["seconds_until_good_dispatched"], rough["seconds_until_good_dispatched"]
    return {"without": calm, "with_bombs_and_drips": rough,
            "ratio": round(t1 / t0, 2) if t0 and t1 else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="ingest,rss,bombs")
    p.add_argument("--letters", type=int, default=2000)
    p.add_argument("--rate", type=float, default=300)
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--baseline", default=BASELINE, help="git revision to compare with ('' = none)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    a = p.parse_args()
    a.workers = [int(w) for w in a.workers.split(",") if w]
    if a.quick:
        a.letters, a.workers = min(a.letters, 60), a.workers[:1]
    out = {"machine": f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d")}
    for part in a.parts.split(","):
        out[part] = {"ingest": part_ingest, "rss": part_rss, "bombs": part_bombs,
                     "coverage": part_coverage}[part](a)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
