"""Letter store benchmark: cost of one status transition + flush as the history grows.

Prints one JSON line:
  transition_ms  mean/median of set_status + flush with 1 000 and 100 000 letters known
                 (known = mostly archived finished letters plus an in-flight hot set)
  ratio          median(100 000) / median(1 000)   (target <= 1.5)
  reopen_s       time to open a Store with 100 000 known, in a fresh process (target <= 2)
  peak_rss_mb    peak RSS (VmHWM; ru_maxrss also shown) of that fresh process (target <= 120)

Usage: python benchmarks/store_bench.py [--quick] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.store.store import Store  # noqa: E402

LIFECYCLE = ("ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED")


def build(state_dir: Path, known: int, hot: int, batch: int = 2000) -> None:
    """``known - hot`` dispatched+acknowledged (archived) letters, then ``hot`` accepted ones."""
    clock = iter(range(1_780_000_000, 1_780_000_000 + 10**9)).__next__
    store = Store(state_dir, clock=lambda: float(clock()))
    finished = known - hot
    n = 0
    while n < finished:
        ids = [f"0{n + i:025d}" for i in range(min(batch, finished - n))]
        for letter_id in ids:
            store.add_letter(letter_id, "notify-c5-standard", "group-1", "a" * 64)
            store.update(letter_id, event="downloaded", stage="downloaded",
                         pdf=f"/spool/{letter_id}.pdf", pages=2, sheets=1)
            for status in LIFECYCLE:
                store.set_status(letter_id, status)
            store.update(letter_id, stage="done", printer="printer-1", job=n)
        store.outbox_ack([e["seq"] for e in store.outbox_pending()])
        store.flush()
        n += len(ids)
    for i in range(hot):
        letter_id = f"1{i:025d}"
        store.add_letter(letter_id, "notify-c5-standard", "group-1", "b" * 64)
        store.update(letter_id, event="downloaded", stage="downloaded",
                     pdf=f"/spool/{letter_id}.pdf", pages=2, sheets=1)
        store.set_status(letter_id, "ACCEPTED")
    store.outbox_ack([e["seq"] for e in store.outbox_pending()])
    store.close()


def time_transitions(dirs: list[Path], samples: int) -> list[list[float]]:
    """ms for one real transition (ACCEPTED -> PRINTED) plus its durable flush, per store.

    The stores are measured alternately so disk/fsync noise hits them equally.
    """
    stores = [Store(d) for d in dirs]
    targets = [[r["id"] for r in s.letters(status="ACCEPTED")][:samples] for s in stores]
    out: list[list[float]] = [[] for _ in stores]
    for i in range(min(len(t) for t in targets)):
        for store, ids, ms in zip(stores, targets, out):
            t0 = time.perf_counter()
            store.set_status(ids[i], "PRINTED", event="job.completed")
            store.flush()
            ms.append((time.perf_counter() - t0) * 1000)
    for store in stores:
        store.close()
    return out


def peak_rss_mb() -> float:
    """Peak RSS of this process.  VmHWM where available: on Linux ``ru_maxrss`` of a child
    can carry the parent's peak across fork+exec, which would overstate a small process."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def measure_open(state_dir: Path) -> None:
    """Child process: open the store, do one transition, report open time and peak RSS."""
    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    store = Store(state_dir)
    opened = time.perf_counter() - t0
    known = len(store.archived_ids()) + len(store.letters())
    letter = next(iter(store.letters(status="ACCEPTED")), None)
    if letter:
        store.set_status(letter["id"], "PRINTED")
    store.close()
    print(json.dumps({"reopen_s": round(opened, 3), "known": known,
                      "peak_rss_mb": peak_rss_mb(), "rss_before_open_mb": rss_before,
                      "ru_maxrss_mb": round(
                          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def summary(ms: list[float]) -> dict:
    return {"mean": round(statistics.mean(ms), 3), "median": round(statistics.median(ms), 3),
            "n": len(ms)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    ap.add_argument("--dir", type=Path, help="where to build the stores (default: a temp dir)")
    ap.add_argument("--measure-open", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure_open:
        measure_open(args.measure_open)
        return

    small, large, hot, samples = (100, 1000, 20, 10) if args.quick else (1000, 100_000, 500, 400)
    root = args.dir or Path(tempfile.mkdtemp(prefix="store-bench-"))
    result: dict = {"known_small": small, "known_large": large, "hot": hot}
    t0 = time.perf_counter()
    for name, known in (("small", small), ("large", large)):
        build(root / name, known, hot)
    result["build_s"] = round(time.perf_counter() - t0, 1)
    small_ms, large_ms = time_transitions([root / "small", root / "large"], samples)
    result["transition_ms"] = {str(small): summary(small_ms), str(large): summary(large_ms)}
    result["ratio"] = round(statistics.median(large_ms) / statistics.median(small_ms), 3)
    child = subprocess.run([sys.executable, __file__, "--measure-open", str(root / "large")],
                           capture_output=True, text=True, check=True)
    result.update(json.loads(child.stdout))
    hot_file = root / "large" / "hot.json"
    result["hot_file_kb"] = round(hot_file.stat().st_size / 1024, 1)
    result["archive_mb"] = round(sum(p.stat().st_size for p in (root / "large" / "archive").iterdir())
                                 / 2**20, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
