"""The pipeline's dispatch deadlines: each letter's dispatch-by stamped when it is listed,
the order every queue works in (earliest deadline first), the watch that finds letters at
risk and alerts before the cut-off, and the missed counts (per day and pack, kept in
``<state>/deadlines/missed.json`` so they survive a restart).  The rules are pure, in
``appliance.core.deadlines``.

A mixin of ``Pipeline`` (``appliance.pipeline.pipeline``); ``deadline_clock`` is its clock
(tests inject one).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

from appliance.core.deadlines import RateMeter, Risk, Waiting, assess, dispatch_by, edf_key
from appliance.core.routing import why_not
from appliance.mi.missed import read_missed, write_missed

log = logging.getLogger("appliance.pipeline.deadlines")

#: Seconds between two looks at the deadlines.
WATCH_INTERVAL = 5.0
#: Stages where a person must act before the letter moves on.
WITH_A_PERSON = {"operator-hold": "held for a person", "intake-hold": "held at intake for a person",
                 "accept-unsure": "waiting for a person to confirm Notify has it"}
#: Device states in which a device does no work.
NOT_WORKING = ("paused", "stopped", "offline", "draining", "error", "stalled")


class Deadlines:
    def _init_deadlines(self) -> None:
        self.deadline_clock = time.time
        self.dispatch_rate = RateMeter(window_s=600.0)
        self.at_risk: dict[str, Risk] = {}
        self._deadline_alerts: set[str] = set()
        self.missed = read_missed(self.state_dir)  # kept across restarts

    @property
    def service(self):
        return self.profile.service

    # --- stamping and ordering -----------------------------------------------------------

    def stamp_deadline(self, letter_id: str, specification_id: str) -> None:
        """A newly listed letter gets its dispatch-by (unknown pack: none; intake rejects it)."""
        pack = self.packs.get(specification_id)
        if pack is None:
            return
        d = dispatch_by(pack, self.deadline_clock(), self.service)
        self.store.update(letter_id, dispatch_by=round(d.at, 3), dispatch_rule=d.rule)

    def deadline_of(self, rec: dict) -> float | None:
        if rec.get("dispatch_by") is None and rec.get("specification_id") in self.packs:
            return dispatch_by(self.packs[rec["specification_id"]], rec.get("created") or self.deadline_clock(),
                               self.service).at  # a letter stored before deadlines existed
        return rec.get("dispatch_by")

    def work_key(self, letter_id: str) -> tuple:
        """Where a letter stands in every queue: earliest dispatch-by first, then the order
        it was listed (Notify lists by its priority; the letter resource carries none)."""
        return self.record_key(self.store.get(letter_id) or {"id": letter_id})

    def record_key(self, rec: dict) -> tuple:
        """``work_key`` from a record already at hand."""
        return (edf_key(self.deadline_of(rec), 0, self.service.order)[0], rec.get("created") or 0.0, rec["id"])

    # --- dispatch and misses -------------------------------------------------------------

    def deadline_dispatched(self, letter_id: str) -> None:
        """A letter was DISPATCHED: measured for the rate; counted if it left late."""
        now = self.deadline_clock()
        self.dispatch_rate.add(now)
        self.at_risk.pop(letter_id, None)
        rec = self.store.get(letter_id)
        if rec is not None:
            self._maybe_missed(rec, now)

    def _maybe_missed(self, rec: dict, now: float) -> bool:
        due = rec.get("dispatch_by")
        if due is None or now <= due or rec.get("deadline_missed"):
            return False
        day = datetime.fromtimestamp(due, self.service.tz).date()
        self.store.update(rec["id"], deadline_missed=True, event=f"missed its dispatch-by "
                          f"{datetime.fromtimestamp(due, self.service.tz):%Y-%m-%d %H:%M}")
        if not self.missed.add(day, rec.get("specification_id") or "?", letter_id=rec["id"]):
            return False  # counted before a restart that lost the letter's note
        self.counters["deadline_missed"] += 1
        self._save_missed()
        return True

    def _save_missed(self) -> None:
        try:
            write_missed(self.state_dir, self.missed)
        except OSError as e:  # the counts must never stop the floor
            self.alert("deadlines", f"cannot keep the missed-deadline counts: {e}", key="deadlines:save")

    # --- at risk -------------------------------------------------------------------------

    def _blocked(self, rec: dict) -> str | None:
        """Why this letter cannot move now, or None."""
        stage = rec["stage"]
        pack = self.packs.get(rec.get("specification_id") or "")
        if stage == "held" and rec.get("wait_envelope"):
            return f"envelope {rec['wait_envelope']} not loaded at any inserter"
        if stage == "wait-inserter" and pack is not None and pack.envelope_id and not any(
                self.envelope_stock.takes(s.name, pack.envelope_id) for s in self.profile.inserters):
            return f"envelope {pack.envelope_id} not loaded at any inserter"
        if stage == "held":
            able = [f"{s.name} {self.device_state.get(s.name, 'offline')}" for s in self.profile.printers
                    if pack is not None and why_not(s.caps, pack, self.profile.print_features) is None]
            return (f"no printer available for pack {rec.get('specification_id')}: {', '.join(able)}" if able
                    else f"no capable printer for pack {rec.get('specification_id')}")
        if stage.startswith("wait-"):
            return f"no {stage[5:]} available"
        if stage in WITH_A_PERSON:
            return f"{WITH_A_PERSON[stage]}: {rec.get('hold_reason') or ''}".rstrip(": ")
        device = rec.get("device")
        if device and stage in ("printing", "enclosing", "franking"):
            state = self.device_state.get(device, "offline")
            if state in NOT_WORKING:
                return f"{'printer' if stage == 'printing' else 'device'} {device} {state}"
        return None

    def check_deadlines(self) -> list[Risk]:
        """Count passed deadlines, find letters at risk, raise and close their alerts."""
        now = self.deadline_clock()
        waiting = []
        for rec in self.store.in_flight():
            due = self.deadline_of(rec)
            if due is None:
                continue
            self._maybe_missed(rec, now)
            waiting.append((self.record_key(rec), Waiting(rec["id"], due, rec.get("specification_id") or "?",
                                                              self._blocked(rec))))
        waiting.sort(key=lambda kw: kw[0])
        lead = self.service.at_risk_lead_minutes * 60.0
        risks = assess([w for _, w in waiting], now, self.dispatch_rate.rate(now), lead)
        self.at_risk = {r.id: r for r in risks}
        groups: dict[str, list[Risk]] = {}
        for r in risks:
            day = datetime.fromtimestamp(r.deadline, self.service.tz)
            groups.setdefault(f"deadline:{day:%Y-%m-%d}:{r.pack}", []).append(r)
        for key, rs in groups.items():
            due = min(r.deadline for r in rs)
            left = due - now
            if left > lead:
                continue  # not yet: a person is told at the lead time
            when = datetime.fromtimestamp(due, self.service.tz)
            passed = [r for r in rs if r.deadline <= now]
            why = rs[0].why
            head = (f"{len(passed)} letter(s) of pack {rs[0].pack} missed the {when:%H:%M} collection"
                    if passed else
                    f"{len(rs)} letter(s) of pack {rs[0].pack} will miss the {when:%H:%M} collection "
                    f"in {left / 60:.0f} min")
            self.alert("deadlines", f"{head} ({when:%Y-%m-%d}): {why}", key=key,
                       severity="critical" if left <= lead / 2 else "warning")
            self._deadline_alerts.add(key)
        for key in list(self._deadline_alerts - set(groups)):
            self._deadline_alerts.discard(key)
            self.clear_alert(key)
        return risks

    async def _deadline_watch(self) -> None:
        while True:
            self.check_deadlines()
            await asyncio.sleep(WATCH_INTERVAL)

    # --- views ---------------------------------------------------------------------------

    def deadline_detail(self, rec: dict) -> dict[str, Any]:
        """A letter's detail: its dispatch-by in local time and, if at risk, why."""
        due, out = self.deadline_of(rec), {}
        if due is not None:
            out["dispatch_by_local"] = datetime.fromtimestamp(due, self.service.tz).isoformat(timespec="minutes")
        risk = self.at_risk.get(rec["id"])
        if risk is not None:
            out["at_risk"] = risk.why
        if rec.get("deadline_missed"):
            out["at_risk"] = "missed its dispatch-by"
        return out

    def deadlines_view(self) -> dict[str, Any]:
        """The ``deadlines`` field of the status snapshot."""
        now = self.deadline_clock()
        svc = self.service
        today = datetime.fromtimestamp(now, svc.tz).date()
        day = today if svc.is_working_day(today) and svc.collection(today) > now else svc.next_working_day(today)
        rate = self.dispatch_rate.rate(now)
        return {"at_risk": len(self.at_risk), "missed_today": self.missed.day(today),
                "missed_total": self.missed.total(),
                "missed": {d: p for d, p in sorted(self.missed.counts.items())[-14:]},
                "next_cutoff": datetime.fromtimestamp(svc.collection(day), svc.tz).isoformat(timespec="minutes"),
                "rate_per_min": None if rate is None else round(rate, 2), "order": svc.order,
                "risks": [{"id": r.id, "pack": r.pack, "why": r.why,
                           "dispatch_by": datetime.fromtimestamp(r.deadline, svc.tz).isoformat(timespec="minutes")}
                          for r in list(self.at_risk.values())[:20]]}
