"""The pipeline's device side: what devices report (normalised events -> statuses),
handing printed letters to the inserter and franker, reroutes, automatic reprints of
spoiled pieces, and operator holds.

A mixin of ``Pipeline`` (``appliance.pipeline.pipeline``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from appliance.core import reprint
from appliance.core.status import Status, is_final, status_for_event
from appliance.pipeline.envelopes import EnvelopeStock
from drivers.base import DeviceEvent

log = logging.getLogger("appliance.pipeline")

#: The stage a letter must be in for a device event to prove its next status.
STAGE_PROVED_BY = {Status.PRINTED: "printing", Status.ENCLOSED: "enclosing", Status.DISPATCHED: "franking"}

#: Event kinds after which a device no longer holds the letter (its load is given back).
FINISHED_THERE = ("job.completed", "job.aborted", "job.canceled", "piece.")



class Finishing:
    def operator_hold(self, letter_id: str, why: str) -> None:
        """Put a letter before a person: never advanced automatically from here."""
        self.store.update(letter_id, stage="operator-hold", event="operator-hold", hold_reason=why)
        self.alert("operator", f"piece needs a person: {why}", letter_id, key=f"letter:{letter_id}:hold",
                   severity="critical")

    # --- envelopes loaded at the inserters (appliance.pipeline.envelopes) ---------------

    @property
    def envelope_stock(self) -> EnvelopeStock:
        stock = self.__dict__.get("_envelope_stock")
        if stock is None:
            stock = self.__dict__["_envelope_stock"] = EnvelopeStock(
                self.state_dir, {s.name: s.accepts for s in self.profile.inserters})
            self.__dict__["_env_wait"] = {}
        return stock

    def _takes(self, family: str, spec, wanted: str | None) -> bool:
        if family == "inserter":
            return self.envelope_stock.takes(spec.name, wanted)
        return not spec.accepts or wanted in spec.accepts

    def envelope_hold(self, letter_id: str, rec: dict, pack) -> bool:
        """Before printing: does any inserter of the floor hold the pack's envelope?  If not,
        the letter is held (no printed paper waiting at an inserter for hours), with one
        alert per envelope, and True is returned; it is routed when the envelope is loaded.
        An inserter that holds it but is down (offline, jammed) does not stop printing: the
        letter waits at wait-inserter as for any inserter fault, which has its own alert."""
        if not self.profile.inserters:
            return False  # finished by hand: nobody to ask
        env = pack.envelope_id or ""
        stock, waiting = self.envelope_stock, self.__dict__["_env_wait"]
        if any(stock.takes(s.name, env) for s in self.profile.inserters):
            if rec.get("wait_envelope"):
                self.held.discard(letter_id)  # printer routing decides from here
                self.store.update(letter_id, wait_envelope=None, event=f"envelope {env} loaded: released")
            self._envelope_released(env, letter_id)
            return False
        self.held.add(letter_id)
        if rec["stage"] != "held" or rec.get("wait_envelope") != env:
            self.store.update(letter_id, stage="held", wait_envelope=env, event=f"wait-envelope {env}",
                              hold_reason=f"envelope {env} is not loaded at any inserter that is up")
        waiting.setdefault(env, set()).add(letter_id)
        self._envelope_alert(env)
        return True

    def _envelope_alert(self, env: str) -> None:
        n = len(self.__dict__["_env_wait"].get(env, ()))
        self.alert("routing", f"load envelope {env}: {n} letters waiting", key=f"routing:envelope:{env}",
                   severity="critical")

    def _envelope_released(self, env: str, letter_id: str) -> None:
        waiting = self.__dict__["_env_wait"]
        ids = waiting.get(env)
        if ids and letter_id in ids:
            ids.discard(letter_id)
            if ids:
                self._envelope_alert(env)
            else:
                del waiting[env]
                self.clear_alert(f"routing:envelope:{env}")

    def refresh_envelope_alerts(self) -> None:
        """Forget letters no longer waiting for an envelope (cancelled, finished, loaded)."""
        self.envelope_stock  # noqa: B018 - makes the wait table
        for env, ids in list(self.__dict__["_env_wait"].items()):
            for lid in list(ids):
                rec = self.store.get(lid)
                if rec is None or rec["stage"] not in ("held", "wait-inserter") or (
                        rec["stage"] == "held" and rec.get("wait_envelope") != env):
                    self._envelope_released(env, lid)

    def _finisher_for(self, family: str, rec: dict) -> str | None:
        pack = self.packs[rec["specification_id"]]
        wanted = pack.envelope_id if family == "inserter" else pack.postage_id
        specs = self.profile.inserters if family == "inserter" else self.profile.frankers
        ok = [s for s in specs if self._takes(family, s, wanted)
              and self.device_state.get(s.name) in ("idle", "busy")]
        if not ok:
            return None
        name = min(ok, key=lambda s: self.load[s.name]).name
        if family == "inserter" and name in self.devices:
            # What the feeders hold, for a driver that checks it (the simulators do).
            self.devices[name].envelopes = self.envelope_stock.loaded.get(name)
        return name

    async def hand_on(self, letter_id: str, family: str, stage: str) -> None:
        """Give a letter to the next finishing machine, intent first."""
        rec = self.store.get(letter_id)
        name = self._finisher_for(family, rec)
        if name is None:
            self.store.update(letter_id, stage=f"wait-{family}", event=f"no {family}")
            pack = self.packs[rec["specification_id"]]
            env = pack.envelope_id or ""
            if family == "inserter" and not any(self.envelope_stock.takes(s.name, env)
                                                for s in self.profile.inserters):
                # No inserter holds the envelope (unloaded while the letter printed).
                self.__dict__["_env_wait"].setdefault(env, set()).add(letter_id)
                self._envelope_alert(env)
                return
            # One cause, however many letters wait behind it (the device's own alert says why).
            waiting = self.store.stage_count(f"wait-{family}")
            self.alert("routing", f"no {family} available; {waiting} letter(s) wait",
                       key=f"routing:no-{family}", severity="critical")
            return
        if family == "inserter":
            self._envelope_released(self.packs[rec["specification_id"]].envelope_id or "", letter_id)
        self.store.update(letter_id, stage=stage, device=name, event="submit")
        self._intend(name, letter_id)

    async def hand_on_or_stop(self, letter_id: str, family: str, stage: str) -> None:
        specs = self.profile.inserters if family == "inserter" else self.profile.frankers
        if not specs:  # this floor finishes by hand: the letter leaves our hands here
            self.finish(letter_id, stage="manual-finishing")
            return
        await self.hand_on(letter_id, family, stage)

    async def retry_waiting(self) -> None:
        for rec in sorted(self.store.letters(stage="wait-inserter"), key=self.record_key):  # EDF
            await self.hand_on(rec["id"], "inserter", "enclosing")
        for rec in sorted(self.store.letters(stage="wait-franker"), key=self.record_key):
            await self.hand_on(rec["id"], "franker", "franking")
        for family in ("inserter", "franker"):
            if not self.store.stage_count(f"wait-{family}"):
                self.clear_alert(f"routing:no-{family}")
        self.refresh_envelope_alerts()

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
            if self.device_state[ev.device] in ("idle", "busy"):
                self._device_ready(ev.device)
            if self.device_state[ev.device] in ("idle", "busy") and old not in ("idle", "busy"):
                await self.retry_held()
                await self.retry_waiting()
            return
        if ev.kind == "device.alert":
            key = ev.detail.get("key")  # a driver that knows its condition names it
            if key:
                key = (f"letter:{ev.letter_id}:{ev.device}-{key}" if ev.letter_id
                       else f"device:{ev.device}:{key}")
            self.alert(ev.device, ev.detail.get("message", "alert"), ev.letter_id, key=key,
                       severity=ev.detail.get("severity"))
            return
        if ev.letter_id is None:
            return
        action = status_for_event(ev.kind, self.profile.events)
        if action is not None and ev.device in self.load and ev.kind.startswith(FINISHED_THERE):
            # The device is done with it, whatever became of the letter meanwhile (cancelled,
            # reprinted elsewhere, archived): its load is given back first.
            self.load[ev.device] = max(0, self.load[ev.device] - 1)
            if self._backlog and ev.device in self.specs and self.specs[ev.device].family == "printer":
                await self.drain_backlog()
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
        if action is None:
            self.store.update(ev.letter_id, event=ev.kind)
            return
        if reprint.wants_reprint(action, ev.detail):
            await self.reprint_spoiled(ev, rec)
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

    async def _reroute(self, ev: DeviceEvent) -> None:
        letter_id = ev.letter_id
        rec = self.store.get(letter_id)
        if (rec["status"] not in (Status.ACCEPTED, Status.PRINTED) or rec.get("printer") != ev.device
                or rec["stage"] != "printing" or reprint.stale_run(ev.detail, rec)):
            return  # late news from a printer we already moved away from, or of an earlier run
        if rec["status"] == Status.PRINTED and rec["stage"] != "printing":
            return  # a reprint's old job: the letter has moved on
        # A service fault (CUPS lost the job in a restart) is retried, never counted towards
        # FAILED: that is for the printer or the letter failing (fault classes).
        attempts = rec.get("attempts", 0) + (0 if ev.detail.get("service_fault") else 1)
        self.store.update(letter_id, attempts=attempts, stage="verified", event=ev.kind,
                          reason=ev.detail.get("reason"))
        if attempts >= self.profile.print_attempts:
            log.warning("%s: %s; print failed %d times, FAILED (%s)", ev.device, ev.kind, attempts, letter_id)
            self._set_status(letter_id, Status.FAILED, "PRINT_FAILED",
                             f"print failed {attempts} times (last: {ev.kind} on {ev.device})",
                             event="print-failed")
            self.finish(letter_id)
            return
        self.alert(ev.device, f"{ev.kind}; rerouting (attempt {attempts + 1})", letter_id,
                   key=f"letter:{letter_id}:reroute", severity="info")
        await self.route(letter_id)

    async def reprint_spoiled(self, ev: DeviceEvent, rec: dict[str, Any]) -> None:
        """Reprint or hold the letter of a spoiled piece (``appliance.core.reprint`` decides)."""
        lid = ev.letter_id
        if rec.get("device") != ev.device or rec["stage"] not in ("enclosing", "franking") or reprint.stale_run(ev.detail, rec):
            # Late or repeated news: a piece of a spoiled print, or from a device we moved away from.
            self.store.update(lid, event=f"{ev.kind} (ignored)")
            self.counters["stale_events"] += 1
            return
        reason = ev.detail.get("reason") or f"{ev.kind} on {ev.device}"
        if rec["stage"] != "enclosing":  # the franker's divert of an ENCLOSED letter: never reprinted here
            self.audit.decided(ev, "held")
            self.operator_hold(lid, f"{reason}; already ENCLOSED, not reprinted automatically")
            return
        policy = self.profile.reprint
        d = reprint.decide(rec.get("reprints", 0), policy, reason)
        if not d.reprint:
            self.audit.decided(ev, "held")
            self.operator_hold(lid, d.timeline)
            self.publish("letter", self.letter_brief(lid))
            return
        self.audit.decided(ev, "reprinted")
        self.counters["reprints"] += 1
        self.store.update(lid, event=d.timeline, reprints=rec.get("reprints", 0) + 1, stage="verified",
                       printer=None, device=None, attempts=0, reprint_reason=reason,
                       reprint_code=ev.detail.get("reason_code") or "DEVICE_" + ev.kind.split(".")[1].upper(),
                       reprint_of=ev.detail.get("run"))
        self.alert(ev.device, d.timeline, lid, key=f"letter:{lid}:reprint", severity="info")
        self.clear_alert(f"letter:{lid}:hold")
        self.tried.pop(lid, None)
        if policy.printer:  # only the named printer: every other one counts as tried
            self.tried[lid] = {s.name for s in self.profile.printers if s.name != policy.printer}
        await self.route_any(lid)
        self.publish("letter", self.letter_brief(lid))
