"""The daemon's side of intake: which letter is fetched when, and what its result means.

A letter listed by the poll is ``take``n: it waits in a FIFO until one of
``settings.fetchers`` download slots is free; then the daemon asks
``GET /letters/{id}/data`` (with the bearer token, through the rate limiter) and hands only
the pre-signed URL to a worker, which downloads it into the spool.  The download slot is
released; the letter waits for one of ``settings.workers`` check slots, and a worker reads
the PDF.  So slow storage holds download slots only, and a bomb holds one check slot: good
letters keep flowing past both.  The worker's answer -- or its death -- becomes a ``Fault``
or a verdict:

* verified: the sink's ``intake_verified`` (the pipeline accepts and routes it);
* content fault: the sink's ``intake_rejected`` (REJECTED, or FAILED if already ACCEPTED);
* transport fault: the letter is scheduled again after a backoff, *without a slot*, so
  letters waiting for a retry never slow the others; once the retry budget is spent, the
  sink's ``intake_held`` (a person decides; the letter stays PENDING at Notify);
* a worker that dies checking a letter: tried again once, then PDF_TOO_COMPLEX.

Retry state lives in the letter's record (``intake_*`` fields) so a restart keeps the
schedule and the budget.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Protocol

from appliance.api.auth import TokenError
from appliance.api.client import ApiError, ApiUnavailable, SupplierClient
from appliance.core.errors import UserError
from appliance.core.packs import Pack
from appliance.core.verify import PdfFacts, Verdict, VerifyPolicy, judge
from appliance.intake import faults
from appliance.intake.coverage import CoverageLimits
from appliance.intake.faults import Decision, Fault, FaultClass
from appliance.intake.fetch import FetchLimits, redact
from appliance.intake.pdfcheck import CheckLimits
from appliance.intake.pool import IntakePool, WorkerDied
from appliance.intake.settings import IntakeSettings
from appliance.intake.worker import check_task, fetch_task

#: CPU a download may use (hashing, decoding gzip): far below a check's budget.
FETCH_CPU_SECONDS = 10.0

log = logging.getLogger("appliance.intake")


class IntakeSink(Protocol):
    """What the pipeline does with intake's answers."""

    async def intake_verified(self, letter_id: str, pdf: Path, verdict: Verdict, facts: PdfFacts) -> None: ...
    async def intake_rejected(self, letter_id: str, code: str, text: str) -> None: ...
    async def intake_held(self, letter_id: str, why: str) -> None: ...


class Intake:
    def __init__(self, *, store, client: SupplierClient, pool: IntakePool, packs: dict[str, Pack],
                 policy: VerifyPolicy, settings: IntakeSettings, spool_dir: Path, max_pdf_bytes: int,
                 sink: IntakeSink, alert: Callable[..., None], counters, clock=time.time,
                 order: Callable[[str], Any] | None = None):
        self.store = store
        self.client = client
        self.pool = pool
        self.packs = packs
        self.policy = policy
        self.s = settings
        self.spool_dir = spool_dir
        self.max_pdf_bytes = max_pdf_bytes
        self.sink = sink
        self.alert = alert
        self.counters = counters
        self.clock = clock
        # (order, seq, id), a heap: due letters, earliest dispatch-by first (``order``), stable
        self._order = order or (lambda letter_id: 0)
        self._ready: list[tuple[Any, int, str]] = []
        self._waiting: list[tuple[float, int, str]] = []  # (due, seq, id): retries, a heap
        self._seq = 0
        self._known: set[str] = set()  # ready, waiting or running
        self._running: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        # A letter holds a link slot from asking /data for its download link until its
        # download starts, and a fetch slot (a worker) only while it downloads: the API's
        # answer time (tens of ms against Notify) then overlaps other letters' downloads
        # instead of keeping a download worker idle.  Links live 60 s; one waits ms here.
        self._link_slots = asyncio.Semaphore(2 * settings.fetchers)
        self._fetch_slots = asyncio.Semaphore(settings.fetchers)
        self._check_slots = asyncio.Semaphore(settings.workers)
        self.last_fault: dict[str, str] = {}  # letter id -> last transport fault (for the console)

    # --- what the pipeline calls ---------------------------------------------------------

    def take(self, letter_id: str, at: float | None = None) -> None:
        """Fetch and check this letter (now, or not before ``at``); a no-op if already queued."""
        if letter_id in self._known:
            return
        self._known.add(letter_id)
        if at is not None and at > self.clock():
            self._seq += 1
            heapq.heappush(self._waiting, (at, self._seq, letter_id))
        else:
            self._ready_push(letter_id)
        self._wake.set()

    def _ready_push(self, letter_id: str) -> None:
        self._seq += 1
        heapq.heappush(self._ready, (self._order(letter_id), self._seq, letter_id))

    def pending(self, letter_id: str) -> bool:
        return letter_id in self._known

    @property
    def waiting_retry(self) -> int:
        return len(self._waiting)

    @property
    def queued(self) -> int:
        """Letters taken and due now: waiting for a slot, or being fetched and checked."""
        return len(self._ready) + len(self._running)

    def stats(self) -> dict[str, Any]:
        return {"ready": len(self._ready), "waiting_retry": len(self._waiting),
                "running": len(self._running), **self.pool.stats()}

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Start an attempt whenever a letter is due and a slot is free (supervised)."""
        try:
            while True:
                self._promote_due()
                if not self._ready:
                    self._wake.clear()
                    timeout = (self._waiting[0][0] - self.clock()) if self._waiting else None
                    try:
                        async with asyncio.timeout(None if timeout is None else max(timeout, 0.01)):
                            await self._wake.wait()
                    except TimeoutError:
                        pass
                    continue
                await self._link_slots.acquire()
                letter_id = heapq.heappop(self._ready)[2]
                task = asyncio.create_task(self._attempt(letter_id), name=f"intake-{letter_id[:12]}")
                task.link_slot = True  # released when its download starts (or the task ends)
                self._running.add(task)
                task.add_done_callback(self._done)
        finally:
            for task in list(self._running):
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)

    def _done(self, task: asyncio.Task) -> None:
        self._running.discard(task)
        self._release_link_slot(task)
        self._release_fetch_slot(task)

    def _release_link_slot(self, task: asyncio.Task | None) -> None:
        if task is not None and getattr(task, "link_slot", False):
            task.link_slot = False
            self._link_slots.release()

    def _release_fetch_slot(self, task: asyncio.Task | None) -> None:
        if task is not None and getattr(task, "fetch_slot", False):
            task.fetch_slot = False
            self._fetch_slots.release()

    def _promote_due(self) -> None:
        now = self.clock()
        while self._waiting and self._waiting[0][0] <= now:
            self._ready_push(heapq.heappop(self._waiting)[2])

    # --- one attempt ---------------------------------------------------------------------

    async def _attempt(self, letter_id: str) -> None:
        try:
            await self._try(letter_id)
        except asyncio.CancelledError:
            self._known.discard(letter_id)  # the next start's recovery takes it again
            raise
        except Exception as e:  # a bug here costs this letter a retry, never the loop
            log.exception("intake of letter %s: unexpected error", letter_id)
            self.alert("intake", f"unexpected error while fetching: {type(e).__name__}: {e}", letter_id)
            self._known.discard(letter_id)
            try:
                await self._decided(letter_id, faults.transport("internal", f"{type(e).__name__} in intake"))
            except Exception:  # even scheduling failed: the stuck sweeper takes it again
                log.exception("intake of letter %s: cannot schedule a retry", letter_id)

    async def _try(self, letter_id: str) -> None:
        rec = self.store.peek(letter_id)  # its pack and hash: they never change
        if rec is None or rec["stage"] != "new":
            self._known.discard(letter_id)
            return
        pack = self.packs.get(rec["specification_id"])
        if pack is None:  # nothing to fetch for: the pack decides what a good PDF is
            self._known.discard(letter_id)
            await self.sink.intake_rejected(letter_id, "UNKNOWN_SPECIFICATION",
                                          faults.reject_text("UNKNOWN_SPECIFICATION", rec["specification_id"][:60]))
            return
        fault, result = await self._fetch_and_check(letter_id)
        self._known.discard(letter_id)
        if fault is None:
            facts = PdfFacts(**result["facts"])
            verdict = judge(rec["sha256"], result["sha256"], facts, pack, self.policy)
            self.counters["downloaded"] += 1
            if facts.warnings:
                self.counters["pdf_warnings"] += facts.warnings
            if not verdict.ok:
                self._spool_path(letter_id).unlink(missing_ok=True)
                await self.sink.intake_rejected(letter_id, verdict.reason_code, verdict.reason_text)
                return
            self._clear(letter_id)
            await self.sink.intake_verified(letter_id, self._spool_path(letter_id), verdict, facts)
            return
        await self._decided(letter_id, fault)

    def _spool_path(self, letter_id: str) -> Path:
        return self.spool_dir / f"{letter_id}.pdf"

    async def _fetch_and_check(self, letter_id: str) -> tuple[Fault | None, dict]:
        fault, got = await self._fetch(letter_id)
        self._release_fetch_slot(asyncio.current_task())
        if fault is not None:
            self._spool_path(letter_id).unlink(missing_ok=True)
            return fault, {}
        job = {"path": str(self._spool_path(letter_id)),
               "check": asdict(CheckLimits(max_decoded=int(self.s.max_decoded_mb * 1024 * 1024))),
               "coverage": asdict(CoverageLimits(dpi=self.s.coverage_dpi)) if self.s.coverage else None}
        async with self._check_slots:
            try:
                result = await self.pool.run(check_task, job)
            except WorkerDied as e:
                self._spool_path(letter_id).unlink(missing_ok=True)
                return faults.worker(e.kind, e.detail), {}
        if not result.get("ok"):
            self._spool_path(letter_id).unlink(missing_ok=True)
            return self._fault_of(letter_id, result), {}
        return None, {**got, **result}

    async def _fetch(self, letter_id: str) -> tuple[Fault | None, dict]:
        """GET /data here, the download in a worker: (fault, {}) or (None, {sha256, size})."""
        me = asyncio.current_task()
        try:
            url = await self.client.data_url(letter_id)
        except ApiError as e:
            self._release_link_slot(me)
            return faults.transport("api", f"/data answered {e.status}: {e.detail[:200]}"), {}
        except (ApiUnavailable, TokenError, UserError) as e:
            self._release_link_slot(me)
            return faults.transport("api", f"/data: {str(e)[:200]}"), {}
        if me is not None and getattr(me, "link_slot", False):
            await self._fetch_slots.acquire()  # a worker to download with, link in hand
            me.fetch_slot = True  # released when its download ends (or the task does)
            self._release_link_slot(me)
        job = {"url": url, "dest": str(self._spool_path(letter_id)),
               "hosts": list(self.client.api.presigned_hosts),
               "fetch": asdict(FetchLimits(max_bytes=self.max_pdf_bytes, deadline=self.s.download_seconds,
                                           min_rate=self.s.min_rate_kbps * 1024,
                                           verify_tls=self.client.api.verify_tls))}
        try:
            result = await self.pool.run(fetch_task, job, timeout=self.s.fetch_seconds,
                                         cpu_seconds=FETCH_CPU_SECONDS)
        except WorkerDied as e:  # a download does not parse the PDF: its death is no verdict
            return faults.transport("worker", f"download {e.detail}"), {}
        if result.get("ok"):
            return None, result
        if result.get("class") == "transport":
            log.info("letter %s: fetch from %s failed: %s", letter_id, redact(url), result["detail"])
        return self._fault_of(letter_id, result), {}

    def _fault_of(self, letter_id: str, result: dict) -> Fault:
        if result.get("trace"):
            log.error("letter %s: intake worker error:\n%s", letter_id, result["trace"])
        cls = result.get("class")
        if cls == "content":
            return faults.content(result["code"], result.get("detail", ""))
        if cls == "transport":
            return faults.transport(result.get("kind", "?"), result["detail"])
        return faults.worker(result.get("kind", "error"), result.get("detail", "worker error"))

    async def _decided(self, letter_id: str, fault: Fault) -> None:
        rec = self.store.get(letter_id)
        if rec is None or rec["stage"] != "new":
            return
        now = self.clock()
        attempts = (rec.get("intake_attempts") or 0) + 1
        deaths = rec.get("intake_deaths") or 0
        d: Decision = faults.decide(fault, attempts=attempts, first_fault=rec.get("intake_first_fault"),
                                    deaths=deaths, now=now, policy=self.s.retry)
        self.counters[f"intake_{fault.cls}_faults"] += 1
        if d.action == "reject":
            await self.sink.intake_rejected(letter_id, d.code, d.text)
            return
        fields = {"intake_attempts": attempts, "intake_last": fault.detail,
                  "intake_first_fault": rec.get("intake_first_fault") or now}
        if fault.cls is FaultClass.WORKER:
            fields["intake_deaths"] = deaths + 1
        if d.action == "hold":
            self.store.update(letter_id, event=f"intake held: {d.text}", **fields, intake_retry_at=None)
            await self.sink.intake_held(letter_id, d.text)
            return
        self.store.update(letter_id, event=f"fetch failed ({fault.kind}): {fault.detail}; retry in "
                                           f"{d.at - now:.0f} s", intake_retry_at=round(d.at, 3), **fields)
        self.last_fault[letter_id] = fault.detail
        self.counters["intake_retries"] += 1
        if attempts == 1 or attempts % 10 == 0:
            self.alert("intake", f"PDF not fetched ({fault.detail}); retrying (try {attempts})", letter_id)
        self.take(letter_id, at=d.at)

    def _clear(self, letter_id: str) -> None:
        self.last_fault.pop(letter_id, None)
