"""CUPS printer driver: submit letters to a CUPS queue and follow every job to its end.

Events come from a CUPS subscription (``createSubscription`` / ``getNotifications``,
pulled every ``notify_seconds``, resuming from the last ``notify-sequence-number`` and
renewing the lease), and a full ``getJobAttributes`` poll every ``poll_seconds`` is the
fallback that also repairs any gap in the notifications.  A job is PRINTED only when CUPS
says ``completed`` with no failure reason; a job that makes no progress for
``stall_seconds`` (device gone: CUPS then shows "processing" forever) raises an alert
and, with ``on_stall = "reroute"``, is cancelled and handed back for another printer.
With ``batch_letters`` > 1, letters of one pack share one CUPS job (``drivers/cups/batch.py``).
"""

# Size: one CUPS queue's whole life (submit, subscription + polling, stalls, orphans, restart
# reconciliation) works on one table of tracked jobs; IPP vocabulary, matching, the session
# thread and batching live in their own modules.

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

from appliance.core.errors import ConfigError
from appliance.store.journal import private_dir, write_private
from drivers.base import Driver, Health, Work
from drivers.cups.batch import Batcher
from drivers.cups.ipp import (
    FINAL_STATES,
    HELD,
    PENDING,
    PRINTER_IDLE,
    PRINTER_STOPPED,
    PROCESSING,
    STOPPED,
    PrinterFacts,
    alert_worthy,
    blocking,
    describe_job,
    device_state,
    ipp_options,
    job_event,
    reasons_of,
)
from drivers.cups.jobs import Tracked
from drivers.cups.match import NamesHidden, incomplete_jobs, match_jobs
from drivers.cups.session import (
    NOT_FOUND,
    CupsRefused,
    CupsSession,
    CupsUnavailable,
    describe_server,
    import_cups,
)

log = logging.getLogger("drivers.cups.printer")

JOB_ATTRS = ["job-id", "job-name", "job-state", "job-state-reasons", "job-printer-uri", "number-of-documents",
             "job-impressions-completed", "job-media-sheets-completed"]
PRINTER_ATTRS = ["printer-state", "printer-state-reasons", "printer-is-accepting-jobs",
                 "printer-state-message", "queued-job-count", "device-uri"]
GET_JOBS_PAGE = 500  # cupsd's own cap on one Get-Jobs answer that needs job attributes
EVENTS = ["job-state-changed", "job-progress", "printer-state-changed"]


def _choice(name: str, settings: dict, key: str, allowed: tuple[str, ...]) -> str:
    value = settings.get(key) or allowed[0]
    if value not in allowed:
        raise ConfigError(f"printer {name!r} {key}: must be one of {', '.join(allowed)}, got {value!r}")
    return value


class CupsPrinter(Driver):
    family = "printer"
    SETTINGS = {
        "queue": (str, ""),  # CUPS queue name; default: the printer's name
        "server": (str, ""),  # "" = CUPS default (CUPS_SERVER, client.conf); "host:port" or socket path
        "stall_seconds": (float, 120.0),  # no job progress for this long -> alert + on_stall
        "on_stall": (str, "wait"),  # wait | reroute (cancel the CUPS job, try another printer)
        "orphan_seconds": (float, 30.0),  # job left "pending, job-printing" by a cupsd restart -> on_stall
        "on_stop": (str, "wait"),  # queue stopped: wait | reroute jobs that never started
        "poll_seconds": (float, 5.0),  # full poll (fallback and gap repair)
        "notify_seconds": (float, 0.25),  # how often subscription events are pulled
        "lease_seconds": (int, 600),  # subscription lease, renewed at half-life
        "pause_mode": (str, "local"),  # local: stop submitting | queue: also cupsdisable the queue
        "batch_letters": (int, 1),  # letters of one pack per CUPS job; 1 = one job per letter
        "batch_wait_seconds": (float, 10.0),  # send a part-filled batch after this long without a new letter
        "batch_progress_seconds": (float, 1.0),  # how often the printer is asked how far a batch got
        "device_uri": (str, ""),  # where to read batch progress; "" = the queue's device-uri
    }

    def __init__(self, name, settings, emit, *, state_dir, **kw):
        super().__init__(name, settings, emit, state_dir=state_dir, **kw)
        self.queue = settings.get("queue") or name
        self.server = settings.get("server", "")
        self.on_stall = _choice(name, settings, "on_stall", ("wait", "reroute"))
        self.on_stop = _choice(name, settings, "on_stop", ("wait", "reroute"))
        self.pause_mode = _choice(name, settings, "pause_mode", ("local", "queue"))
        self.stall_seconds = float(settings.get("stall_seconds", 120.0))
        self.orphan_seconds = float(settings.get("orphan_seconds", 30.0))
        self.poll_seconds = float(settings.get("poll_seconds", 5.0))
        self.notify_seconds = float(settings.get("notify_seconds", 0.25))
        self.lease_seconds = int(settings.get("lease_seconds", 600))
        self.jobs: dict[int, Tracked] = {}
        self.facts = PrinterFacts()
        self.reachable = True
        self.exists = True
        self.stalled = False
        self.state = ""
        self.detail = ""
        self.counters = {k: 0 for k in ("submitted", "completed", "aborted", "canceled", "stalled",
                                        "rerouted", "events", "polls")}
        self._orphans: OrderedDict[int, tuple] = OrderedDict()  # events that beat submit() home
        self._alerted: set[str] = set()
        self._sub: int | None = None
        self._next_seq = 1
        self._renew_at = 0.0
        self._poll_now = True
        self.io: CupsSession | None = None
        self._watch: CupsSession | None = None
        self.batcher = _batcher(self, settings)

    @property
    def where(self) -> str:
        return f"queue {self.queue} on {describe_server(self.server)}"

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        import_cups()  # one-line UserError if pycups is missing
        self.io = CupsSession(self.server, f"{self.name}-io")
        self._watch = CupsSession(self.server, f"{self.name}-watch")
        await self._refresh_printer()
        self.publish()
        self.spawn("watch", self._watch_loop)
        if self.batcher:
            self.batcher.start()

    async def stop(self) -> None:
        if self.batcher:
            await self.batcher.stop()
        await self.stop_tasks()
        if self._sub is not None and self._watch:
            sub = self._sub
            try:
                await asyncio.wait_for(self._watch(lambda c: c.cancelSubscription(sub)), 2)
            except (CupsUnavailable, CupsRefused, asyncio.TimeoutError):
                pass
            self._sub = None
            self._remember_subscription(None)
        for session in (self.io, self._watch):
            if session:
                session.close()

    # --- alerts and state -------------------------------------------------------------

    def alert(self, key: str, message: str, letter_id: str | None = None) -> None:
        """One alert per condition until it clears (``_clear``)."""
        if key in self._alerted:
            return
        self._alerted.add(key)
        self.emit("device.alert", letter_id, message=f"{self.where}: {message}")

    def clear_alerts(self, prefix: str) -> None:
        self._alerted = {k for k in self._alerted if not k.startswith(prefix)}

    def publish(self) -> None:
        state, detail = device_state(reachable=self.reachable, exists=self.exists, paused=self.paused,
                                     stalled=self.stalled, busy=bool(self.jobs), facts=self.facts)
        if state == self.state:
            self.detail = detail
            return
        old, self.state, self.detail = self.state, state, detail
        self.emit("device.state", state=state, detail=detail, queue=self.queue)
        if state in ("stopped", "offline"):
            self.alert(f"state:{state}:{detail}", f"printer {state}: {detail}; no new letters go here")
        elif old in ("stopped", "offline"):
            self.clear_alerts("state:")

    # --- submit -----------------------------------------------------------------------

    async def submit(self, work: Work) -> str:
        if self.batcher:
            return await self.batcher.add(work)
        opts = ipp_options(work.pack)
        queue, pdf, name = self.queue, str(work.pdf), work.letter_id
        try:
            job_id = await self.io(lambda c: c.printFile(queue, pdf, name, opts))
        except (CupsUnavailable, CupsRefused) as e:
            if isinstance(e, CupsUnavailable):
                self.reachable = False
                self.publish()
            self.counters["aborted"] += 1
            # Not answering is CUPS's fault, not the letter's or the printer's: printed again
            # without counting an attempt.  A refusal (an IPP error) still counts.
            extra = {"service_fault": True} if isinstance(e, CupsUnavailable) else {}
            self.emit("job.aborted", work.letter_id, None, reason=f"CUPS did not take the job: {e}", **extra)
            return ""
        job_id = int(job_id)
        now = time.monotonic()
        t = Tracked(job_id, work.letter_id, work.pages, work.sheets, last_change=now)
        self.jobs[job_id] = t
        self.counters["submitted"] += 1
        self.emit("job.queued", work.letter_id, str(job_id), queue=self.queue, options=opts)
        self.job_submitted(job_id)
        return str(job_id)

    def job_submitted(self, job_id: int) -> None:
        """A job CUPS took: apply what its events said before printFile returned."""
        early = self._orphans.pop(job_id, None)
        if early and early[0] != HELD:  # held while printFile was still sending: not news
            self._apply_job(job_id, *early)
        self.publish()

    # --- tracking ---------------------------------------------------------------------

    async def _watch_loop(self) -> None:
        next_poll = 0.0
        while True:
            try:
                now = time.monotonic()
                if not (self.reachable and self.exists):
                    await self._refresh_printer()
                elif self._sub is None:
                    await self._subscribe()
                if self._sub is not None:
                    await self._pull()
                if self._poll_now or now >= next_poll:
                    self._poll_now = False
                    next_poll = now + self.poll_seconds
                    await self._poll()
                if self._sub is not None and now >= self._renew_at:
                    sub, lease = self._sub, self.lease_seconds
                    await self._watch(lambda c: c.renewSubscription(sub, lease))
                    self._renew_at = now + lease / 2
                await self._check_stalls()
            except asyncio.CancelledError:
                raise
            except CupsUnavailable as e:
                self._lost(str(e))
            except CupsRefused as e:
                log.info("%s: %s", self.name, e)
                if e.status == NOT_FOUND:
                    self._sub = None  # subscription expired or cupsd restarted: subscribe again
                    self._poll_now = True
            except Exception as e:  # a tracker that dies silently would strand letters
                log.exception("%s: tracking error", self.name)
                self.alert(f"bug:{type(e).__name__}", f"tracking error: {e}")
            up = self.reachable and self.exists
            await asyncio.sleep(self.notify_seconds if up else max(self.poll_seconds, 0.5))

    def _lost(self, why: str) -> None:
        self._sub = None
        if self.reachable:
            self.reachable = False
            self.alert("unreachable", f"CUPS does not answer ({why}); letters wait")
            self.publish()

    async def _refresh_printer(self) -> None:
        queue = self.queue
        try:
            attrs = await self._watch(lambda c: c.getPrinterAttributes(queue, requested_attributes=PRINTER_ATTRS))
        except CupsUnavailable as e:
            self.reachable = True  # so _lost() reports the first failure
            self._lost(str(e))
            return
        except CupsRefused as e:
            self.reachable = True
            if e.status == NOT_FOUND:
                self.exists = False
                self.alert("missing", f"queue not found; create it with lpadmin -p {self.queue} -E "
                                       f"-v ipp://PRINTER/ipp/print -m everywhere")
            else:
                self.alert("refused", f"CUPS refused printer query: {e}")
            self.publish()
            return
        if not (self.reachable and self.exists):
            self._poll_now = True
        self.reachable = self.exists = True
        self.clear_alerts("unreachable")
        self.clear_alerts("missing")
        await self._apply_printer(attrs)

    async def _subscribe(self) -> None:
        uri = f"ipp://localhost/printers/{self.queue}"
        lease = self.lease_seconds
        await self._drop_stale_subscriptions(uri)
        try:
            self._sub = await self._watch(lambda c: c.createSubscription(uri, events=EVENTS, lease_duration=lease))
        except CupsRefused as e:  # e.g. a server that refuses subscriptions: polling only
            self.alert("nosub", f"no CUPS subscription ({e}); falling back to polling")
            return
        self._next_seq = 1
        self._remember_subscription(self._sub)
        self._renew_at = time.monotonic() + lease / 2
        self._poll_now = True  # whatever happened before the subscription

    @property
    def _sub_file(self):
        return self.state_dir / f"cups-{self.name}.subscriptions"

    def _remember_subscription(self, sub_id: int | None) -> None:
        """Write down the live subscription id so the next run can cancel it if this one is
        killed.  (pycups cannot tag a subscription: its user_data crashes libcups.)"""
        try:
            private_dir(self.state_dir)
            write_private(self._sub_file, b"" if sub_id is None else f"{sub_id}\n".encode())
        except OSError as e:
            log.info("%s: cannot record subscription: %s", self.name, e)

    async def _drop_stale_subscriptions(self, uri: str) -> None:
        """Cancel the subscription an earlier run of this driver left behind (killed before
        it could cancel it).  cupsd keeps it for its whole lease and refuses new ones past
        MaxSubscriptions, so a daemon restarted often would lose its events.  Only ours: the
        id we wrote down, and only if it still watches this queue for our events (after a
        cupsd restart the same id may belong to somebody else)."""
        try:
            wanted = {int(x) for x in self._sub_file.read_text().split()}
        except (OSError, ValueError):
            return
        if not wanted:
            return

        def stale(c) -> list[int]:
            mine = [s["notify-subscription-id"] for s in c.getSubscriptions(uri, my_subscriptions=True)
                    if s.get("notify-subscription-id") in wanted
                    and set(EVENTS) <= set(s.get("notify-events") or ())]  # cupsd expands groups
            for sub_id in mine:
                c.cancelSubscription(sub_id)
            return mine

        try:
            dropped = await self._watch(stale)
        except (CupsRefused, CupsUnavailable) as e:
            log.info("%s: could not list old subscriptions: %s", self.name, e)
            return
        self._remember_subscription(None)
        if dropped:
            self.counters["stale_subscriptions"] = self.counters.get("stale_subscriptions", 0) + len(dropped)
            log.info("%s: cancelled %d subscription(s) left by an earlier run", self.name, len(dropped))

    async def _pull(self) -> None:
        sub, seq = self._sub, self._next_seq
        res = await self._watch(lambda c: c.getNotifications([sub], [seq]))
        events = [e for e in res.get("events", []) if e.get("notify-subscription-id", sub) == sub]
        if events and events[0].get("notify-sequence-number", seq) > seq:
            self._poll_now = True  # CUPS dropped events we never saw: resynchronise
        for ev in events:
            self._next_seq = max(self._next_seq, ev.get("notify-sequence-number", 0) + 1)
            self.counters["events"] += 1
            if ev.get("notify-subscribed-event") == "job-created":
                continue  # held while the document is still being sent; submit() said queued
            if "notify-job-id" in ev and "job-state" in ev:
                self._apply_job(ev["notify-job-id"], ev["job-state"], reasons_of(ev.get("job-state-reasons")),
                                ev.get("job-impressions-completed", 0))
            elif "printer-state" in ev and ev.get("printer-name", self.queue) == self.queue:
                await self._apply_printer(ev)

    async def _poll(self) -> None:
        self.counters["polls"] += 1
        await self._refresh_printer()
        for job_id in list(self.jobs):
            try:
                a = await self._watch(lambda c: c.getJobAttributes(job_id, requested_attributes=JOB_ATTRS))
            except CupsRefused as e:
                if e.status == NOT_FOUND and job_id in self.jobs:
                    t = self.jobs.pop(job_id)
                    if t.batch:
                        letters = ", ".join(s.letter_id for s in t.batch.slots[t.batch.reported:])
                        self.alert(f"vanished:{job_id}", f"batch job {job_id} ({t.batch.name}) vanished from "
                                                          f"CUPS; fate of letters {letters} unknown, check the "
                                                          "printer output")
                        continue
                    self.alert(f"vanished:{job_id}", f"job {job_id} vanished from CUPS; fate of the letter "
                                                      "unknown, check the printer output", t.letter_id)
                continue
            self._apply_job(job_id, a.get("job-state", 0), reasons_of(a.get("job-state-reasons")),
                            a.get("job-impressions-completed", 0))
        self.publish()

    async def _apply_printer(self, a: dict) -> None:
        old = self.facts
        self.facts = PrinterFacts(
            state=a.get("printer-state", old.state),
            reasons=reasons_of(a.get("printer-state-reasons", old.reasons)),
            accepting=bool(a.get("printer-is-accepting-jobs", old.accepting)),
            message=a.get("printer-state-message", old.message if "printer-state-message" not in a else ""),
        )
        if self.batcher:
            self.batcher.learn_device_uri(str(a.get("device-uri", "")))
        worthy = alert_worthy(self.facts.reasons)
        for reason in worthy:
            self.alert(f"reason:{reason}", f"printer reports {reason}"
                                            + (f": {self.facts.message}" if self.facts.message else ""))
        self._alerted = {k for k in self._alerted if not k.startswith("reason:") or k[7:] in worthy}
        if old.state == PRINTER_STOPPED and self.facts.state != PRINTER_STOPPED and self.stalled:
            self.clear_stall()  # an operator cycled the queue: try it again
        self.publish()
        await self._apply_stop_policy()

    def _apply_job(self, job_id: int, state: int, reasons: tuple[str, ...], impressions: int = 0) -> None:
        t = self.jobs.get(job_id)
        if t is None:
            self._orphans[job_id] = (state, reasons, impressions)
            while len(self._orphans) > 500:
                self._orphans.popitem(last=False)
            return
        if (state, reasons, impressions) != (t.state, t.reasons, t.impressions):
            t.last_change = time.monotonic()
            if t.stalled:
                self.clear_stall()
        changed = state != t.state
        t.state, t.reasons, t.impressions = state, reasons, impressions
        if not changed:
            return
        if state == PROCESSING:
            t.started = True
        kind = job_event(state, reasons)
        if kind is None:
            return
        if t.batch is not None:
            if state in FINAL_STATES:
                del self.jobs[job_id]
            self.batcher.job_changed(t, state, reasons, kind)
            return
        detail = {"state": describe_job(state, reasons), "queue": self.queue}
        if state in FINAL_STATES:
            del self.jobs[job_id]
            outcome = {"job.completed": "completed", "job.canceled": "canceled"}.get(kind, "aborted")
            self.counters[outcome] += 1
            if kind == "job.completed":
                detail.update(pages=t.pages, sheets=t.sheets)
            else:
                detail["reason"] = f"CUPS job {job_id} {describe_job(state, reasons)}"
        elif state in (HELD, STOPPED):
            self.alert(f"job:{job_id}:{state}", f"job {job_id} is {describe_job(state, reasons)}", t.letter_id)
        self.emit(kind, t.letter_id, str(job_id), **detail)
        if state in FINAL_STATES:
            self.publish()

    # --- stalls and stops -------------------------------------------------------------

    def clear_stall(self) -> None:
        self.stalled = False
        for t in self.jobs.values():
            t.stalled = False
            t.last_change = time.monotonic()
        self.clear_alerts("stall:")
        self.publish()

    async def _check_stalls(self) -> None:
        now = time.monotonic()
        for t in list(self.jobs.values()):
            if t.stalled:
                continue
            quiet = now - t.last_change
            if t.state == PENDING and "job-printing" in t.reasons:
                if quiet >= self.orphan_seconds and self.facts.state == PRINTER_IDLE:
                    await self._orphaned(t)
            elif t.state in (PROCESSING, STOPPED) and quiet >= self.stall_seconds:
                await self._stalled(t)
        if self.stalled and self.on_stall == "reroute":
            await self._reroute_unstarted(f"{self.queue} stalled")

    async def _stalled(self, t: Tracked) -> None:
        """No progress at the device: the printer itself is suspect, so it takes no more work."""
        t.stalled = self.stalled = True
        self.counters["stalled"] += 1
        policy = "cancelling it and rerouting" if self.on_stall == "reroute" else "waiting"
        self.alert(f"stall:{t.job_id}",
                    f"job {t.job_id} made no progress for {self.stall_seconds:g}s "
                    f"({describe_job(t.state, t.reasons)}); device not answering? {policy}", t.letter_id)
        self.publish()
        if self.on_stall == "reroute":
            await self.cancel_and_reroute(t, f"no progress for {self.stall_seconds:g}s on {self.queue}")

    async def _orphaned(self, t: Tracked) -> None:
        """A job cupsd was sending when it restarted comes back "pending, job-printing" and is
        never sent again (seen with CUPS 2.4) while the printer sits idle.  The printer is
        fine; only this job is lost inside CUPS.  Whether its paper came out is unknown (its
        job-impressions-completed counts pages CUPS's filters passed on, not paper), so the
        stall policy decides: reroute prints it again, wait leaves it to a person."""
        t.stalled = True
        self.counters["stalled"] += 1
        policy = "cancelling it and printing it again" if self.on_stall == "reroute" else "waiting for a person"
        self.alert(f"stall:{t.job_id}",
                    f"job {t.job_id} stuck pending since CUPS restarted mid-job (printer idle; pages may "
                    f"or may not have printed); {policy}", t.letter_id)
        if self.on_stall == "reroute":
            await self.cancel_and_reroute(t, f"stuck in CUPS after a restart on {self.queue}", service_fault=True)

    async def _apply_stop_policy(self) -> None:
        if self.on_stop != "reroute" or self.paused:
            return
        stopped = self.facts.state == PRINTER_STOPPED or blocking(self.facts.reasons)
        if stopped:
            await self._reroute_unstarted(f"{self.queue} stopped: {self.detail or 'queue stopped'}")

    async def _reroute_unstarted(self, why: str) -> None:
        """Jobs that never reached the device can safely print elsewhere."""
        for t in [t for t in self.jobs.values() if t.state in (PENDING, HELD) and not t.started]:
            await self.cancel_and_reroute(t, why)
        if self.batcher:
            self.batcher.abort_open(why)

    async def cancel_and_reroute(self, t: Tracked, why: str, *, service_fault: bool = False) -> None:
        """``service_fault``: CUPS lost the job, not the printer or the letter (a restart
        mid-job): the pipeline prints it again without counting a print attempt."""
        job_id = t.job_id
        try:
            await self.io(lambda c: c.cancelJob(job_id))
        except CupsUnavailable as e:
            self.alert(f"cancel:{job_id}", f"could not cancel job {job_id} ({e}); will retry", t.letter_id)
            return
        except CupsRefused as e:
            log.info("%s: cancel %s: %s", self.name, job_id, e)  # already final: the poll tells
            self._poll_now = True
            return
        if self.jobs.pop(job_id, None) is None:
            return  # its final state arrived meanwhile and was reported
        self.counters["rerouted"] += 1
        if t.batch:
            await self.batcher.fail(t, "job.aborted", f"cancelled CUPS job {job_id}: {why}", service_fault=service_fault)
            return
        extra = {"service_fault": True} if service_fault else {}
        self.emit("job.aborted", t.letter_id, str(job_id), reason=f"cancelled CUPS job {job_id}: {why}", **extra)
        self.publish()

    # --- operator actions -------------------------------------------------------------

    async def withdraw(self, letter_id: str) -> str | None:
        """Cancel the letter's CUPS job if the printer has not started it; a started job is
        left alone (its paper may be half out: a person must pull it)."""
        t = next((t for t in self.jobs.values() if t.letter_id == letter_id), None)
        if t is None:
            return f"no CUPS job for it on {self.queue}"
        if t.batch is not None:
            return f"it is part of batch job {t.job_id} on {self.queue}; pull its sheets from the output"
        if t.started or t.state not in (PENDING, HELD):
            return f"job {t.job_id} is already {describe_job(t.state, t.reasons)} on {self.queue}"
        job_id = t.job_id
        try:
            await self.io(lambda c: c.cancelJob(job_id))
        except (CupsUnavailable, CupsRefused) as e:
            return f"could not cancel job {job_id} on {self.queue}: {e}"
        self.jobs.pop(job_id, None)
        self.counters["canceled"] += 1
        self.publish()
        return None

    async def pause(self) -> None:
        """Take no new letters; with pause_mode = "queue" CUPS also holds its queue."""
        self.paused = True
        if self.pause_mode == "queue":
            await self.io(lambda c: c.disablePrinter(self.queue, reason="paused by the appliance"))
        self.publish()

    async def drain(self) -> None:
        """Take no new letters but let CUPS finish what it has (part-filled batches go now)."""
        self.paused = True
        if self.batcher:
            for pack_id in list(self.batcher.open):
                await self.batcher.flush(pack_id)
        self.publish()

    async def resume(self) -> None:
        if self.pause_mode == "queue":
            await self.io(lambda c: c.enablePrinter(self.queue))
        self.paused = False
        self.clear_stall()
        await self._refresh_printer()  # what CUPS says now, not what it said while paused
        self._poll_now = True
        self.publish()

    # --- restart ----------------------------------------------------------------------

    async def reconcile(self, letter_ids: list[str]) -> dict[str, str]:
        """Match CUPS jobs on this queue back to letters by ``job-name``.

        completed OK -> ``job.completed``; aborted/cancelled -> that event (reroute);
        still in CUPS -> tracked again and its current state returned (the pipeline replays
        it as a no-op); no job at all -> ``absent`` (resubmit).  If CUPS cannot be asked, or
        hides job names from us, nothing is vouched for: those letters wait for a person.
        """
        try:
            jobs = await self._all_jobs()
        except (CupsUnavailable, CupsRefused) as e:
            self.alert("reconcile", f"cannot reconcile {len(letter_ids)} letter(s) after restart: {e}")
            return {}
        try:
            match_jobs(jobs, self.queue, [])  # raises NamesHidden before any batch is matched
            batched: dict[str, str] = {}
            if self.batcher:
                batched, letter_ids = await self.batcher.reconcile(jobs, letter_ids)
            found, active = match_jobs(jobs, self.queue, letter_ids)
            found.update(batched)
        except NamesHidden:
            self.alert("private", "CUPS hides job names from this client, so a restart cannot match "
                                   "jobs to letters; set 'JobPrivateValues none' in cupsd.conf")
            return {}
        for job_id in incomplete_jobs(jobs, self.queue):
            await self._cancel_incomplete(job_id)
        for a in active:
            self.jobs[a.job_id] = Tracked(a.job_id, a.letter_id, 0, 0, a.state, a.reasons, a.impressions,
                                          time.monotonic(), started=a.state in (PROCESSING, STOPPED))
        self._poll_now = True
        self.publish()
        return found

    async def _cancel_incomplete(self, job_id: int) -> None:
        """Cancel a job an earlier run died submitting (its letter is sent again whole)."""
        try:
            await self.io(lambda c: c.cancelJob(job_id))
        except (CupsUnavailable, CupsRefused) as e:
            self.alert(f"incomplete:{job_id}", f"could not cancel half-submitted job {job_id}: {e}; "
                                                f"cancel it with: cancel {job_id}")
            return
        self.counters["incomplete_cancelled"] = self.counters.get("incomplete_cancelled", 0) + 1
        log.info("%s: cancelled job %s, left half-submitted by an earlier run", self.name, job_id)

    async def _all_jobs(self) -> dict[int, dict]:
        """Every job cupsd knows, page by page: one Get-Jobs answers at most 500 jobs when it
        must read job attributes from disk, silently, so a busy server's newer jobs would
        look absent and be printed again."""
        jobs: dict[int, dict] = {}
        first = 1
        while True:
            page = await self._watch(lambda c: c.getJobs(which_jobs="all", first_job_id=first, limit=GET_JOBS_PAGE,
                                                         requested_attributes=JOB_ATTRS))
            if not page:
                return jobs
            jobs.update(page)
            first = max(page) + 1

    def health(self) -> Health:
        depth = sum(len(t.batch.slots) - t.batch.reported if t.batch else 1 for t in self.jobs.values())
        if self.batcher:
            depth += self.batcher.letters_waiting()
        return Health(self.state or "offline", self.detail or self.where, depth, dict(self.counters))


def _batcher(printer: CupsPrinter, settings: dict) -> Batcher | None:
    size = int(settings.get("batch_letters", 1))
    wait = float(settings.get("batch_wait_seconds", 10.0))
    every = float(settings.get("batch_progress_seconds", 1.0))
    if size < 1 or wait <= 0 or every <= 0:
        raise ConfigError(f"printer {printer.name!r}: batch_letters must be >= 1 and batch_wait_seconds, "
                          f"batch_progress_seconds > 0 (got {size}, {wait:g}, {every:g})")
    if size == 1:
        return None
    return Batcher(printer, size, wait, every, str(settings.get("device_uri", "")))
