"""File printer: "prints" each letter by writing its PDF into an output folder.

Needs no hardware; used by the demo and tests.  Each job reports queued -> processing ->
completed over ``job_seconds``, like a real queue would, and its ledger of printed jobs
is the page counter that ``reconcile()`` reads after a restart.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from drivers.base import Driver, Health, Work
from drivers.sim.ledger import Ledger, SerialWorker


class FilePrinter(Driver):
    family = "printer"
    SETTINGS = {
        "output_dir": (str, ""),  # default: <state_dir>/output/<printer name>
        "job_seconds": (float, 0.05),
        "fail_every": (int, 0),  # abort every Nth job (fault injection); 0 = never
    }

    def __init__(self, name, settings, emit, *, state_dir: Path):
        super().__init__(name, settings, emit, state_dir=state_dir)
        out = settings.get("output_dir") or ""
        self.output_dir = Path(out) if out else state_dir / "output" / name
        self._worker = SerialWorker(self._print, lambda: self.paused)
        # One line per finished job: the "page counter" that proves how often a letter
        # was really printed (a restart must never print one twice).
        self.ledger = Ledger(self.output_dir / "printed.jsonl")
        self.completed = 0
        self.aborted = 0

    async def start(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._worker.start()
        self.emit("device.state", state="idle")

    async def stop(self) -> None:
        await self._worker.stop()

    async def submit(self, work: Work) -> str:
        job = f"{self.name}-{work.letter_id}"
        self._worker.put(work)
        self.emit("job.queued", work.letter_id, job)
        return job

    async def _print(self, work: Work, seq: int) -> None:
        job = f"{self.name}-{work.letter_id}"
        self.emit("job.processing", work.letter_id, job)
        await asyncio.sleep(self.settings.get("job_seconds", 0.05))
        every = self.settings.get("fail_every", 0)
        if every and seq % every == 0:
            self.aborted += 1
            self.emit("job.aborted", work.letter_id, job, reason="simulated job abort")
            return
        dest = self.output_dir / f"{work.letter_id}.pdf"
        tmp = dest.with_suffix(".part")
        await asyncio.to_thread(shutil.copyfile, work.pdf, tmp)
        # The ledger line is the moment of printing (the page counter); the file follows.
        await asyncio.to_thread(self.ledger.append, {"letter_id": work.letter_id, "job": job, "pages": work.pages})
        os.replace(tmp, dest)
        self.completed += 1
        self.emit("job.completed", work.letter_id, job, pages=work.pages, sheets=work.sheets)

    async def reconcile(self, letter_ids: list[str]) -> dict[str, str]:
        printed = {r["letter_id"] for r in self.ledger.read()}
        return {lid: ("job.completed" if lid in printed else "absent") for lid in letter_ids}

    def health(self) -> Health:
        depth = self._worker.depth
        state = "paused" if self.paused else ("busy" if depth else "idle")
        return Health(state, str(self.output_dir), depth,
                      {"completed": self.completed, "aborted": self.aborted})
