"""The pipeline's intake side: polling the API for letters, and what intake's workers
report back (``appliance.intake.stage.IntakeSink``).

A mixin of ``Pipeline`` (``appliance.pipeline.pipeline``): it works on the pipeline's
store, client, intake, committer, counters and alerts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from appliance.api.client import ApiError, ApiUnavailable
from appliance.api.limits import is_safe_id
from appliance.core.errors import UserError
from appliance.core.mailpiece import mailpiece, over_bound
from appliance.core.routing import capable
from appliance.core.status import REJECT_REASONS, Status, is_final
from appliance.core.verify import PdfFacts, Verdict, coverage_summary

log = logging.getLogger("appliance.pipeline.intake")


#: Stages of letters that are listed but not (yet) this appliance's to print: a
#: re-listing of one of these is no news (see ``_relisted``).
NOT_TAKEN = frozenset({"intake-hold", "accept-unsure"})


class IntakeSide:
    def _room(self) -> int:
        """Letters the poll may take now: in flight, not counting those only waiting to be
        fetched again or held at intake (they use no printer, and must not stop intake)."""
        waiting = self.intake.waiting_retry
        if waiting >= self.s.max_waiting_retry:
            return 0
        held = self.store.stage_count("intake-hold")
        return self.s.max_in_flight - (self.store.in_flight_count() - waiting - held)

    @property
    def accept_window(self) -> float:
        """Seconds from a listing until its letters' ACCEPTED must be answered 202."""
        return self.s.visibility_timeout - self.s.accept_margin

    def _listing_limit(self) -> int:
        in_window = self.store.stage_count("new") + self.store.stage_count("accepting")
        return self.listing_window.limit(self._room(), self.s.limit, in_window)

    async def _poll_loop(self) -> None:
        while True:
            limit = self._listing_limit()
            full_page = False
            if limit > 0:
                asked_at = time.time()  # Notify's window for these letters starts later
                try:
                    refs = await self.client.list_letters(limit=limit)
                    self.api_ok = True
                    self.clear_alert("api:list")
                except (ApiUnavailable, ApiError, UserError) as e:  # UserError: auth (TokenError)
                    self.api_ok = False
                    self.alert("api", f"cannot list letters: {e}", key="api:list")
                    await asyncio.sleep(self.s.poll_interval)
                    continue
                self.counters["polls"] += 1
                new = [lid for ref in refs if (lid := self._listed(ref, asked_at))]
                self.counters["listed"] += len(new)
                self.last_poll_empty = not new and not refs
                if new:
                    await self.committer.durable()
                    for lid in new:
                        self.intake.take(lid)
                # More may wait beyond a full page: ask again at once if this one helped.
                full_page = len(refs) >= limit and bool(new)
            if limit <= 0:
                await asyncio.sleep(min(self.s.poll_interval, 0.2))  # room frees as letters finish
            elif not full_page:
                await asyncio.sleep(self.s.poll_interval)

    def _listed(self, ref, asked_at: float) -> str | None:
        """Take one listed letter; its id if it is new work for intake."""
        if not is_safe_id(ref.id):
            self.counters["hostile_ids"] += 1
            self.alert("intake", f"ignored letter with unsafe id {ref.id[:40]!r}", key="intake:unsafe-id")
            return None
        if self.store.add_letter(ref.id, ref.specification_id, ref.group_id, ref.sha256,
                                 listed_at=asked_at):
            self.stamp_deadline(ref.id, ref.specification_id)  # dispatch-by, from its arrival
            return ref.id
        rec = self.store.get(ref.id)
        if rec["stage"] == "let-go":  # ours again for a new window
            self.store.retake(ref.id, asked_at)
            self.counters["retaken"] += 1
            return ref.id
        self._relisted(rec, asked_at)
        return None

    def _relisted(self, rec: dict, asked_at: float) -> None:
        """Notify listed a letter this appliance already has.  Within the letter's own
        window that means Notify's visibility timeout is shorter than configured; after
        it, for a letter this appliance ACCEPTED, it proves the ACCEPTED was lost (Notify
        lists only PENDING letters): send its statuses again, now, while the listing
        hides it from everyone else."""
        letter_id = rec["id"]
        if asked_at < (rec.get("listed_at") or 0) + self.s.visibility_timeout - 1.0:
            self.counters["listed_while_hidden"] += 1
            if self.counters["listed_while_hidden"] == 1:
                self.alert("api", "Notify listed a letter again within [poll] visibility_timeout "
                                  f"({self.s.visibility_timeout:.0f} s); set it to the server's "
                                  "visibility timeout", key="api:visibility-timeout")
            return
        self.store.update(letter_id, listed_at=round(asked_at, 3))
        if rec["status"] == Status.PENDING or rec["stage"] in NOT_TAKEN:
            self.counters["listed_not_taken"] += 1  # it goes back at Notify's timeout
            return
        if letter_id in self.store.refused_letters():
            return  # a person is on it
        if any(e.get("sent") or e.get("tried") for e in self.store.outbox_of(letter_id)
               if e["status"] != Status.ACCEPTED):
            # A later update left too and may still be on Notify's queue: sending the
            # ACCEPTED again now could land after it (backwards).  The prover reads the
            # letter back and decides; this listing hides it from others meanwhile.
            self.counters["relisted_in_flight"] += 1
            return
        self.counters["accepted_lost"] += 1
        self.store.outbox_resend(letter_id, "listed again by Notify: the ACCEPTED did not take")
        self.alert("api", "Notify listed this letter again: its ACCEPTED was lost at Notify; "
                          "sent again", letter_id, key=f"letter:{letter_id}:resent", severity="info")
        self.outbox.wake()

    def let_go(self, letter_id: str, why: str, late: bool = False) -> None:
        """Give a letter back to Notify's queue (``Store.let_go``): counted and logged.
        ``late``: it missed its window, so listings shrink (``core.pacing``)."""
        if late:
            self.listing_window.missed(time.time(), hold=self.accept_window)
        rec = self.store.get(letter_id)
        for pdf in (rec.get("pdf"), rec.get("marked_pdf")) if rec else ():
            if pdf:
                Path(pdf).unlink(missing_ok=True)
        self.store.let_go(letter_id, why)
        self.counters["let_go"] += 1
        log.info("letter %s let go: %s", letter_id, why, extra={"letter_id": letter_id, "stage": "let-go"})
        self.publish("letter", self.letter_brief(letter_id))

    async def _window_loop(self) -> None:
        """Let go every letter whose ACCEPTED can no longer be answered in its window:
        still at intake (fetch retries, slow downloads) past its deadline."""
        period = min(max(self.accept_window / 20, 0.1), 5.0)
        while True:
            await asyncio.sleep(period)
            cutoff = time.time() - self.accept_window
            late = [r["id"] for r in self.store.letters(stage="new")
                    if r["status"] == Status.PENDING and (r.get("listed_at") or 0) < cutoff]
            for letter_id in late:
                self.let_go(letter_id, "not through intake within the listing's visibility window", late=True)
            if late:
                self.alert("intake", f"{len(late)} letter(s) not fetched and checked within "
                                     f"{self.accept_window:.0f} s of listing: let go back to Notify "
                                     "(they are listed again later)", key="intake:late")
                await self.committer.durable()
            else:
                a = self.alerts.get("intake:late")
                if a is not None and time.time() - a.last_seen > self.accept_window:
                    self.clear_alert("intake:late")  # a whole window with none late: intake keeps up
            self.counters["let_go_forgotten"] += self.store.forget_let_go(time.time() - self.s.let_go_keep)

    async def intake_verified(self, letter_id: str, pdf: Path, verdict: Verdict, facts: PdfFacts) -> None:
        self.clear_alert(f"letter:{letter_id}:intake")  # its fetch retries are over
        rec = self.store.get(letter_id)
        if rec is None or rec["stage"] != "new":
            pdf.unlink(missing_ok=True)
            return
        pack = self.packs[rec["specification_id"]]
        if rec["status"] != Status.PENDING:  # fetched again for a letter already ACCEPTED
            self.store.update(letter_id, event="respooled", stage="verified", pdf=str(pdf))
            await self.route_any(letter_id)
            return
        deadline = (rec.get("listed_at") or 0) + self.accept_window
        if time.time() >= deadline:
            pdf.unlink(missing_ok=True)
            self.let_go(letter_id, "checked too late to ACCEPT within the listing's window", late=True)
            await self.committer.durable()
            return
        if self.profile.on_no_printer == "reject" and not capable(self._printer_views(), pack,
                                                                  self.profile.print_features):
            # Known before accepting: say REJECTED now rather than FAILED after ACCEPTED.
            pdf.unlink(missing_ok=True)
            self._reject(letter_id, "NO_CAPABLE_PRINTER", f"no printer on this floor can print pack {pack.id}",
                         deadline=deadline)
            await self.committer.durable()
            return
        # The mailpiece against its postage's bounds (appliance.core.mailpiece), before ACCEPTED.
        piece = mailpiece(pack, verdict.sheets or 0, self.profile.materials)
        over = over_bound(pack, piece)
        if over:
            pdf.unlink(missing_ok=True)
            self._reject(letter_id, over[0], over[1], deadline=deadline)
            await self.committer.durable()
            return
        # Printed only once Notify has queued the ACCEPTED within the window (accepted_sent).
        self.store.update(letter_id, event="verified", stage="accepting", pdf=str(pdf),
                          pages=verdict.pages, sheets=verdict.sheets, intake_retry_at=None,
                          weight_g=piece.weight_g, thickness_mm=piece.thickness_mm, **coverage_summary(facts))
        self._set_status(letter_id, Status.ACCEPTED, event="verified", deadline=deadline)

    # --- what the outbox reports (appliance.pipeline.outbox.OutboxEvents) -----------------

    async def accepted_sent(self, letter_id: str) -> None:
        """Notify queued the ACCEPTED in time: the letter is this appliance's to print."""
        rec = self.store.get(letter_id)
        if rec is not None and rec["stage"] == "accepting":
            self.listing_window.taken()  # what listings are sized by: taken in time
            self.store.update(letter_id, stage="verified")
            await self.route(letter_id)

    async def accept_expired(self, letter_id: str, unsure: bool) -> None:
        if not unsure:
            self.let_go(letter_id, "ACCEPTED not answered within the listing's visibility window",
                        late=True)
            return
        self.listing_window.missed(time.time(), hold=self.accept_window)
        self.store.withdraw_unsure(letter_id)
        self.alert("api", "the ACCEPTED for this letter left but got no answer before its "
                          "deadline: Notify may or may not have it.  If no other floor prints it, "
                          f"print it here with 'appliance retry {letter_id}'; if one does, "
                          f"'appliance handled {letter_id} --note ...'", letter_id,
                   key=f"letter:{letter_id}:accept-unsure", severity="critical")
        self.publish("letter", self.letter_brief(letter_id))

    def update_refused(self, letter_id: str, entry: dict) -> None:
        why = entry.get("refused") or {}
        self.alert("api", f"Notify refused {entry['status']} ({why.get('status')}: "
                          f"{str(why.get('detail'))[:200]}); resolve it: 'appliance retry {letter_id}' "
                          f"sends it again, 'appliance handled {letter_id} --note TEXT' when dealt with "
                          "at Notify", letter_id, key=f"letter:{letter_id}:refused", severity="critical")
        self.publish("letter", self.letter_brief(letter_id))

    async def intake_rejected(self, letter_id: str, code: str, text: str) -> None:
        rec = self.store.get(letter_id)
        if rec is None or is_final(rec["status"]):
            return
        if rec["status"] == Status.PENDING:
            deadline = (rec.get("listed_at") or 0) + self.accept_window
            if time.time() >= deadline:  # another appliance may have it now: it decides
                self.let_go(letter_id, f"found {code} too late to report within the listing's window", late=True)
            else:
                self.listing_window.taken()
                self._reject(letter_id, code, text, deadline=deadline)
        else:  # a respool of an ACCEPTED letter whose PDF is no longer the one we checked
            self._set_status(letter_id, Status.FAILED, code, text, event="respool")
            self.finish(letter_id)
        await self.committer.durable()

    async def intake_held(self, letter_id: str, why: str) -> None:
        """Intake gave up for now: a person decides (the letter stays PENDING at Notify)."""
        self.store.update(letter_id, stage="intake-hold", event="intake-hold", hold_reason=why)
        self.alert("intake", f"letter held: {why}; retry it from the console or "
                             f"'appliance retry {letter_id}'", letter_id,
                   key=f"letter:{letter_id}:intake-hold", severity="critical")
        await self.committer.durable()

    def retry_intake(self, letter_id: str) -> bool:
        """An operator asks for another try of a letter held at intake: now if its listing
        window is still open, else when Notify lists it again (True: fetching now)."""
        self.clear_alert(f"letter:{letter_id}:intake-hold")
        rec = self.store.update(letter_id, stage="new", event="intake retry requested",
                                hold_reason=None, intake_attempts=0, intake_first_fault=None,
                                intake_retry_at=None, intake_deaths=0)
        if time.time() < (rec.get("listed_at") or 0) + self.accept_window:
            self.intake.take(letter_id)
            return True
        self.let_go(letter_id, "operator retry: taken again when Notify lists it again")
        return False

    async def respool(self, letter_id: str) -> None:
        """Fetch again a letter already ACCEPTED whose spooled PDF is gone (through intake,
        like any other letter: the worker checks it; ``intake_verified`` routes it on)."""
        self.store.update(letter_id, stage="new", event="respool", pdf=None)
        self.intake.take(letter_id)

    def _reject(self, letter_id: str, code: str, text: str, deadline: float | None = None) -> None:
        self.counters["rejected"] += 1
        self._set_status(letter_id, Status.REJECTED, code, text or REJECT_REASONS.get(code),
                         event="rejected", deadline=deadline)
        self.finish(letter_id)
