"""The letter pipeline: poll -> download + verify -> print -> insert -> frank -> report.

One asyncio task per stage, joined by bounded queues so memory stays flat however many
letters the API offers.  Every side effect is written down in the store (and made durable
through ``Committer``) *before* it happens, so a restart can tell what to redo and what
must not be redone (see ``recover``).  Statuses leave only through the store's outbox,
batched, in order per letter.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import drivers
from appliance.api.client import ApiError, ApiUnavailable, SupplierClient
from appliance.api.limits import is_safe_id
from appliance.config.profile import DeviceSpec, Profile
from appliance.core.errors import UserError
from appliance.core.packs import Pack
from appliance.core.routing import PrinterView, capable, choose_printer, waiting_for_room
from appliance.core.status import REJECT_REASONS, Status, TransitionError, is_final, status_for_event
from appliance.core.stuck import overdue
from appliance.core.supervisor import Supervisor
from appliance.core.verify import PdfFacts, Verdict
from appliance.intake import worker as intake_worker
from appliance.intake.pool import IntakePool, WorkerDied
from appliance.intake.settings import IntakeSettings
from appliance.intake.stage import Intake
from appliance.marks.overlay import marked_path
from appliance.pipeline import reprint
from appliance.pipeline.audit import AuditLog
from appliance.pipeline.outbox import OutboxSender
from appliance.pipeline.recovery import recover
from appliance.store.committer import Committer
from appliance.store.spool import sweep
from appliance.store.store import Store
from drivers.base import DeviceEvent, Driver, Work

log = logging.getLogger("appliance.pipeline.pipeline")



#: Stages in which a letter has been given (or is about to be given) to a device.
SUBMIT_STAGES = frozenset({"printing", "enclosing", "franking"})

#: The stage a letter must be in for a device event to prove its next status.
STAGE_PROVED_BY = {Status.PRINTED: "printing", Status.ENCLOSED: "enclosing", Status.DISPATCHED: "franking"}


@dataclass(frozen=True)
class PipelineSettings:
    spool_dir: Path
    poll_interval: float = 5.0
    limit: int = 2500
    batch_size: int = 500
    max_pdf_bytes: int = 20 * 1024 * 1024
    max_in_flight: int = 1000  # letters between intake and dispatch; bounds memory and the hot store
    max_waiting_retry: int = 10_000  # letters waiting to be fetched again (not counted above)
    outbox_interval: float = 0.1
    commit_interval: float = 0.005
    stale_after: float = 24 * 3600.0  # seconds; older letters are re-checked with the API before printing
    spool_retention: float = 0.0  # seconds a final letter's PDF is kept; 0 = delete at once
    intake: IntakeSettings = field(default_factory=IntakeSettings)
    stage_deadline: float = 1800.0  # seconds a letter may stay in one working stage before an alert
    sweep_interval: float = 30.0  # how often stuck letters are looked for


@dataclass
class Alert:
    t: float
    source: str
    message: str
    letter_id: str | None = None


class Pipeline:
    def __init__(
        self,
        settings: PipelineSettings,
        client: SupplierClient,
        store: Store,
        profile: Profile,
        packs: dict[str, Pack],
        *,
        state_dir: Path,
    ):
        self.s = settings
        self.client = client
        self.store = store
        self.profile = profile
        self.packs = packs
        self.state_dir = state_dir
        self.events: asyncio.Queue[DeviceEvent] = asyncio.Queue()
        self.devices: dict[str, Driver] = {}
        self.specs: dict[str, DeviceSpec] = {d.name: d for d in profile.devices()}
        self.device_state: dict[str, str] = {}
        self.load: Counter[str] = Counter()
        self.tried: dict[str, set[str]] = {}
        self.held: set[str] = set()
        self.alerts: deque[Alert] = deque(maxlen=500)
        self.counters: Counter[str] = Counter()
        self.committer = Committer(store, settings.commit_interval)
        self.outbox = OutboxSender(store, client, self.committer, batch_size=settings.batch_size,
                                   interval=settings.outbox_interval, alert=self.alert,
                                   counters=self.counters)
        self.supervisor = Supervisor(self.alert)
        self.pool = IntakePool(settings.intake)
        self.intake = Intake(store=store, client=client, pool=self.pool, packs=packs, policy=profile.verify,
                             settings=settings.intake, spool_dir=settings.spool_dir,
                             max_pdf_bytes=settings.max_pdf_bytes, sink=self, alert=self.alert,
                             counters=self.counters)
        self._stuck_alerted: set[tuple[str, str]] = set()
        self._backlog: dict[str, None] = {}  # letters waiting for room at a printer, in order
        self.last_poll_empty = False
        self.api_ok = True
        self._submits: list[tuple[str, str]] = []  # (device, letter id) awaiting durable intent
        self._dispatch_wake = asyncio.Event()
        self.listeners: list = []  # callables(kind, data): consoles attached over the control socket
        self.audit = AuditLog(state_dir / "audit", {s.name for s in profile.inserters})  # per inserter batch
        spool = settings.spool_dir
        spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(spool, 0o700)  # patient data: private even if the folder existed already

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        for spec in self.profile.devices():
            cls = drivers.driver_class(spec.family, spec.driver)
            drv = cls(spec.name, spec.settings, self.events.put_nowait, state_dir=self.state_dir,
                      supervisor=self.supervisor)
            self.devices[spec.name] = drv
            await drv.start()
            # The driver knows best (a CUPS queue may be stopped); recovery routes by this.
            self.device_state[spec.name] = drv.health().state
        await asyncio.to_thread(self.pool.start)
        self.outbox.prepare_replay()
        sv = self.supervisor
        sv.spawn("committer", self.committer.run)
        sv.spawn("events", self._event_loop)
        sv.spawn("outbox", self.outbox.run)
        sv.spawn("dispatch", self._dispatch_loop)
        sv.spawn("intake", self.intake.run)
        await self.recover()
        sv.spawn("poll", self._poll_loop)
        sv.spawn("spool-sweeper", self._spool_sweeper)
        sv.spawn("stuck-sweeper", self._stuck_sweeper)

    async def stop(self) -> None:
        """Stop taking work, flush what is known, close devices.  Nothing is lost: what
        was in flight is recorded and picked up by ``recover`` on the next start."""
        await self.supervisor.stop()
        for drv in self.devices.values():
            await drv.stop()
        await asyncio.to_thread(self.pool.stop)
        self.audit.close()
        self.store.flush()

    def idle(self) -> bool:
        """Nothing left to do: API offered nothing new, nothing in flight, outbox empty."""
        return (
            self.last_poll_empty
            and not self.store.in_flight_ids()
            and not self.store.outbox_pending(1)
        )

    async def run_until_idle(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.idle():
            if deadline is not None and time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    # --- helpers ----------------------------------------------------------------------

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """Tell every listener (control-socket consoles) what changed; never blocks."""
        for listener in list(self.listeners):
            try:
                listener(kind, data)
            except Exception:  # a broken console must never affect printing
                log.exception("listener failed")
                self.listeners.remove(listener)

    def letter_brief(self, letter_id: str) -> dict[str, Any]:
        rec = self.store.get(letter_id) or {"id": letter_id}
        return {k: rec.get(k) for k in ("id", "status", "stage", "specification_id", "group_id",
                                        "device", "printer", "reason_code", "reason_text", "updated")}

    def alert(self, source: str, message: str, letter_id: str | None = None) -> None:
        a = Alert(time.time(), source, message, letter_id)
        self.alerts.append(a)
        self.publish("alert", vars(a))
        log.warning("%s: %s%s", source, message, f" ({letter_id})" if letter_id else "")

    def _set_status(self, letter_id: str, status: str, code: str | None = None,
                    text: str | None = None, event: str | None = None) -> bool:
        try:
            changed = self.store.set_status(letter_id, status, code, text, event=event)
        except TransitionError as e:
            self.counters["ignored_transitions"] += 1
            log.info("letter %s: %s", letter_id, e)
            return False
        if changed:
            self.counters[f"status.{status}"] += 1
            self.outbox.wake()
        return changed

    def finish(self, letter_id: str, stage: str = "done") -> None:
        rec = self.store.update(letter_id, stage=stage)
        for name in {rec.get("printer"), rec.get("device")} - {None}:
            if name in self.devices:
                self.devices[name].forget(letter_id)  # a printed copy is patient data too
        for pdf in (rec.get("pdf"), rec.get("marked_pdf")):
            if not pdf:
                continue
            if self.s.spool_retention <= 0:
                Path(pdf).unlink(missing_ok=True)
            elif Path(pdf).exists():
                os.utime(pdf)  # retention counts from the final status; the sweeper deletes it
        self.tried.pop(letter_id, None)
        self.held.discard(letter_id)

    def _work(self, rec: dict) -> Work:
        pack = self.packs[rec["specification_id"]]
        return Work(rec["id"], Path(rec["pdf"]) if rec.get("pdf") else None, pack,
                    rec.get("pages") or 0, rec.get("sheets") or 0, rec.get("print_run") or 0)

    async def _with_marks(self, work: Work, rec: dict) -> Work | None:
        """The printer gets a copy with sheet marks (``<id>.r<run>.pdf``); the record keeps
        the original, whose sha256 stays the letter's identity.  None: held for a person."""
        run = rec.get("print_run") or 0
        dest = marked_path(self.s.spool_dir, rec["id"], run)
        zone = self.profile.marks.zone_for(rec["specification_id"])
        try:
            if zone is None:
                raise UserError(f"no sheet-mark zone for pack {rec['specification_id']}; add [marks] "
                                f'default or [marks.zone."{rec["specification_id"]}"] to the profile')
            answer = await self.pool.run(intake_worker.mark_task, {
                "src": str(work.pdf), "dest": str(dest), "letter_id": rec["id"], "run": run,
                "zone": vars(zone), "duplex": work.pack.duplex})
            if not answer.get("ok"):
                raise UserError(answer.get("detail") or "marking failed")
        except (UserError, WorkerDied) as e:  # a PDF that slipped past verify must not stop the floor
            dest.unlink(missing_ok=True)
            self.operator_hold(rec["id"], f"cannot print sheet marks: {str(e).splitlines()[0]}")
            return None
        now = self.store.get(rec["id"])
        if now is None or now.get("device") != rec.get("device") or now["stage"] != "printing":
            dest.unlink(missing_ok=True)  # cancelled or moved while the copy was being made
            return None
        old = now.get("marked_pdf")
        if old and old != str(dest):
            Path(old).unlink(missing_ok=True)  # an earlier run's copy (reprint, reroute)
        self.store.update(rec["id"], marked_pdf=str(dest), event=f"marked run {run}")
        return replace(work, pdf=dest)

    # --- spool ------------------------------------------------------------------------

    def sweep_spool(self, now: float | None = None) -> int:
        """Delete spooled PDFs nobody needs (``appliance.store.spool.sweep``)."""
        return sweep(self.s.spool_dir, set(self.store.in_flight_ids()), self.s.spool_retention,
                     time.time() if now is None else now)

    async def _spool_sweeper(self) -> None:
        period = min(max(self.s.spool_retention / 10, 1.0), 3600.0)
        while True:
            try:
                self.counters["spool_swept"] += self.sweep_spool()
            except OSError as e:
                self.alert("spool", f"cannot sweep the spool: {e}")
            await asyncio.sleep(period)

    async def _stuck_sweeper(self) -> None:
        """Alert once for every letter past its stage's deadline (``appliance.core.stuck``); a
        letter at intake that nothing will fetch again is taken again."""
        while True:
            await asyncio.sleep(self.s.sweep_interval)
            now = time.time()
            for letter_id, stage, age in overdue(self.store.in_flight(), now, self.s.stage_deadline):
                if stage == "new" and not self.intake.pending(letter_id):
                    self.counters["intake_lost"] += 1
                    self.alert("watch", "letter was waiting at intake with nothing to fetch it; "
                                        "fetching it now", letter_id)
                    self.intake.take(letter_id)
                    continue
                if (letter_id, stage) not in self._stuck_alerted:
                    self._stuck_alerted.add((letter_id, stage))
                    self.counters["stuck"] += 1
                    self.alert("watch", f"letter has been in stage {stage} for {age / 60:.0f} min "
                                        f"(over {self.s.stage_deadline / 60:.0f} min)", letter_id)

    # --- intake -----------------------------------------------------------------------

    def _room(self) -> int:
        """Letters the poll may take now: in flight, not counting those only waiting to be
        fetched again or held at intake (they use no printer, and must not stop intake)."""
        waiting = self.intake.waiting_retry
        if waiting >= self.s.max_waiting_retry:
            return 0
        held = self.store.stage_count("intake-hold")
        return self.s.max_in_flight - (len(self.store.in_flight_ids()) - waiting - held)

    async def _poll_loop(self) -> None:
        while True:
            room = self._room()
            got_full_page = left_behind = False
            if room > 0:
                try:
                    # A full page, not just `room`: letters we took but whose ACCEPTED the API
                    # has not seen yet are still PENDING there and come first; asking for only
                    # `room` returned little but those, and polls repeated back to back.
                    refs = await self.client.list_letters(limit=self.s.limit)
                    self.api_ok = True
                except (ApiUnavailable, ApiError, UserError) as e:  # UserError: auth (TokenError)
                    self.api_ok = False
                    self.alert("api", f"cannot list letters: {e}")
                    await asyncio.sleep(self.s.poll_interval)
                    continue
                self.counters["polls"] += 1
                new = []
                for ref in refs:
                    if not is_safe_id(ref.id):
                        self.counters["hostile_ids"] += 1
                        self.alert("intake", f"ignored letter with unsafe id {ref.id[:40]!r}")
                        continue
                    if len(new) >= room:
                        left_behind = True  # no room for more now; they stay PENDING, come again
                        break
                    if self.store.add_letter(ref.id, ref.specification_id, ref.group_id, ref.sha256):
                        new.append(ref.id)
                self.counters["listed"] += len(new)
                self.last_poll_empty = not new and not refs
                if new:
                    await self.committer.durable()
                    for lid in new:
                        self.intake.take(lid)
                # More may wait beyond a full page; poll again at once only if this one helped.
                got_full_page = len(refs) >= self.s.limit and bool(new) and not left_behind
            if left_behind or room <= 0:
                await asyncio.sleep(min(self.s.poll_interval, 0.2))  # room frees as letters finish
            elif not got_full_page:
                await asyncio.sleep(self.s.poll_interval)

    # --- what intake reports (appliance.intake.stage.IntakeSink) --------------------------

    async def intake_verified(self, letter_id: str, pdf: Path, verdict: Verdict, facts: PdfFacts) -> None:
        rec = self.store.get(letter_id)
        if rec is None or rec["stage"] != "new":
            pdf.unlink(missing_ok=True)
            return
        pack = self.packs[rec["specification_id"]]
        if rec["status"] != Status.PENDING:  # fetched again for a letter already ACCEPTED
            self.store.update(letter_id, event="respooled", stage="verified", pdf=str(pdf))
            await self.route_any(letter_id)
            return
        if self.profile.on_no_printer == "reject" and not capable(self._printer_views(), pack,
                                                                  self.profile.print_features):
            # Known before accepting: say REJECTED now rather than FAILED after ACCEPTED.
            pdf.unlink(missing_ok=True)
            self._reject(letter_id, "NO_CAPABLE_PRINTER", f"no printer on this floor can print pack {pack.id}")
            await self.committer.durable()
            return
        self.store.update(letter_id, event="verified", stage="verified", pdf=str(pdf),
                          pages=verdict.pages, sheets=verdict.sheets, intake_retry_at=None)
        self._set_status(letter_id, Status.ACCEPTED, event="verified")
        await self._route(letter_id)

    async def intake_rejected(self, letter_id: str, code: str, text: str) -> None:
        rec = self.store.get(letter_id)
        if rec is None or is_final(rec["status"]):
            return
        if rec["status"] == Status.PENDING:
            self._reject(letter_id, code, text)
        else:  # a respool of an ACCEPTED letter whose PDF is no longer the one we checked
            self._set_status(letter_id, Status.FAILED, code, text, event="respool")
            self.finish(letter_id)
        await self.committer.durable()

    async def intake_held(self, letter_id: str, why: str) -> None:
        """Intake gave up for now: a person decides (the letter stays PENDING at Notify)."""
        self.store.update(letter_id, stage="intake-hold", event="intake-hold", hold_reason=why)
        self.alert("intake", f"letter held: {why}; retry it from the console or "
                             f"'appliance retry {letter_id}'", letter_id)
        await self.committer.durable()

    def retry_intake(self, letter_id: str) -> None:
        """An operator asks for another try of a letter held at intake."""
        self.store.update(letter_id, stage="new", event="intake retry requested", hold_reason=None,
                          intake_attempts=0, intake_first_fault=None, intake_retry_at=None,
                          intake_deaths=0)
        self.intake.take(letter_id)

    def _reject(self, letter_id: str, code: str, text: str) -> None:
        self.counters["rejected"] += 1
        self._set_status(letter_id, Status.REJECTED, code, text or REJECT_REASONS.get(code), event="rejected")
        self.finish(letter_id)

    # --- printing ---------------------------------------------------------------------

    def _printer_views(self) -> list[PrinterView]:
        return [
            PrinterView(s.name, s.caps, self.device_state.get(s.name, "offline"), self.load[s.name],
                        s.max_queued)
            for s in self.profile.printers
        ]

    async def _route(self, letter_id: str) -> None:
        rec = self.store.get(letter_id)
        if rec is None or rec["status"] not in (Status.ACCEPTED, Status.PRINTED):
            return  # PRINTED: a reprint waiting for a printer
        await self.route_any(letter_id)

    async def route_any(self, letter_id: str) -> None:
        """Route a letter to a printer (ACCEPTED, or PRINTED when an operator reprints)."""
        rec = self.store.get(letter_id)
        pack = self.packs[rec["specification_id"]]
        views = self._printer_views()
        choice = choose_printer(views, pack, self.profile.print_features,
                                frozenset(self.tried.get(letter_id, ())))
        if choice is None:
            if waiting_for_room(views, pack, self.profile.print_features):
                # Printers are up but hold all they should: wait in line, no alert.
                if letter_id not in self._backlog:
                    self._backlog[letter_id] = None
                return
            if not capable(views, pack, self.profile.print_features) and self.profile.on_no_printer == "reject":
                # Accepted already (a reprint, a profile changed since): too late to reject.
                late = rec["status"] != Status.PENDING
                self._set_status(letter_id, Status.FAILED if late else Status.REJECTED, "NO_CAPABLE_PRINTER",
                                 f"no printer on this floor can print pack {pack.id}",
                                 event="failed" if late else "rejected")
                self.finish(letter_id)
                await self.committer.durable()
                return
            if letter_id not in self.held:
                self.held.add(letter_id)
                self.store.update(letter_id, stage="held", event="held")
                self.alert("routing", f"no printer available for pack {pack.id}; letter held", letter_id)
            return
        self.held.discard(letter_id)
        self._backlog.pop(letter_id, None)
        self.tried.setdefault(letter_id, set()).add(choice.name)
        if not rec.get("pdf") or not Path(rec["pdf"]).exists():
            # Spool lost (wiped, or retention): fetch it again rather than print nothing.
            await self.respool(letter_id)
            return
        if not await self._still_wanted(rec):
            return
        self.store.update(letter_id, stage="printing", printer=choice.name, event="submit",
                          device=choice.name, print_run=self.store.next_print_run())
        self._intend(choice.name, letter_id)

    async def _still_wanted(self, rec: dict) -> bool:
        """A letter that waited past ``stale_after`` is printed only if Notify still wants it.

        Notify may have cancelled it meanwhile; its status there must be the one we sent
        (ACCEPTED) or PENDING (our ACCEPTED not yet acknowledged).  Otherwise skip it.
        """
        age = time.time() - rec.get("created", time.time())
        if age <= self.s.stale_after or rec.get("stale_checked"):
            return True
        try:
            current = await self.client.get_letter(rec["id"])
        except ApiUnavailable as e:
            self.alert("api", f"cannot check stale letter, printing it anyway: {e}", rec["id"])
            return True
        except ApiError as e:
            current = None
            self.alert("api", f"stale letter check failed ({e})", rec["id"])
        if current is not None and current.status in (Status.ACCEPTED, Status.PENDING, Status.PRINTED):
            self.store.update(rec["id"], stale_checked=True, event="stale check: still wanted")
            return True
        seen = current.status if current else "unknown"
        self.counters["stale_skipped"] += 1
        if seen == Status.CANCELLED:
            # Mirror Notify's decision locally; repeating CANCELLED to the API is harmless.
            self._set_status(rec["id"], Status.CANCELLED, "STALE_CANCELLED",
                             f"cancelled at Notify while waiting {age / 3600:.1f} h", event="stale check")
            self.finish(rec["id"], stage="skipped-stale")
        else:
            self.operator_hold(rec["id"], f"waited {age / 3600:.1f} h and is {seen} at Notify; not printed")
        return False

    async def respool(self, letter_id: str) -> None:
        """Fetch again a letter already ACCEPTED whose spooled PDF is gone (through intake,
        like any other letter: the worker checks it; ``intake_verified`` routes it on)."""
        self.store.update(letter_id, stage="new", event="respool", pdf=None)
        self.intake.take(letter_id)

    def operator_hold(self, letter_id: str, why: str) -> None:
        """Put a letter before a person: never advanced automatically from here."""
        self.store.update(letter_id, stage="operator-hold", event="operator-hold", hold_reason=why)
        self.alert("operator", f"piece needs a person: {why}", letter_id)

    async def retry_held(self) -> None:
        for letter_id in list(self.held):
            await self._route(letter_id)
        await self.drain_backlog()

    async def drain_backlog(self) -> None:
        """Route letters that waited for room, oldest first, while printers have room."""
        for letter_id in list(self._backlog):
            rec = self.store.get(letter_id)
            if rec is None or rec["stage"] != "verified":
                self._backlog.pop(letter_id, None)
                continue
            before = len(self._backlog)
            await self.route_any(letter_id)
            if letter_id in self._backlog and len(self._backlog) == before:
                # Still no room for it; later letters of other packs may fit elsewhere, but
                # keeping print order matters more than filling every gap at once.
                break

    # --- finishing --------------------------------------------------------------------

    def _finisher_for(self, family: str, rec: dict) -> str | None:
        pack = self.packs[rec["specification_id"]]
        wanted = pack.envelope_id if family == "inserter" else pack.postage_id
        specs = self.profile.inserters if family == "inserter" else self.profile.frankers
        ok = [s for s in specs if (not s.accepts or wanted in s.accepts)
              and self.device_state.get(s.name) in ("idle", "busy")]
        if not ok:
            return None
        return min(ok, key=lambda s: self.load[s.name]).name

    async def _hand_on(self, letter_id: str, family: str, stage: str) -> None:
        """Give a letter to the next finishing machine, intent first."""
        rec = self.store.get(letter_id)
        name = self._finisher_for(family, rec)
        if name is None:
            self.store.update(letter_id, stage=f"wait-{family}", event=f"no {family}")
            self.alert("routing", f"no {family} available; letter waits", letter_id)
            return
        self.store.update(letter_id, stage=stage, device=name, event="submit")
        self._intend(name, letter_id)

    # --- handing work to devices ------------------------------------------------------

    def _intend(self, device: str, letter_id: str) -> None:
        """Queue a submission whose intent is already in the store (not yet durable)."""
        self.load[device] += 1
        self._submits.append((device, letter_id))
        self._dispatch_wake.set()

    async def _dispatch_loop(self) -> None:
        """Make recorded intents durable, then hand the work over, in the order intended.

        One commit covers every intent recorded meanwhile, so durability costs one flush
        per burst, and the event loop never waits on the disk to hand a piece on.
        """
        while True:
            await self._dispatch_wake.wait()
            self._dispatch_wake.clear()
            # Take the batch first: every intent in it was recorded before the commit
            # we now wait for, so all of them are on disk before any is handed over.
            batch, self._submits = self._submits, []
            done = 0
            try:
                await self.committer.durable()  # intent before side effect
                for device, letter_id in batch:
                    done += 1
                    await self._hand_over(device, letter_id)
            finally:
                if done < len(batch):  # interrupted: the rest go first next time, in order
                    self._submits[:0] = batch[done:]
                    self._dispatch_wake.set()

    async def _hand_over(self, device: str, letter_id: str) -> None:
        rec = self.store.get(letter_id)
        if rec is None or rec.get("device") != device or rec["stage"] not in SUBMIT_STAGES:
            self.load[device] = max(0, self.load[device] - 1)  # cancelled meanwhile
            return
        work = self._work(rec)
        if rec["stage"] == "printing" and self.specs[device].marks:
            work = await self._with_marks(work, rec)
            if work is None:
                self.load[device] = max(0, self.load[device] - 1)
                return
        try:
            ref = await self.devices[device].submit(work)
        except Exception as e:  # device refused: the letter must not silently stall
            self.load[device] = max(0, self.load[device] - 1)
            log.exception("submit to %s", device)
            self.alert(device, f"could not take work: {e}", letter_id)
            if rec["stage"] == "printing":
                await self.events.put(DeviceEvent(device, "job.aborted", letter_id, None,
                                                  {"reason": f"submit failed: {e}"}))
            else:
                self.operator_hold(letter_id, f"{device} refused the piece: {e}")
            return
        if rec["stage"] == "printing":
            self.store.update(letter_id, job=ref)

    # --- device events ----------------------------------------------------------------

    async def _event_loop(self) -> None:
        while True:
            ev = await self.events.get()
            try:
                await self._on_event(ev)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.exception("event %s", ev)
                self.alert(ev.device, f"could not handle event {ev.kind}: {e}", ev.letter_id)

    async def _on_event(self, ev: DeviceEvent) -> None:
        self.counters[f"event.{ev.kind}"] += 1
        if ev.kind == "device.state":
            old = self.device_state.get(ev.device)
            if old == "draining" and ev.detail.get("state") in ("idle", "busy"):
                return  # an operator drained it: it takes no new work until resumed
            self.device_state[ev.device] = ev.detail.get("state", old or "idle")
            self.publish("device", {"name": ev.device, "state": self.device_state[ev.device],
                                    **{k: v for k, v in ev.detail.items() if k != "state"}})
            if self.device_state[ev.device] in ("idle", "busy") and old not in ("idle", "busy"):
                await self.retry_held()
                await self.retry_waiting()
            return
        if ev.kind == "device.alert":
            self.alert(ev.device, ev.detail.get("message", "alert"), ev.letter_id)
            return
        if ev.letter_id is None:
            return
        rec = self.store.get(ev.letter_id)
        if rec is None:
            self.alert(ev.device, f"event {ev.kind} for a letter this appliance does not know", ev.letter_id)
            return
        # What the device really did, for counting (MI) and the consoles' log.  A replay
        # after restart carries recovered=True: MI counts it unless it already did.
        self.publish("device_event", {"device": ev.device, "kind": ev.kind, "letter_id": ev.letter_id,
                                      "t": ev.t, "specification_id": rec["specification_id"],
                                      "group_id": rec["group_id"], "sheets": rec.get("sheets"),
                                      "pages": rec.get("pages"), **ev.detail})
        self.audit.note(ev)
        action = status_for_event(ev.kind, self.profile.events)
        if action is None:
            self.store.update(ev.letter_id, event=ev.kind)
            return
        if ev.device in self.load and ev.kind.startswith(("job.completed", "job.aborted", "job.canceled",
                                                           "piece.")):
            self.load[ev.device] = max(0, self.load[ev.device] - 1)
            if self._backlog and ev.device in self.specs and self.specs[ev.device].family == "printer":
                await self.drain_backlog()
        if reprint.wants_reprint(action, ev.detail):
            await reprint.on_spoiled_piece(self, ev, rec)
            return
        if action == "reroute":
            await self._reroute(ev)
            return
        if action == "hold":
            self.operator_hold(ev.letter_id, f"{ev.device}: {ev.detail.get('reason', ev.kind)}")
            return
        expected = STAGE_PROVED_BY.get(action)
        if expected and (rec["stage"] != expected or rec.get("device") != ev.device
                         or reprint.stale_run(ev.detail, rec)):
            # Late or repeated news (a replay after restart, a job we rerouted away from).
            self.store.update(ev.letter_id, event=f"{ev.kind} (ignored)")
            self.counters["stale_events"] += 1
            return
        detail = ev.detail
        text = None
        if action == Status.FAILED:
            text = detail.get("reason") or f"{ev.kind} on {ev.device}"
        code = (detail.get("reason_code") or "DEVICE_" + ev.kind.split(".")[1].upper()) if text else None
        # The same status twice is a no-op for the API, but a reprinted letter must still
        # move on to the inserter: the stage, not the status change, drives the next step.
        self._set_status(ev.letter_id, action, code, text, event=ev.kind)
        if action == Status.PRINTED:
            await self.hand_on_or_stop(ev.letter_id, "inserter", "enclosing")
        elif action == Status.ENCLOSED:
            await self.hand_on_or_stop(ev.letter_id, "franker", "franking")
        elif is_final(action):
            self.finish(ev.letter_id)
        self.publish("letter", self.letter_brief(ev.letter_id))

    async def hand_on_or_stop(self, letter_id: str, family: str, stage: str) -> None:
        specs = self.profile.inserters if family == "inserter" else self.profile.frankers
        if not specs:  # this floor finishes by hand: the letter leaves our hands here
            self.finish(letter_id, stage="manual-finishing")
            return
        await self._hand_on(letter_id, family, stage)

    async def retry_waiting(self) -> None:
        for rec in self.store.letters(stage="wait-inserter"):
            await self._hand_on(rec["id"], "inserter", "enclosing")
        for rec in self.store.letters(stage="wait-franker"):
            await self._hand_on(rec["id"], "franker", "franking")

    async def _reroute(self, ev: DeviceEvent) -> None:
        letter_id = ev.letter_id
        rec = self.store.get(letter_id)
        if rec["status"] not in (Status.ACCEPTED, Status.PRINTED) or rec.get("printer") != ev.device:
            return  # late news from a printer we already moved away from
        if rec["status"] == Status.PRINTED and rec["stage"] != "printing":
            return  # a reprint's old job: the letter has moved on
        attempts = rec.get("attempts", 0) + 1
        self.store.update(letter_id, attempts=attempts, stage="verified", event=ev.kind,
                          reason=ev.detail.get("reason"))
        if attempts >= self.profile.print_attempts:
            self._set_status(letter_id, Status.FAILED, "PRINT_FAILED",
                             f"print failed {attempts} times (last: {ev.kind} on {ev.device})",
                             event="print-failed")
            self.finish(letter_id)
            return
        self.alert(ev.device, f"{ev.kind}; rerouting (attempt {attempts + 1})", letter_id)
        await self._route(letter_id)

    # --- restart ----------------------------------------------------------------------

    async def recover(self) -> None:
        """Pick up every in-flight letter where it stood (``appliance.pipeline.recovery``)."""
        await recover(self)

    # --- read-only views --------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "counts": self.store.counts(),
            "devices": {
                name: {**vars(drv.health()), "driver_state": drv.health().state,
                       "family": self.specs[name].family,
                       # the pipeline's view wins: paused/draining by an operator, stopped by CUPS
                       "state": self.device_state.get(name), "load": self.load[name]}
                for name, drv in self.devices.items()
            },
            "held": len(self.held),
            "waiting_for_printer": len(self._backlog),
            "outbox": len(self.store.outbox_pending()),
            "alerts": [vars(a) for a in list(self.alerts)[-20:]],
            "counters": dict(self.counters),
            "api_ok": self.api_ok and self.outbox.api_ok,
            "intake": self.intake.stats(),
            "tasks": self.supervisor.report(),
            "healthy": self.supervisor.healthy(),
        }
