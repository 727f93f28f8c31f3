"""The letter pipeline: poll -> download + verify -> print -> insert -> frank -> report.

``Pipeline`` holds the floor's state (store, devices, loads, alerts) and its life cycle; its
work is split by concern over three mixins: ``IntakeSide`` (polling and intake's verdicts),
``Printing`` (routing, marks, handing work to devices), ``Finishing`` (device events,
inserter and franker, reroutes, reprints, holds) and ``Alerting`` (alerts by cause).  Restart recovery is ``recovery``.

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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import drivers
from appliance.api.client import SupplierClient
from appliance.config.profile import DeviceSpec, Profile
from appliance.core.alerts import Alerts
from appliance.core.pacing import ListingWindow
from appliance.core.packs import Pack
from appliance.core.status import Status, TransitionError
from appliance.core.stuck import overdue
from appliance.core.supervisor import Supervisor
from appliance.intake.pool import IntakePool
from appliance.intake.settings import IntakeSettings
from appliance.intake.stage import Intake
from appliance.pipeline.alerting import Alerting
from appliance.pipeline.audit import AuditLog
from appliance.pipeline.deadlines import Deadlines
from appliance.pipeline.finishing import Finishing
from appliance.pipeline.intake_side import IntakeSide
from appliance.pipeline.outbox import OutboxSender
from appliance.pipeline.printing import Printing
from appliance.pipeline.prover import Prover
from appliance.pipeline.recovery import recover
from appliance.store.committer import Committer
from appliance.store.spool import sweep
from appliance.store.store import Store
from drivers.base import DeviceEvent, Driver

log = logging.getLogger("appliance.pipeline.pipeline")

#: Stages in which a letter waits for a person (or a printer for its pack): the header's "held".
HELD_STAGES = ("held", "operator-hold", "intake-hold", "accept-unsure")


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
    visibility_timeout: float = 300.0  # seconds Notify hides what it lists (its LETTER_QUEUE_VISIBILITY_TIMEOUT)
    accept_margin: float = 60.0  # an ACCEPTED must be answered 202 this long before the window ends
    prove_after: float = 5.0  # seconds after a 202 before a read-back may prove the update applied
    let_go_keep: float = 24 * 3600.0  # seconds a let-go letter is remembered (to be taken again)


class Pipeline(IntakeSide, Printing, Finishing, Alerting, Deadlines):
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
        self.alerts = Alerts()  # by cause: open until cleared or acknowledged (appliance.core.alerts)
        self.counters: Counter[str] = Counter()
        self.committer = Committer(store, settings.commit_interval)
        self.outbox = OutboxSender(store, client, self.committer, batch_size=settings.batch_size,
                                   interval=settings.outbox_interval, alert=self.alert,
                                   clear_alert=self.clear_alert,
                                   counters=self.counters, events=self,
                                   # half the margin, at most 10 s: a 202 takes well under that
                                   answer_within=min(settings.accept_margin / 2, 10.0))
        self.prover = Prover(store, client, prove_after=settings.prove_after, alert=self.alert,
                             clear_alert=self.clear_alert,
                             counters=self.counters, wake_outbox=self.outbox.wake)
        self.listing_window = ListingWindow(floor=settings.intake.fetchers)
        self.supervisor = Supervisor(self.alert)
        self.pool = IntakePool(settings.intake)
        self.intake = Intake(store=store, client=client, pool=self.pool, packs=packs, policy=profile.verify,
                             settings=settings.intake, spool_dir=settings.spool_dir,
                             max_pdf_bytes=settings.max_pdf_bytes, sink=self, alert=self.alert,
                             counters=self.counters, order=self.work_key)
        self._stuck_alerted: set[tuple[str, str]] = set()
        self._backlog: dict[str, None] = {}  # letters waiting for room at a printer, in order
        self.last_poll_empty = False
        self.api_ok = True
        self._submits: list[tuple[str, str]] = []  # (device, letter id) awaiting durable intent
        self._handing: set[tuple[str, str]] = set()  # (device, letter id) taken by the dispatch loop
        self._current: tuple[str, str] | None = None  # the one being marked or submitted now
        self._dropped: set[tuple[str, str]] = set()  # taken, not begun, replaced by a reprint
        self._dispatch_wake = asyncio.Event()
        self.listeners: list = []  # callables(kind, data): consoles attached over the control socket
        self.audit = AuditLog(state_dir / "audit", {s.name for s in profile.inserters})  # per inserter batch
        self._acks = None  # the Journal of who acknowledged which alert (opened on the first ack)
        spool = settings.spool_dir
        spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(spool, 0o700)  # patient data: private even if the folder existed already
        self._init_deadlines()  # dispatch-by, EDF order, at-risk watch, missed counts

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
        sv.spawn("prover", self.prover.run)
        sv.spawn("dispatch", self._dispatch_loop)
        sv.spawn("intake", self.intake.run)
        await self.recover()
        sv.spawn("poll", self._poll_loop)
        sv.spawn("window", self._window_loop)
        sv.spawn("spool-sweeper", self._spool_sweeper)
        sv.spawn("stuck-sweeper", self._stuck_sweeper)
        sv.spawn("alert-watch", self._alert_watch)
        sv.spawn("deadlines", self._deadline_watch)

    async def stop(self) -> None:
        """Stop taking work, flush what is known, close devices.  Nothing is lost: what
        was in flight is recorded and picked up by ``recover`` on the next start."""
        await self.supervisor.stop()
        for drv in self.devices.values():
            await drv.stop()
        await asyncio.to_thread(self.pool.stop)
        self.audit.close()
        if self._acks is not None:
            self._acks.close()
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
                                        "device", "printer", "reason_code", "reason_text", "updated",
                                        "refused")}

    def _set_status(self, letter_id: str, status: str, code: str | None = None,
                    text: str | None = None, event: str | None = None,
                    deadline: float | None = None) -> bool:
        try:
            changed = self.store.set_status(letter_id, status, code, text, event=event,
                                            deadline=deadline)
        except TransitionError as e:
            self.counters["ignored_transitions"] += 1
            log.info("letter %s: %s", letter_id, e)
            return False
        if changed:
            self.counters[f"status.{status}"] += 1
            if status == Status.DISPATCHED:
                self.deadline_dispatched(letter_id)
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
        self.clear_alerts(lambda a: a.letter_id == letter_id)  # a final letter's troubles are over

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
                self.clear_alert("spool:sweep")
            except OSError as e:
                self.alert("spool", f"cannot sweep the spool: {e}", key="spool:sweep")
            await asyncio.sleep(period)

    async def _stuck_sweeper(self) -> None:
        """Alert once for every letter past its stage's deadline (``appliance.core.stuck``); a
        letter at intake that nothing will fetch again is taken again."""
        while True:
            await asyncio.sleep(self.s.sweep_interval)
            now = time.time()
            for letter_id, stage in list(self._stuck_alerted):  # moved on since: no longer stuck
                rec = self.store.get(letter_id)
                if rec is None or rec["stage"] != stage:
                    self._stuck_alerted.discard((letter_id, stage))
                    self.clear_alert(f"letter:{letter_id}:stuck-{stage}")
            for letter_id, stage, age in overdue(self.store.in_flight(), now, self.s.stage_deadline):
                if stage == "new" and not self.intake.pending(letter_id):
                    self.counters["intake_lost"] += 1
                    self.alert("watch", "letter was waiting at intake with nothing to fetch it; "
                                        "fetching it now", letter_id, key=f"letter:{letter_id}:intake-lost")
                    self.intake.take(letter_id)
                    continue
                if (letter_id, stage) not in self._stuck_alerted:
                    self._stuck_alerted.add((letter_id, stage))
                    self.counters["stuck"] += 1
                    self.alert("watch", f"letter has been in stage {stage} for {age / 60:.0f} min "
                                        f"(over {self.s.stage_deadline / 60:.0f} min)", letter_id,
                               key=f"letter:{letter_id}:stuck-{stage}")

    # --- intake -----------------------------------------------------------------------

    # --- what intake reports (appliance.intake.stage.IntakeSink) --------------------------

    # --- printing ---------------------------------------------------------------------

    # --- finishing --------------------------------------------------------------------

    # --- handing work to devices ------------------------------------------------------

    # --- device events ----------------------------------------------------------------

    # --- restart ----------------------------------------------------------------------

    async def recover(self) -> None:
        """Pick up every in-flight letter where it stood (``appliance.pipeline.recovery``)."""
        await recover(self)

    # --- read-only views --------------------------------------------------------------

    def _updates_view(self) -> dict[str, Any]:
        """Where status updates stand: unsent, sent (202) and not proven, refused letters,
        and the age of the oldest unproven one (seconds)."""
        c = self.store.outbox_counts()
        oldest = c.pop("oldest_sent")
        return {**c, "unproven_age": round(time.time() - oldest, 1) if oldest else 0.0,
                "let_go": self.counters["let_go"], "accepted_lost": self.counters["accepted_lost"]}

    def waiting_counts(self) -> dict[str, int]:
        """Letters waiting for a person or a retry, from the store the letter lists read:
        held (stages in ``HELD_STAGES``), refused by Notify, and fetches waiting to retry."""
        return {"held": sum(self.store.stage_count(s) for s in HELD_STAGES),
                "refused": len(self.store.refused_letters()),
                "waiting_for_retry": sum(1 for r in self.store.letters(stage="new")
                                         if r.get("intake_retry_at"))}

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
            **self.waiting_counts(),
            "waiting_for_printer": len(self._backlog),
            "deadlines": self.deadlines_view(),
            "outbox": len(self.store.outbox_pending()),
            "updates": self._updates_view(),
            "alerts": [a.as_dict() for a in self.alerts.open_alerts()],
            "alerts_closed": [a.as_dict() for a in self.alerts.closed_alerts(50)],
            "alert_counts": self.alerts.counts(),
            "failure_reasons": dict(getattr(self.profile, "failure_reasons", {}) or {}),
            "counters": dict(self.counters),
            "api_ok": self.api_ok and self.outbox.api_ok and self.prover.api_ok,
            "intake": {**self.intake.stats(), "listing_window": int(self.listing_window.size)},
            "tasks": self.supervisor.report(),
            "healthy": self.supervisor.healthy(),
        }
