"""Read-back and audit benchmark.

Prints one JSON line:
  judge_us          mean cost of one envelope verdict (3-sheet piece), microseconds
  audit_rows_ms     AuditLog.rows() over 2 000 batches x 50 pieces (the whole window)
  audit_reload_s    a restarted daemon's first audit question: reading those facts back
  floor             the serial floor with readback on (LF-3000 camera on a pty, real
                    pyserial), N letters, one read-back fault every ``--fault-every``
                    pieces: seconds, letters/s, reprints, held, and duplicates = letters
                    the sandbox received ENCLOSED or DISPATCHED more than once (must be 0)
  baseline          the same floor and letters with readback off and no camera

Usage: python benchmarks/readback_bench.py [--letters 200] [--fault-every 25]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.core.markcode import encode  # noqa: E402
from appliance.core.readback import judge  # noqa: E402
from appliance.pipeline.audit import AuditLog  # noqa: E402
from drivers.base import DeviceEvent  # noqa: E402

FLOOR = Path(__file__).resolve().parent.parent / "hardware-profiles" / "serial-floor.toml"
SIM_LINE = 'sim_options = ["piece_seconds=0.002", "heartbeat=0.5"]\nreconnect_max = 2.0'


def bench_judge(n: int = 100_000) -> float:
    reads = [encode("0aB3-x_9", k, 3, 41) for k in (1, 2, 3)]
    t = time.perf_counter()
    for _ in range(n):
        judge("0aB3-x_9", 3, 41, reads)
    return (time.perf_counter() - t) / n * 1e6


def bench_audit(folder: Path, batches: int = 2000) -> tuple[float, float]:
    log = AuditLog(folder, {"lf3000"})
    t0 = 1_780_000_000.0
    for b in range(1, batches + 1):
        for s in range(1, 51):
            d = {"batch": b, "seq": s}
            log.note(DeviceEvent("lf3000", "job.queued", f"L{b}-{s}", None, d, t0 + b))
            log.note(DeviceEvent("lf3000", "piece.inserted", f"L{b}-{s}", None, d, t0 + b))
    log.rows(limit=1)  # the first question reads the day files in
    t = time.perf_counter()
    rows = log.rows(limit=5000)
    rows_ms = (time.perf_counter() - t) * 1000
    assert len(rows) == batches
    t = time.perf_counter()
    AuditLog(folder, {"lf3000"}).rows(limit=1)  # a restarted daemon's first audit question
    return rows_ms, time.perf_counter() - t


async def bench_floor(tmp: Path, letters: int, every: int, readback: bool = True) -> dict:
    from appliance.api.client import SupplierClient
    from appliance.config.profile import load_profile
    from appliance.config.settings import sandbox_api
    from appliance.core.packs import load_packs
    from appliance.pipeline.pipeline import Pipeline, PipelineSettings
    from appliance.sandbox import Sandbox, SandboxOptions
    from appliance.store.store import Store

    faults = ", ".join(f'"{name}={every * (i + 1)}"' for i, name in enumerate(
        ("read_missing_at", "read_foreign_at", "read_duplicate_at", "read_unreadable_at", "read_stale_at")))
    text = FLOOR.read_text()
    if readback:
        text = text.replace(SIM_LINE, f'sim_options = ["piece_seconds=0.002", "heartbeat=0.5", '
                                      f'"reader=true", {faults}]\nreconnect_max = 2.0\nreadback = true')
    tmp.mkdir(parents=True, exist_ok=True)
    profile = tmp / "floor.toml"
    profile.write_text(text + "\n[reprint]\ntries = 1\n")
    sb = Sandbox(SandboxOptions(letters=letters, bad_ratio=0.0, seed=5, apply_delay=0.05))
    await sb.start(host="127.0.0.1", port=0)
    store = Store(tmp / "state")
    client = SupplierClient(sandbox_api(sb.base_url))
    pipe = Pipeline(PipelineSettings(spool_dir=tmp / "state" / "spool", poll_interval=0.1, prove_after=0.3),
                    client, store,
                    load_profile(profile), load_packs(), state_dir=tmp / "state")
    t = time.perf_counter()
    await pipe.start()
    try:
        while True:
            held = {r["id"] for r in store.letters(stage="operator-hold")}
            if all(l.status == "DISPATCHED" or l.id in held for l in sb.letters.values()):
                break
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - t
        await asyncio.sleep(0.3)
        dup = sum(1 for l in sb.letters.values()
                  if any([s for s, _ in l.history].count(x) > 1 for x in ("ENCLOSED", "DISPATCHED")))
        return {"letters": letters, "seconds": round(seconds, 2), "letters_per_s": round(letters / seconds, 1),
                "reprints": pipe.counters["reprints"], "held": len(held), "duplicates": dup,
                "reads": pipe.devices["lf3000"].health().counters.get("reads", 0)}
    finally:
        await pipe.stop()
        await client.aclose()
        store.close()
        await sb.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--letters", type=int, default=200)
    ap.add_argument("--fault-every", type=int, default=25)
    ap.add_argument("--audit-batches", type=int, default=2000,
                    help="inserter batches of 50 pieces in the audit log read back (each piece "
                         "is written durably: the smoke test uses few)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        rows_ms, reload_s = bench_audit(Path(d) / "audit", a.audit_batches)
        floor = asyncio.run(bench_floor(Path(d) / "readback", a.letters, a.fault_every))
        baseline = asyncio.run(bench_floor(Path(d) / "baseline", a.letters, a.fault_every, readback=False))
    print(json.dumps({"judge_us": round(bench_judge(), 2), "audit_rows_ms": round(rows_ms, 1),
                      "audit_reload_s": round(reload_s, 2), "floor": floor, "baseline": baseline}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
