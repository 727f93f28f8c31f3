"""What a person on the floor can ask of the running pipeline.

Each action checks what the status model allows, records the request in the letter's
timeline, and raises ``ActionRefused`` (one line) when it cannot be done.  The control
socket and the CLI call these; nothing here talks to devices except through drivers.
"""

from __future__ import annotations

from pathlib import Path

from appliance.core.errors import ActionRefused
from appliance.core.returns import Row, apply_rows
from appliance.core.status import Status, TransitionError, return_reason


def _holds(inserter: str, ids: list[str] | None) -> str:
    if ids is None:
        return f"{inserter} takes any envelope (no list in the profile)"
    return f"{inserter} holds {', '.join(ids) or 'no envelopes'}"


class Operator:
    def __init__(self, pipeline):
        self.p = pipeline

    # --- devices ---------------------------------------------------------------------

    def _driver(self, name: str):
        drv = self.p.devices.get(name)
        if drv is None:
            raise ActionRefused(f"no device named {name!r}; see 'appliance status' for the fleet")
        return drv

    async def pause(self, name: str) -> str:
        await self._driver(name).pause()
        self.p.device_state[name] = "paused"
        self.p.publish("device", {"name": name, "state": "paused"})
        return f"{name} paused"

    async def resume(self, name: str) -> str:
        await self._driver(name).resume()
        self.p.device_state[name] = "idle"
        self.p.publish("device", {"name": name, "state": "idle"})
        await self.p.retry_held()
        await self.p.retry_waiting()
        return f"{name} resumed"

    async def drain(self, name: str) -> str:
        """Finish what the device has, give it nothing new."""
        self._driver(name)
        self.p.device_state[name] = "draining"
        self.p.publish("device", {"name": name, "state": "draining"})
        return f"{name} draining: no new work until resumed"

    async def envelopes(self, inserter: str, action: str = "list", envelope: str = "",
                        who: str = "operator") -> dict:
        """List, load (``add``) or unload (``remove``) an envelope id at an inserter: kept in
        the state folder, logged, shown in the consoles' log; letters held for a loaded
        envelope are printed now, and a letter whose envelope was unloaded waits."""
        stock = self.p.envelope_stock
        if action == "list":
            return {"inserter": inserter, "envelopes": stock.listing(inserter),
                    "message": _holds(inserter, stock.listing(inserter))}
        line = stock.change(inserter, action, envelope, who)
        self.p.publish("device", {"name": inserter, "state": self.p.device_state.get(inserter),
                                  "detail": f"envelope {envelope.strip()} "
                                            f"{'loaded' if action == 'add' else 'unloaded'} by {who[:80]}"})
        if action == "add":
            await self.p.retry_held()
            await self.p.retry_waiting()
        self.p.refresh_envelope_alerts()
        await self.p.committer.durable()
        return {"inserter": inserter, "envelopes": stock.listing(inserter), "message": line}

    # --- alerts ----------------------------------------------------------------------

    async def ack(self, key: str, who: str) -> str:
        """A person has seen to an alert: close it, with who and when in the letter's
        timeline (if it has a letter) and in the acknowledgement journal."""
        who = (who or "").strip()
        if not who:
            raise ActionRefused("say who acknowledges it: --who NAME (kept in the audit)")
        a = self.p.acknowledge(key, who[:80])
        if a is None:
            raise ActionRefused(f"no open alert {key!r}; list them with 'appliance alerts'")
        await self.p.committer.durable()
        return f"alert {key} acknowledged by {who[:80]}"

    # --- letters ---------------------------------------------------------------------

    def _letter(self, letter_id: str) -> dict:
        rec = self.p.store.get(letter_id)
        if rec is None:
            raise ActionRefused(f"letter {letter_id} is not known to this appliance; check the id")
        return rec

    def _status(self, letter_id: str, status: str, code: str | None, text: str | None, event: str) -> None:
        try:
            self.p.store.set_status(letter_id, status, code, text, event=event)
        except TransitionError as e:
            raise ActionRefused(f"letter {letter_id}: {e}") from None
        self.p.outbox.wake()
        self.p.publish("letter", self.p.letter_brief(letter_id))

    async def reprint(self, letter_id: str) -> str:
        rec = self._letter(letter_id)
        if rec["status"] not in (Status.ACCEPTED, Status.PRINTED):
            raise ActionRefused(
                f"letter {letter_id} is {rec['status']}: only ACCEPTED or PRINTED letters can be reprinted")
        await self._take_back(rec)  # the job this reprint replaces must not print too
        self.p.store.update(letter_id, stage="verified", event="reprint requested", printer=None, device=None)
        self.p.tried.pop(letter_id, None)
        if not rec.get("pdf") or not Path(rec["pdf"]).exists():
            await self.p.respool(letter_id)
        else:
            await self.p.route_any(letter_id)
        await self.p.committer.durable()
        return f"letter {letter_id} queued for reprint"

    async def _take_back(self, rec: dict) -> None:
        """Before a reprint: the job it replaces is taken back from its device when the
        device can (its load given back); else it finishes there and its news is stale."""
        device = rec.get("device") if rec.get("stage") in ("printing", "enclosing", "franking") else None
        drv = self.p.devices.get(device) if device else None
        if drv is None:
            return
        letter_id = rec["id"]
        if self.p.drop_handover(device, letter_id):
            return
        if self.p.pending_handover(device, letter_id):
            return  # being handed over now: the dispatch loop sees the new run and takes it back
        why_not = await drv.withdraw(letter_id)
        if why_not is None:
            self.p.load[device] = max(0, self.p.load[device] - 1)
            self.p.store.update(letter_id, event=f"withdrawn from {device} for the reprint")
        else:
            self.p.store.update(letter_id, event=f"not withdrawn from {device}: {why_not}")

    async def retry(self, letter_id: str) -> str:
        """Try again what is waiting for a person: a fetch intake gave up on, an update
        Notify refused, or an ACCEPTED whose answer never came (print it here)."""
        rec = self._letter(letter_id)
        if letter_id in self.p.store.refused_letters():
            status = self.p.store.resolve_refused(letter_id, "retry")
            self.p.clear_alert(f"letter:{letter_id}:refused")
            self.p.outbox.wake()
            await self._done(letter_id)
            return f"letter {letter_id}: {status} will be sent to Notify again"
        if rec["stage"] == "accept-unsure":
            self.p.store.outbox_resend(letter_id, "operator: print it here")
            self.p.store.update(letter_id, stage="verified", event="operator: print it here")
            self.p.clear_alert(f"letter:{letter_id}:accept-unsure")
            self.p.outbox.wake()
            await self.p.route(letter_id)
            await self._done(letter_id)
            return f"letter {letter_id} ACCEPTED again and queued for printing here"
        if rec["stage"] != "intake-hold":
            raise ActionRefused(f"letter {letter_id} has nothing to retry (stage {rec['stage']}); "
                                "retry is for letters held at intake, updates refused by Notify "
                                "and ACCEPTEDs left unanswered")
        now = self.p.retry_intake(letter_id)
        await self._done(letter_id)
        if now:
            return f"letter {letter_id} will be fetched again"
        return f"letter {letter_id} will be fetched when Notify lists it again"

    async def handled(self, letter_id: str, note: str) -> str:
        """A person dealt with it at Notify: drop a refused update (later ones then leave),
        or let an unanswered-ACCEPTED letter go (another floor has it)."""
        rec = self._letter(letter_id)
        note = (note or "").strip()
        if not note:
            raise ActionRefused("say what was done: --note TEXT (kept in the letter's timeline)")
        if letter_id in self.p.store.refused_letters():
            status = self.p.store.resolve_refused(letter_id, "handled", note)
            self.p.clear_alert(f"letter:{letter_id}:refused")
            if self.p.store.get(letter_id)["stage"] == "accepting":  # its ACCEPTED never took
                self.p.let_go(letter_id, f"refused ACCEPTED handled by operator: {note}")
            self.p.outbox.wake()
            await self._done(letter_id)
            return f"letter {letter_id}: refused {status} marked handled"
        if rec["stage"] == "accept-unsure":
            self.p.let_go(letter_id, f"operator: {note}")
            self.p.clear_alert(f"letter:{letter_id}:accept-unsure")
            await self._done(letter_id)
            return f"letter {letter_id} let go (not printed here)"
        raise ActionRefused(f"letter {letter_id} has nothing to mark handled (stage {rec['stage']}); "
                            "handled is for updates refused by Notify and unanswered ACCEPTEDs")

    async def _done(self, letter_id: str) -> None:
        self.p.publish("letter", self.p.letter_brief(letter_id))
        await self.p.committer.durable()

    async def cancel(self, letter_id: str, reason: str = "Cancelled by operator") -> str:
        rec = self._letter(letter_id)
        if rec["status"] not in (Status.PENDING, Status.ACCEPTED, Status.PRINTED):
            raise ActionRefused(f"letter {letter_id} is {rec['status']}: it can no longer be cancelled")
        self._status(letter_id, Status.CANCELLED, "OPERATOR_CANCELLED", reason, "cancelled by operator")
        self.p.finish(letter_id)
        await self.p.committer.durable()
        device = rec.get("device") if rec.get("stage") in ("printing", "enclosing", "franking") else None
        drv = self.p.devices.get(device) if device else None
        if drv is None:
            return f"letter {letter_id} CANCELLED"
        if self.p.pending_handover(device, letter_id):  # the dispatch loop drops it, load and all
            return f"letter {letter_id} CANCELLED before it reached {device}"
        why_not = await drv.withdraw(letter_id)
        if why_not is None:
            self.p.load[device] = max(0, self.p.load[device] - 1)
            self.p.store.update(letter_id, event=f"withdrawn from {device}")
            await self.p.drain_backlog()
            return f"letter {letter_id} CANCELLED and withdrawn from {device}"
        # Still at the device: say where, so a person can pull it.
        self.p.store.update(letter_id, event=f"not withdrawn from {device}: {why_not}")
        return f"letter {letter_id} CANCELLED; still at {device} ({why_not}): pull it by hand"

    async def fail(self, letter_id: str, reason: str | None = None, code: str | None = None) -> str:
        """FAILED by a person.  With ``[failure_reasons]`` in the profile the code must be
        one of the agreed ones (its text is the default reason); without, any reason text."""
        self._letter(letter_id)
        code, reason = self._agreed(code, reason)
        if not reason:
            raise ActionRefused("a reason is needed to mark a letter FAILED")
        return await self._fail(letter_id, reason, code or "OPERATOR_FAILED")

    def _agreed(self, code: str | None, reason: str | None) -> tuple[str | None, str | None]:
        """The one rule for every way a person marks a letter FAILED (``fail``, a hold's
        ``resolve ... fail``, ``bulk_status``): when the profile lists agreed codes, one of
        them is needed (matched case-blind; its text is the default reason)."""
        agreed = getattr(self.p.profile, "failure_reasons", {}) or {}
        code = code.strip() if isinstance(code, str) and code.strip() else None
        if agreed:
            if code is None or code.upper() not in {c.upper() for c in agreed}:
                got = f"{code!r} is not an agreed code" if code else "a reason code is needed"
                # No square brackets: the console's markup would eat them.
                raise ActionRefused(f"FAILED: {got}; use one of {', '.join(agreed)} "
                                    "(the profile's failure_reasons table)")
            code = next(c for c in agreed if c.upper() == code.upper())
            return code, reason or agreed[code]
        if code is not None:
            raise ActionRefused("this floor's profile has no failure_reasons table; give a reason text only")
        return None, reason

    async def _fail(self, letter_id: str, reason: str, code: str) -> str:
        self._status(letter_id, Status.FAILED, code, reason, "failed by operator")
        self.p.finish(letter_id)
        await self.p.committer.durable()
        return f"letter {letter_id} FAILED {code} ({reason})"

    async def bulk(self, rows: list[Row]) -> list[dict]:
        """RETURNED / DELIVERED / FORWARDED for many letters (archived ones too), one
        durable commit for the lot; one result per row."""
        results = apply_rows(self.p.store, rows)
        if any(r["ok"] for r in results):
            self.p.outbox.wake()
            for r in results:
                if r["ok"]:
                    self.p.publish("letter", self.p.letter_brief(r["letter_id"]))
            await self.p.committer.durable()
        return results

    async def returned(self, letter_id: str, reason_code: str) -> str:
        try:
            code, text = return_reason(reason_code)
        except TransitionError as e:
            raise ActionRefused(str(e)) from None
        self._letter(letter_id)
        self._status(letter_id, Status.RETURNED, code, text, "returned")
        await self.p.committer.durable()
        return f"letter {letter_id} RETURNED {code} {text}"

    async def resolve(self, letter_id: str, outcome: str, code: str | None = None) -> str:
        """Settle a piece on operator hold: enclosed | dispatched | reprint | fail (lost or
        spoiled; ``code`` as for ``fail``: the rule is the same whichever way it comes)."""
        rec = self._letter(letter_id)
        if rec["stage"] != "operator-hold":
            raise ActionRefused(f"letter {letter_id} is not on hold (stage {rec['stage']})")
        outcome = "fail" if outcome == "failed" else outcome
        if outcome not in ("reprint", "fail", "enclosed", "dispatched"):
            raise ActionRefused(f"unknown outcome {outcome!r}: use enclosed, dispatched, reprint or fail")
        if outcome == "fail":
            code, reason = self._agreed(code, None)
            reason = reason or rec.get("hold_reason") or "piece lost on the line"
        elif code is not None:
            raise ActionRefused(f"a reason code goes with fail only, not with {outcome}")
        self.p.clear_alert(f"letter:{letter_id}:hold")  # a person settled it
        if outcome == "reprint":
            self.p.store.update(letter_id, stage="printing", device=None)
            return await self.reprint(letter_id)
        if outcome == "fail":
            return await self._fail(letter_id, reason, code or "OPERATOR_FAILED")
        if outcome == "enclosed":
            self._status(letter_id, Status.ENCLOSED, None, None, "operator confirmed enclosed")
            await self.p.hand_on_or_stop(letter_id, "franker", "franking")
            return f"letter {letter_id} ENCLOSED (operator)"
        self._status(letter_id, Status.DISPATCHED, None, None, "operator confirmed dispatched")
        self.p.finish(letter_id)
        return f"letter {letter_id} DISPATCHED (operator)"
