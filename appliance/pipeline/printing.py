"""The pipeline's printing side: routing verified letters to capable printers (in line
when every printer is full), sheet marks, and handing work to devices intent first.

A mixin of ``Pipeline`` (``appliance.pipeline.pipeline``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from appliance.api.client import ApiError, ApiUnavailable
from appliance.core.errors import UserError, WorkerDied
from appliance.core.routing import PrinterView, capable, choose_printer, waiting_for_room
from appliance.core.status import Status
from appliance.intake import worker as intake_worker
from appliance.marks.overlay import marked_path
from drivers.base import DeviceEvent, Work

log = logging.getLogger("appliance.pipeline")

#: Stages in which a letter has been given (or is about to be given) to a device.
SUBMIT_STAGES = frozenset({"printing", "enclosing", "franking"})


class Printing:
    def _work(self, rec: dict) -> Work:
        pack = self.packs[rec["specification_id"]]
        return Work(rec["id"], Path(rec["pdf"]) if rec.get("pdf") else None, pack,
                    rec.get("pages") or 0, rec.get("sheets") or 0, rec.get("print_run") or 0,
                    order=self.work_key(rec["id"])[:2])  # devices that queue work go EDF too

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
        if (now is None or now.get("device") != rec.get("device") or now["stage"] != "printing"
                or now.get("print_run") != rec.get("print_run")):
            if now is None or now.get("marked_pdf") != str(dest):
                dest.unlink(missing_ok=True)  # cancelled or moved while the copy was being made
            return None
        old = now.get("marked_pdf")
        if old and old != str(dest):
            Path(old).unlink(missing_ok=True)  # an earlier run's copy (reprint, reroute)
        self.store.update(rec["id"], marked_pdf=str(dest), event=f"marked run {run}")
        return replace(work, pdf=dest)

    def _printer_views(self) -> list[PrinterView]:
        return [
            PrinterView(s.name, s.caps, self.device_state.get(s.name, "offline"), self.load[s.name],
                        s.max_queued)
            for s in self.profile.printers
        ]

    async def route(self, letter_id: str) -> None:
        rec = self.store.peek(letter_id)
        if rec is None or rec["status"] not in (Status.ACCEPTED, Status.PRINTED):
            return  # PRINTED: a reprint waiting for a printer
        await self.route_any(letter_id)

    async def route_any(self, letter_id: str) -> None:
        """Route a letter to a printer (ACCEPTED, or PRINTED when an operator reprints)."""
        rec = self.store.get(letter_id)
        pack = self.packs[rec["specification_id"]]
        # Envelope first (appliance.pipeline.finishing): a letter whose envelope no inserter
        # that is up holds waits unprinted, not as paper at an inserter.
        if self.envelope_hold(letter_id, rec, pack):
            return
        views = self._printer_views()
        choice = choose_printer(views, pack, self.profile.print_features,
                                frozenset(self.tried.get(letter_id, ())))
        if choice is None:
            if waiting_for_room(views, pack, self.profile.print_features):
                # Printers are up but hold all they should: wait in line, no alert.
                if letter_id not in self._backlog:
                    self._backlog[letter_id] = self.work_key(letter_id)
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
                held = sum(1 for h in self.held
                           if (self.store.peek(h) or {}).get("specification_id") == pack.id)
                self.alert("routing", f"no printer available for pack {pack.id}; {held} letter(s) held",
                           key=f"routing:no-printer:{pack.id}", severity="critical")
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
            self.alert("api", f"cannot check stale letter, printing it anyway: {e}", rec["id"],
                       key=f"letter:{rec['id']}:stale-check")
            return True
        except ApiError as e:
            current = None
            self.alert("api", f"stale letter check failed ({e})", rec["id"],
                       key=f"letter:{rec['id']}:stale-check")
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

    async def retry_held(self) -> None:
        for letter_id in sorted(self.held, key=self.work_key):  # earliest deadline first
            await self.route(letter_id)
            if (self.store.peek(letter_id) or {}).get("stage") != "held":
                self.held.discard(letter_id)  # cancelled or finished meanwhile
        packs = {(self.store.peek(h) or {}).get("specification_id") for h in self.held}
        self.clear_alerts(lambda a: a.key.startswith("routing:no-printer:")
                          and a.key.split(":", 2)[2] not in packs)
        await self.drain_backlog()

    async def drain_backlog(self) -> None:
        """Route letters that waited for room, earliest deadline first (``work_key``), while
        printers have room."""
        for letter_id in sorted(self._backlog, key=self._backlog.__getitem__):
            rec = self.store.peek(letter_id)
            if rec is None or rec["stage"] != "verified":
                self._backlog.pop(letter_id, None)
                continue
            before = len(self._backlog)
            await self.route_any(letter_id)
            if letter_id in self._backlog and len(self._backlog) == before:
                # Still no room for it; later letters of other packs may fit elsewhere, but
                # keeping print order matters more than filling every gap at once.
                break

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
            self._handing.update(batch)  # still on their way to the device (pending_handover)
            done = 0
            try:
                await self.committer.durable()  # intent before side effect
                for device, letter_id in batch:
                    done += 1
                    await self._hand_over(device, letter_id)
            finally:
                if done < len(batch):  # interrupted: the rest go first next time, in order
                    self._handing.difference_update(batch[done:])
                    self._submits[:0] = batch[done:]
                    self._dispatch_wake.set()

    def pending_handover(self, device: str, letter_id: str) -> bool:
        """Is this letter's intent for ``device`` not yet handed over (queued for the
        dispatch loop, or being marked / submitted now)?  Then the dispatch loop settles it
        (a cancelled or moved letter is dropped there, its load given back)."""
        return (device, letter_id) in self._handing or (device, letter_id) in self._submits

    def drop_handover(self, device: str, letter_id: str) -> bool:
        """Forget an intent the dispatch loop has not begun (a reprint replaces it); False
        when there is none, or it is being handed over right now (then the loop sees the
        new print run and takes it back)."""
        item = (device, letter_id)
        if item in self._submits:
            self._submits.remove(item)
            self.load[device] = max(0, self.load[device] - 1)
            return True
        if item in self._handing and item != self._current:
            self._dropped.add(item)  # the loop skips it and gives its load back
            return True
        return False

    async def _hand_over(self, device: str, letter_id: str) -> None:
        self._current = (device, letter_id)
        try:
            await self._hand_over_one(device, letter_id)
        finally:
            self._current = None
            self._handing.discard((device, letter_id))

    async def _hand_over_one(self, device: str, letter_id: str) -> None:
        if (device, letter_id) in self._dropped:
            self._dropped.discard((device, letter_id))
            self.load[device] = max(0, self.load[device] - 1)
            return
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
            log.exception("submit to %s", device)
            self.alert(device, f"could not take work: {e}", letter_id, key=f"letter:{letter_id}:submit")
            if rec["stage"] == "printing":  # the event gives the load back and reroutes
                await self.events.put(DeviceEvent(device, "job.aborted", letter_id, None,
                                                  {"reason": f"submit failed: {e}", "run": work.run}))
            else:
                self.load[device] = max(0, self.load[device] - 1)
                self.operator_hold(letter_id, f"{device} refused the piece: {e}")
            return
        now = self.store.get(letter_id)
        if (now is None or now.get("device") != device or now["stage"] != rec["stage"]
                or now.get("print_run") != rec.get("print_run")):
            # Cancelled or reprinted while the device took it: take it back if it still can.
            why_not = await self.devices[device].withdraw(letter_id)
            if why_not is None:
                self.load[device] = max(0, self.load[device] - 1)
            if now is not None:
                self.store.update(letter_id, event=f"withdrawn from {device}" if why_not is None
                                  else f"not withdrawn from {device}: {why_not}")
            return
        if rec["stage"] == "printing":
            self.store.update(letter_id, job=ref)
