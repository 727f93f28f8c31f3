"""Printing throughput through real CUPS onto ippeveprinter emulators, one job per letter.

Starts a private cupsd with N emulated printers (tests/cups_env.py), submits letters
round-robin through one CupsPrinter driver per queue, and prints one JSON line:
jobs/s submitted (how fast CUPS takes jobs) and letters/s completed (job-state completed
seen by the driver).  The emulator prints one job at a time in about a second, so
letters/s is bounded by the number of emulated printers, not by the appliance.

    python benchmarks/printing_bench.py --letters 60 --printers 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pypdf import PdfWriter  # noqa: E402

from appliance.packs import load_packs  # noqa: E402
from drivers.base import Work  # noqa: E402
from drivers.cups import CupsPrinter  # noqa: E402
from drivers.sim.cups_floor import CupsSandbox, missing_binaries, sandbox_root  # noqa: E402


async def run(letters: int, printers: int, pages: int) -> dict:
    root = sandbox_root()
    sb = CupsSandbox(root)
    drivers: list[CupsPrinter] = []
    try:
        sb.start()
        done: dict[str, float] = {}

        def on_event(ev):
            if ev.kind == "job.completed":
                done[ev.letter_id] = time.perf_counter()

        for i in range(printers):
            name = f"bench-{i}"
            sb.add_printer(name)
            drv = CupsPrinter(name, {"server": sb.server, "notify_seconds": 0.1, "poll_seconds": 2.0},
                              on_event, state_dir=root)
            await drv.start()
            drivers.append(drv)
        pdf = root / "letter.pdf"
        w = PdfWriter()
        for _ in range(pages):
            w.add_blank_page(595, 842)
        w.write(pdf)
        pack = load_packs()["notify-c5"]
        ids = [f"bench-{n:05d}" for n in range(letters)]
        t0 = time.perf_counter()
        for n, lid in enumerate(ids):
            await drivers[n % printers].submit(Work(lid, pdf, pack, pages, (pages + 1) // 2))
        submitted = time.perf_counter() - t0
        deadline = time.monotonic() + 30 + 3 * letters / printers
        while len(done) < letters and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        completed = (max(done.values()) - t0) if done else float("nan")
        received = sum(len(em.received()) for em in sb.emulators.values())
        return {
            "bench": "printing", "letters": letters, "printers": printers, "pages": pages,
            "jobs_per_s_submitted": round(letters / submitted, 1),
            "letters_per_s_completed": round(len(done) / completed, 2),
            "completed": len(done), "received_by_printers": received,
            "submit_s": round(submitted, 3), "complete_s": round(completed, 2),
        }
    finally:
        for drv in drivers:
            await drv.stop()
        sb.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--letters", type=int, default=60)
    p.add_argument("--printers", type=int, default=3)
    p.add_argument("--pages", type=int, default=2)
    args = p.parse_args()
    missing = missing_binaries()
    if missing:
        print(json.dumps({"bench": "printing", "skipped": f"missing {', '.join(missing)}"}))
        return 1
    print(json.dumps(asyncio.run(run(args.letters, args.printers, args.pages))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
