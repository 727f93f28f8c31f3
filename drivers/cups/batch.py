"""Batch printing for the CUPS driver: N letters of one pack in one CUPS job.

Why: a production press runs long jobs far better than hundreds of one-letter jobs, but
the appliance must still know, letter by letter, what came out of the printer.

``submit`` adds a letter to the open batch of its pack and returns ``batch-<seq>#<k>``.
A full batch (``batch_letters``), or one idle for ``batch_wait_seconds``, is merged with
pypdf in submission order (the order the inserter expects), a blank back page after an
odd-paged letter when duplex so every letter starts on its own sheet, recorded in a
manifest on disk, then sent as ONE CUPS job named ``batch-<first letter>-<n>-<seq>``.

A letter is PRINTED (``job.completed``) once the printer's own
``job-impressions-completed`` (or ``job-media-sheets-completed``) covers all its sides,
read from the device over IPP (see ``drivers/cups/device.py`` for why not from CUPS), and
every letter left is PRINTED when CUPS says the job completed.  If the job fails
(aborted, cancelled, stalled), letters already covered stay PRINTED and only the others
get ``job.aborted``/``job.canceled``, so the pipeline reprints just those elsewhere.
"""

# Size: batch jobs: merge, manifest (crash safety), per-letter progress from the printer's own
# counter and partial failure: one mechanism, kept together so its restart argument reads in order.

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from appliance.core.errors import UserError
from appliance.core.packs import Pack
from appliance.store.journal import open_private, write_private
from drivers.base import Work
from drivers.cups.device import DeviceProgress
from drivers.cups.ipp import (
    COMPLETED,
    FINAL_STATES,
    HELD,
    PENDING,
    PROCESSING,
    STOPPED,
    describe_job,
    ipp_options,
    job_event,
    reasons_of,
)
from drivers.cups.jobs import Tracked
from drivers.cups.session import CupsRefused, CupsUnavailable

log = logging.getLogger("drivers.cups.printer")


class BatchHost(Protocol):
    """What the batcher uses of its printer (``drivers.cups.printer.CupsPrinter``)."""

    name: str
    state_dir: Path
    queue: str
    paused: bool
    reachable: bool
    counters: dict[str, int]
    jobs: dict[int, Tracked]
    io: Any  # the CupsSession that submits and cancels

    def emit(self, kind: str, letter_id: str | None = None, job: str | None = None, **detail: Any) -> None: ...
    def spawn(self, what: str, factory: Any) -> None: ...
    def publish(self) -> None: ...
    def alert(self, key: str, message: str, letter_id: str | None = None) -> None: ...
    def clear_alerts(self, prefix: str) -> None: ...
    def clear_stall(self) -> None: ...
    def job_submitted(self, job_id: int) -> None: ...
    async def cancel_and_reroute(self, t: Tracked, why: str) -> None: ...

#: Finished batches stay in the manifest this long, so a restart that happens before the
#: pipeline made their statuses durable can still match them.
KEEP_FINISHED_SECONDS = 2 * 24 * 3600.0
#: After cancelling a batch, how long to wait for the printer to settle its final count.
SETTLE_SECONDS = 3.0


# --- pure layout ----------------------------------------------------------------------

@dataclass(frozen=True)
class Slot:
    """One letter's place in a merged batch document."""

    letter_id: str
    position: int  # 1-based, the order the inserter receives them
    pages: int  # in the merged document, blank back page included
    sheets: int
    end_impressions: int  # sides printed when this letter's last sheet is out
    end_sheets: int


def layout(letters: list[tuple[str, int]], duplex: bool) -> list[Slot]:
    """Slots for (letter id, merged page count) in order; counts are cumulative."""
    slots, impressions, sheets = [], 0, 0
    for k, (lid, pages) in enumerate(letters, 1):
        n_sheets = -(-pages // (2 if duplex else 1))
        impressions += pages
        sheets += n_sheets
        slots.append(Slot(lid, k, pages, n_sheets, impressions, sheets))
    return slots


def covered(slots: list[Slot], impressions: int, sheets: int) -> int:
    """How many letters, from the front, the printer's counters prove finished."""
    n = 0
    for s in slots:
        if impressions >= s.end_impressions or (sheets > 0 and sheets >= s.end_sheets):
            n += 1
        else:
            break
    return n


def batch_name(first_letter: str, count: int, seq: int) -> str:
    return f"batch-{first_letter}-{count}-{seq}"


# --- merging --------------------------------------------------------------------------

def merge(works: list[Work], out: Path, duplex: bool) -> tuple[list[tuple[str, int]], list[tuple[Work, str]]]:
    """Write the letters' PDFs into ``out`` in order.  Returns ([(letter id, pages)],
    [(work, why)] for letters whose PDF could not be read; those are left out)."""
    from pypdf import PdfReader, PdfWriter  # noqa: PLC0415 - only batch floors need it here

    writer = PdfWriter()
    placed: list[tuple[str, int]] = []
    bad: list[tuple[Work, str]] = []
    for w in works:
        try:
            pages = list(PdfReader(str(w.pdf)).pages)
            if not pages:
                raise ValueError("no pages")
        except Exception as e:  # noqa: BLE001 - any unreadable PDF is that letter's failure only
            bad.append((w, f"cannot read {w.pdf}: {type(e).__name__}: {e}"))
            continue
        for page in pages:
            writer.add_page(page)
        n = len(pages)
        if duplex and n % 2:
            box = pages[-1].mediabox
            writer.add_blank_page(float(box.width), float(box.height))
            n += 1
        placed.append((w.letter_id, n))
    if placed:
        with open_private(out, "wb") as f:  # patient data
            writer.write(f)
    return placed, bad


# --- manifest -------------------------------------------------------------------------

class Manifest:
    """Batch name -> ordered letters, written atomically before the job goes to CUPS, so
    a restart can match a CUPS job (found by its name) back to its letters."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict = {"seq": 0, "batches": {}}
        if path.exists():
            try:
                data = json.loads(path.read_text())
                assert isinstance(data.get("batches"), dict)
                self.data = data
            except (ValueError, AssertionError, AttributeError) as e:
                raise UserError(f"batch manifest {path} is damaged ({type(e).__name__}); move it aside and "
                                "check the letters of this printer by hand: a restart cannot match its "
                                "batch jobs without it") from None

    def next_seq(self) -> int:
        self.data["seq"] = int(self.data.get("seq", 0)) + 1
        return self.data["seq"]

    def record(self, name: str, slots: list[Slot]) -> None:
        self.data["batches"][name] = {
            "t": time.time(), "done": False,
            "letters": [[s.letter_id, s.pages, s.sheets, s.end_impressions, s.end_sheets] for s in slots]}
        self._prune()
        self.save()

    def finished(self, name: str) -> None:
        entry = self.data["batches"].get(name)
        if entry and not entry["done"]:
            entry["done"], entry["t"] = True, time.time()
            self.save()

    def forget(self, name: str) -> None:
        if self.data["batches"].pop(name, None) is not None:
            self.save()

    def slots(self, name: str) -> list[Slot]:
        rows = self.data["batches"][name]["letters"]
        return [Slot(lid, k, p, s, ei, es) for k, (lid, p, s, ei, es) in enumerate(rows, 1)]

    def batches_with(self, letter_ids: list[str]) -> dict[str, list[Slot]]:
        wanted = set(letter_ids)
        return {name: self.slots(name) for name, e in self.data["batches"].items()
                if wanted & {row[0] for row in e["letters"]}}

    def _prune(self) -> None:
        old = time.time() - KEEP_FINISHED_SECONDS
        self.data["batches"] = {n: e for n, e in self.data["batches"].items() if not (e["done"] and e["t"] < old)}

    def save(self) -> None:
        write_private(self.path, json.dumps(self.data, separators=(",", ":")).encode(), durable=True)


# --- the batcher ----------------------------------------------------------------------

@dataclass
class OpenBatch:
    seq: int
    pack: Pack
    works: list[Work] = field(default_factory=list)
    touched: float = 0.0


@dataclass
class BatchJob:
    """What the driver follows for a batch job (hangs off ``Tracked.batch``)."""

    name: str
    slots: list[Slot]
    reported: int = 0  # letters from the front already reported (PRINTED or failed)
    impressions: int = 0  # the printer's own counters for the job
    sheets: int = 0
    ended: bool = False


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


class Batcher:
    """Batches for one ``CupsPrinter``; the printer calls in at submit, job changes,
    stalls, stops and restart."""

    def __init__(self, printer: "BatchHost", size: int, wait_seconds: float, progress_seconds: float,
                 device_uri: str):
        self.p = printer
        self.size = size
        self.wait_seconds = wait_seconds
        self.progress_seconds = progress_seconds
        self.device_uri = device_uri  # "" = the queue's own device-uri, learned from CUPS
        self.open: dict[str, OpenBatch] = {}  # pack id -> batch being filled
        self.spool = printer.state_dir / "cups-batch-spool"
        self.manifest = Manifest(printer.state_dir / f"cups-batches-{_safe(printer.name)}.json")
        self.progress: DeviceProgress | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()

    # --- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        self.spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.spool, 0o700)  # patient data
        self.p.spawn("batches", self._loop)

    async def stop(self) -> None:
        """Open batches never reached CUPS: after a restart their letters are ``absent``
        and simply submitted again."""
        tasks = list(self._tasks)  # the batch loop stops with the printer's other loops
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.progress:
            await self.progress.aclose()

    def learn_device_uri(self, uri: str) -> None:
        if not self.device_uri and uri:
            self.device_uri = uri

    def letters_waiting(self) -> int:
        return sum(len(b.works) for b in self.open.values())

    # --- filling and flushing ---------------------------------------------------------

    async def add(self, work: Work) -> str:
        batch = self.open.get(work.pack.id)
        if batch is None:
            batch = self.open[work.pack.id] = OpenBatch(self.manifest.next_seq(), work.pack)
        batch.works.append(work)
        batch.touched = time.monotonic()
        ref = f"batch-{batch.seq}#{len(batch.works)}"
        self.p.emit("job.queued", work.letter_id, ref, queue=self.p.queue, batch=ref.split("#")[0],
                    position=len(batch.works), state=f"waiting for a batch of {self.size}")
        if len(batch.works) >= self.size:
            await self.flush(work.pack.id)
        return ref

    async def flush(self, pack_id: str) -> None:
        async with self._lock:
            batch = self.open.pop(pack_id, None)
            if batch is None or not batch.works:
                return
            await self._send(batch)

    async def _send(self, batch: OpenBatch) -> None:
        p = self.p
        first = batch.works[0].letter_id
        name = batch_name(first, len(batch.works), batch.seq)
        pdf = self.spool / f"{_safe(name)}.pdf"
        try:
            placed, bad = await asyncio.to_thread(merge, batch.works, pdf, batch.pack.duplex)
            for w, why in bad:
                p.counters["aborted"] += 1
                p.emit("job.aborted", w.letter_id, None, reason=f"left out of batch {name}: {why}")
            if not placed:
                return
            slots = layout(placed, batch.pack.duplex)
            await asyncio.to_thread(self.manifest.record, name, slots)  # before printFile
            # Print sides in the order merged: CUPS would otherwise reverse the whole job
            # for a face-up output bin, and the printer's count would no longer name letters.
            opts = {**ipp_options(batch.pack), "outputorder": "normal"}
            queue, path = p.queue, str(pdf)
            try:
                job_id = int(await p.io(lambda c: c.printFile(queue, path, name, opts)))
            except (CupsUnavailable, CupsRefused) as e:
                if isinstance(e, CupsUnavailable):
                    p.reachable = False
                    p.publish()
                await asyncio.to_thread(self.manifest.forget, name)
                extra = {"service_fault": True} if isinstance(e, CupsUnavailable) else {}  # see CupsPrinter.submit
                for s in slots:
                    p.counters["aborted"] += 1
                    p.emit("job.aborted", s.letter_id, None, reason=f"CUPS did not take batch {name}: {e}", **extra)
                return
        finally:
            pdf.unlink(missing_ok=True)  # CUPS has its own copy now; patient data leaves no trace
        self.track(job_id, BatchJob(name, slots), state=0)
        p.counters["submitted"] += 1
        p.counters["batches"] = p.counters.get("batches", 0) + 1
        for s in slots:
            p.emit("job.queued", s.letter_id, str(job_id), queue=p.queue, options=opts, batch=name,
                   position=s.position, of=len(slots))
        p.job_submitted(job_id)

    def track(self, job_id: int, bj: BatchJob, state: int, reasons: tuple[str, ...] = ()) -> Tracked:

        last = bj.slots[-1]
        t = Tracked(job_id, bj.name, last.end_impressions, last.end_sheets, state=state or 3, reasons=reasons,
                    last_change=time.monotonic(), started=state in (PROCESSING, STOPPED), batch=bj)
        self.p.jobs[job_id] = t
        return t

    async def _loop(self) -> None:
        """Flush batches idle too long; read the printer's progress on batches printing."""
        tick = max(0.05, min(self.wait_seconds / 4, self.progress_seconds, 0.25))
        next_progress = 0.0
        while True:
            await asyncio.sleep(tick)
            try:
                now = time.monotonic()
                if not self.p.paused:
                    for pack_id, b in list(self.open.items()):
                        if now - b.touched >= self.wait_seconds:
                            await self.flush(pack_id)
                if now >= next_progress:
                    next_progress = now + self.progress_seconds
                    for t in [t for t in self.p.jobs.values() if t.batch and t.started]:
                        await self.read_progress(t)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a dead batcher would strand letters
                log.exception("%s: batch error", self.p.name)
                self.p.alert(f"bug:batch:{type(e).__name__}", f"batch printing error: {e}")

    # --- progress ---------------------------------------------------------------------

    async def _device_job(self, name: str):
        if not self.device_uri:
            return None
        if self.progress is None or self.progress.device_uri != self.device_uri:
            self.progress = DeviceProgress(self.device_uri)
        job = await self.progress.job(name)
        if job is None and self.progress.last_error:
            self.p.alert("progress", f"cannot read batch progress from the printer ({self.progress.last_error}); "
                                      "letters of a batch are PRINTED when the whole job completes")
        elif job is not None:
            self.p.clear_alerts("progress")
        return job

    async def read_progress(self, t: Tracked) -> None:
        bj = t.batch
        job = await self._device_job(bj.name)
        if job is None or bj.ended:
            return
        if (job.impressions, job.sheets) != (bj.impressions, bj.sheets):
            bj.impressions, bj.sheets = max(bj.impressions, job.impressions), max(bj.sheets, job.sheets)
            t.last_change = time.monotonic()  # paper is moving: not a stall
            if t.stalled:
                self.p.clear_stall()
        self._report_printed(t, covered(bj.slots, bj.impressions, bj.sheets), "printer progress")

    def _report_printed(self, t: Tracked, upto: int, how: str) -> None:
        bj = t.batch
        for s in bj.slots[bj.reported:upto]:
            self.p.counters["completed"] += 1
            self.p.emit("job.completed", s.letter_id, str(t.job_id), queue=self.p.queue, batch=bj.name,
                        position=s.position, of=len(bj.slots), pages=s.pages, sheets=s.sheets,
                        state=f"printed ({how})")
        bj.reported = max(bj.reported, upto)

    # --- job changes ------------------------------------------------------------------

    def job_changed(self, t: Tracked, state: int, reasons: tuple[str, ...], kind: str) -> None:
        """Called by the printer when CUPS reports a new state for a batch job."""
        p, bj = self.p, t.batch
        if state == COMPLETED and kind == "job.completed":
            self._report_printed(t, len(bj.slots), "job completed")
            self._end(t)
            return
        if state in FINAL_STATES:
            why = f"CUPS job {t.job_id} (batch {bj.name}) {describe_job(state, reasons)}"
            self._spawn(self.fail(t, kind, why))
            return
        if bj.reported and state in (PENDING, HELD):
            # CUPS sends a job back to the queue when its printer is disabled or the backend
            # fails, and would print it again from the first page: letters already out
            # would come out twice.  Cancel it and reprint only the rest.
            self._spawn(p.cancel_and_reroute(t, f"CUPS put batch {bj.name} back in the queue after "
                                                 f"{bj.reported} letters printed"))
            return
        if state in (HELD, STOPPED):
            p.alert(f"job:{t.job_id}:{state}", f"batch job {t.job_id} ({bj.name}, {len(bj.slots)} letters) is "
                                                f"{describe_job(state, reasons)}")
        for s in bj.slots[bj.reported:]:
            p.emit(kind, s.letter_id, str(t.job_id), queue=p.queue, batch=bj.name, position=s.position,
                   state=describe_job(state, reasons))

    async def fail(self, t: Tracked, kind: str, why: str, *, service_fault: bool = False) -> None:
        """The job will not finish: letters the printer proves done stay PRINTED, the
        others get ``kind`` (job.aborted / job.canceled: the pipeline reprints them;
        ``service_fault``: without counting a print attempt)."""
        bj = t.batch
        if bj.ended:
            return
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:  # let the printer finish its own cancel so its count is final
            job = await self._device_job(bj.name)
            if job is not None:
                bj.impressions, bj.sheets = max(bj.impressions, job.impressions), max(bj.sheets, job.sheets)
            if job is None or job.state in FINAL_STATES or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        self._report_printed(t, covered(bj.slots, bj.impressions, bj.sheets), "printer progress")
        rest = bj.slots[bj.reported:]
        if rest:
            self.p.counters["aborted" if kind != "job.canceled" else "canceled"] += 1
            self.p.alert(f"batchfail:{bj.name}", f"{why}: {bj.reported} of {len(bj.slots)} letters printed, "
                                                  f"{len(rest)} go back for reprint (from position {rest[0].position})")
        extra = {"service_fault": True} if service_fault else {}
        for s in rest:
            self.p.emit(kind, s.letter_id, str(t.job_id), queue=self.p.queue, batch=bj.name, position=s.position,
                        reason=f"{why}; letter {s.position} of {len(bj.slots)} not proven printed", **extra)
        bj.reported = len(bj.slots)
        self._end(t)

    def _end(self, t: Tracked) -> None:
        t.batch.ended = True
        self.p.jobs.pop(t.job_id, None)
        self._spawn(asyncio.to_thread(self.manifest.finished, t.batch.name))
        self.p.publish()

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def abort_open(self, why: str) -> None:
        """Letters still waiting for a batch never reached CUPS: hand them all back, without
        counting a print attempt (none was made)."""
        for batch in list(self.open.values()):
            for w in batch.works:
                self.p.counters["rerouted"] += 1
                self.p.emit("job.aborted", w.letter_id, None, reason=f"not sent: {why}", service_fault=True)
        self.open.clear()

    # --- restart ----------------------------------------------------------------------

    async def reconcile(self, jobs: dict, letter_ids: list[str]) -> tuple[dict[str, str], list[str]]:
        """Match batch jobs (by name, through the manifest) back to letters.

        Returns (letter id -> event kind, the letter ids no batch speaks for).  A letter
        the printer's count proves printed is ``job.completed`` even when the job failed
        later; a batch still in CUPS is followed again (its letters: still at device).
        """
        from drivers.cups.match import on_queue  # noqa: PLC0415

        by_name: dict[str, list[tuple[int, dict]]] = {}
        for jid, a in sorted((int(j), a) for j, a in jobs.items()):
            if on_queue(a, self.p.queue) and "job-name" in a:
                by_name.setdefault(a["job-name"], []).append((jid, a))
        verdicts: dict[str, list[str]] = {}
        for name, slots in self.manifest.batches_with(letter_ids).items():
            cups_jobs = by_name.get(name, [])
            if not cups_jobs:
                for s in slots:
                    verdicts.setdefault(s.letter_id, []).append("absent")
                continue
            jid, a = cups_jobs[-1]
            state, reasons = a.get("job-state", 0), reasons_of(a.get("job-state-reasons"))
            kind = job_event(state, reasons) or "job.queued"
            bj = BatchJob(name, slots)
            if state in (PROCESSING, STOPPED) or (state in FINAL_STATES and kind != "job.completed"):
                job = await self._device_job(name)
                if job is not None:
                    bj.impressions, bj.sheets = job.impressions, job.sheets
            done = len(slots) if kind == "job.completed" else covered(slots, bj.impressions, bj.sheets)
            for s in slots:
                verdicts.setdefault(s.letter_id, []).append("job.completed" if s.position <= done else kind)
            if state not in FINAL_STATES:
                bj.reported = done
                self.track(jid, bj, state, reasons)
            else:
                self._spawn(asyncio.to_thread(self.manifest.finished, name))
        found = {}
        for lid, kinds in verdicts.items():
            if lid not in letter_ids:
                continue
            active = [k for k in kinds if k in ("job.queued", "job.processing", "job.held", "job.stopped")]
            found[lid] = ("job.completed" if "job.completed" in kinds else active[-1] if active
                          else "absent" if kinds[-1] == "absent" else kinds[-1])
        return found, [lid for lid in letter_ids if lid not in found]
