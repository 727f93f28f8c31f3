"""Printing throughput through real CUPS onto ippeveprinter emulators: one CUPS job per
letter vs batch jobs (printer ``batch_letters``), side by side in one run.

Starts a private cupsd with N emulated printers (drivers/sim/cups_floor.py), submits
letters round-robin through one CupsPrinter driver per queue, once per mode on fresh
queues, and prints one JSON line: per mode, CUPS jobs/s and letters/s submitted (how fast
CUPS takes the work) and letters/s completed (every letter PRINTED as the driver reports
it), plus the batch/single ratio.  The emulator prints one job at a time in about a
second whatever its size, so one-job-per-letter is bounded by job overhead.

    python benchmarks/printing_bench.py --letters 60 --printers 3 --batch 20
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

from appliance.core.packs import load_packs  # noqa: E402
from drivers.base import Work  # noqa: E402
from drivers.cups.printer import CupsPrinter  # noqa: E402
from drivers.sim.cups_floor import CupsSandbox, missing_binaries, sandbox_root  # noqa: E402


async def run_mode(sb: CupsSandbox, root: Path, mode: str, letters: int, printers: int, pages: int,
                   batch: int) -> dict:
    done: dict[str, float] = {}

    def on_event(ev):
        if ev.kind == "job.completed" and ev.letter_id not in done:
            done[ev.letter_id] = time.perf_counter()

    settings = {"server": sb.server, "notify_seconds": 0.1, "poll_seconds": 2.0}
    if mode == "batch":
        settings.update(batch_letters=batch, batch_wait_seconds=1.0, batch_progress_seconds=0.25)
    drivers: list[CupsPrinter] = []
    state = root / mode
    state.mkdir()
    try:
        for i in range(printers):
            name = f"{mode}-{i}"
            sb.add_printer(name)
            drv = CupsPrinter(name, {**settings, "queue": name}, on_event, state_dir=state)
            await drv.start()
            drivers.append(drv)
        pdf = root / "letter.pdf"
        pack = load_packs()["notify-c5"]
        ids = [f"{mode}-{n:05d}" for n in range(letters)]
        t0 = time.perf_counter()
        for n, lid in enumerate(ids):
            await drivers[n % printers].submit(Work(lid, pdf, pack, pages, (pages + 1) // 2))
        submitted = time.perf_counter() - t0
        deadline = time.monotonic() + 30 + 3 * letters / printers
        while len(done) < letters and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        completed = (max(done.values()) - t0) if done else float("nan")
        while any(d.jobs for d in drivers) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # CUPS may finish its job after the printer's count said PRINTED
        all_jobs_done = time.perf_counter() - t0
        jobs = sum(len(sb.emulators[f"{mode}-{i}"].files()) for i in range(printers))
        return {
            "cups_jobs": jobs,
            "jobs_per_s_submitted": round(jobs / submitted, 1),
            "letters_per_s_submitted": round(letters / submitted, 1),
            "letters_per_s_completed": round(len(done) / completed, 2),
            "completed": len(done), "submit_s": round(submitted, 3), "complete_s": round(completed, 2),
            "cups_jobs_done_s": round(all_jobs_done, 2),
        }
    finally:
        for drv in drivers:
            await drv.stop()
        for i in range(printers):
            sb.remove_printer(f"{mode}-{i}")


async def run(letters: int, printers: int, pages: int, batch: int) -> dict:
    root = sandbox_root()
    sb = CupsSandbox(root)
    try:
        sb.start()
        w = PdfWriter()
        for _ in range(pages):
            w.add_blank_page(595, 842)
        w.write(root / "letter.pdf")
        single = await run_mode(sb, root, "single", letters, printers, pages, batch)
        batched = await run_mode(sb, root, "batch", letters, printers, pages, batch)
        return {
            "bench": "printing", "letters": letters, "printers": printers, "pages": pages,
            "batch_letters": batch, "single": single, "batch": batched,
            "ratio_letters_per_s_completed": round(batched["letters_per_s_completed"]
                                                   / single["letters_per_s_completed"], 2),
        }
    finally:
        sb.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--letters", type=int, default=60)
    p.add_argument("--printers", type=int, default=3)
    p.add_argument("--pages", type=int, default=2)
    p.add_argument("--batch", type=int, default=20, help="batch_letters for the batch run")
    args = p.parse_args()
    missing = missing_binaries()
    if missing:
        print(json.dumps({"bench": "printing", "skipped": f"missing {', '.join(missing)}"}))
        return 1
    print(json.dumps(asyncio.run(run(args.letters, args.printers, args.pages, args.batch))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
