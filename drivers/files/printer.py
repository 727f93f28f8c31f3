"""File printer: "prints" each letter by writing its PDF into an output folder.

Needs no hardware; used by the demo and tests.  Each job reports queued -> processing ->
completed over ``job_seconds``, like a real queue would, and its ledger of printed jobs
is the page counter that ``reconcile()`` reads after a restart.  The printed copies are
patient data: written 0600 in a 0700 folder, deleted once the letter is final (or
``keep_seconds`` later, for a floor that hands the folder to another system).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections import Counter
from pathlib import Path

from appliance.store.journal import Journal, open_private, private_dir
from drivers.base import Driver, Health, Work
from drivers.work_queue import WorkQueue


class FilePrinter(Driver):
    family = "printer"
    SETTINGS = {
        "output_dir": (str, ""),  # default: <state_dir>/output/<printer name>
        "job_seconds": (float, 0.05),
        "fail_every": (int, 0),  # abort every Nth job (fault injection); 0 = never
        "keep_seconds": (float, 0.0),  # keep a printed copy this long after its letter is final
    }

    def __init__(self, name, settings, emit, *, state_dir: Path, **kw):
        super().__init__(name, settings, emit, state_dir=state_dir, **kw)
        out = settings.get("output_dir") or ""
        self.output_dir = Path(out) if out else state_dir / "output" / name
        self._worker = WorkQueue(self._print, lambda: self.paused)
        # One line per finished job: the "page counter" that proves how often a letter
        # was really printed (a restart must never print one twice).
        self.ledger = Journal(self.output_dir / "printed.jsonl")
        self.completed = 0
        self.aborted = 0
        self._final: dict[str, float] = {}  # letter id -> when it became final (keep_seconds)
        # What it holds, counted here (the work queue's own depth misses the piece it has
        # taken and waits with while paused): letter id -> jobs not begun, and the one printing.
        self._waiting: Counter[str] = Counter()
        self._withdrawn: Counter[str] = Counter()  # jobs taken back, skipped when their turn comes
        self._printing: str | None = None

    async def start(self) -> None:
        private_dir(self.output_dir)
        self.spawn("print", self._worker.run)
        if self.settings.get("keep_seconds", 0) > 0:
            self.spawn("retention", self._retention)
        self.emit("device.state", state="idle")

    async def stop(self) -> None:
        await self.stop_tasks()
        self.ledger.close()

    async def submit(self, work: Work) -> str:
        job = f"{self.name}-{work.letter_id}"
        self._waiting[work.letter_id] += 1
        self._worker.put(work)
        self.emit("job.queued", work.letter_id, job, run=work.run)
        return job

    async def withdraw(self, letter_id: str) -> str | None:
        """A job not begun is taken back (it is skipped when its turn comes)."""
        if self._waiting[letter_id] > 0:
            self._waiting[letter_id] -= 1
            self._withdrawn[letter_id] += 1
            return None
        if self._printing == letter_id:
            return f"{self.name} is printing it now"
        return f"{self.name} does not hold it"

    async def _print(self, work: Work, seq: int) -> None:
        lid = work.letter_id
        if self._withdrawn[lid] > 0:  # taken back while it waited: nothing to print, nothing to say
            self._withdrawn[lid] -= 1
            self._tidy(lid)
            return
        self._waiting[lid] -= 1
        self._tidy(lid)
        self._printing = lid
        try:
            await self._print_one(work, seq)
        finally:
            self._printing = None

    def _tidy(self, letter_id: str) -> None:
        for c in (self._waiting, self._withdrawn):
            if c[letter_id] <= 0:
                del c[letter_id]

    async def _print_one(self, work: Work, seq: int) -> None:
        job = f"{self.name}-{work.letter_id}"
        run = {"run": work.run}  # a report of an earlier run is known as such (a reprint's old job)
        self.emit("job.processing", work.letter_id, job, **run)
        await asyncio.sleep(self.settings.get("job_seconds", 0.05))
        every = self.settings.get("fail_every", 0)
        if every and seq % every == 0:
            self.aborted += 1
            self.emit("job.aborted", work.letter_id, job, reason="simulated job abort", **run)
            return
        dest = self.output_dir / f"{work.letter_id}.pdf"
        tmp = dest.with_suffix(".part")
        line = {"letter_id": work.letter_id, "job": job, "pages": work.pages}
        try:  # one thread hop a letter, not two: at full ingest each hop is a GIL hand-off
            await asyncio.to_thread(self._print_file, work.pdf, tmp, dest, line)
        except FileNotFoundError:
            # Its PDF went while it waited (the letter was cancelled or reprinted since):
            # nothing is printed, and the pipeline hears the job ended.
            tmp.unlink(missing_ok=True)
            self.aborted += 1
            self.emit("job.aborted", work.letter_id, job, reason=f"its PDF is gone ({work.pdf.name})", **run)
            return
        self.completed += 1
        self.emit("job.completed", work.letter_id, job, pages=work.pages, sheets=work.sheets, **run)

    def _print_file(self, pdf: Path, tmp: Path, dest: Path, line: dict) -> None:
        _copy_private(pdf, tmp)
        # The ledger line is the moment of printing (the page counter); the file follows.
        self.ledger.append(line)
        os.replace(tmp, dest)

    def forget(self, letter_id: str) -> None:
        if self.settings.get("keep_seconds", 0) <= 0:
            (self.output_dir / f"{letter_id}.pdf").unlink(missing_ok=True)
        else:  # retention counts from the final status; the retention loop deletes it
            self._final[letter_id] = time.time()

    async def _retention(self) -> None:
        keep = self.settings["keep_seconds"]
        while True:
            now = time.time()
            for letter_id, t in list(self._final.items()):
                if now - t >= keep:
                    (self.output_dir / f"{letter_id}.pdf").unlink(missing_ok=True)
                    del self._final[letter_id]
            await asyncio.sleep(min(max(keep / 10, 0.5), 3600))

    async def reconcile(self, letter_ids: list[str]) -> dict[str, str]:
        printed = {r["letter_id"] for r in self.ledger.read()}
        return {lid: ("job.completed" if lid in printed else "absent") for lid in letter_ids}

    def health(self) -> Health:
        depth = sum(self._waiting.values()) + (1 if self._printing else 0)
        state = "paused" if self.paused else ("busy" if depth else "idle")
        return Health(state, str(self.output_dir), depth,
                      {"completed": self.completed, "aborted": self.aborted})


def _copy_private(src: Path, dest: Path) -> None:
    with open(src, "rb") as f, open_private(dest, "wb") as out:
        shutil.copyfileobj(f, out)
