"""The pipeline's intake side: polling the API for letters, and what intake's workers
report back (``appliance.intake.stage.IntakeSink``).

A mixin of ``Pipeline`` (``appliance.pipeline.pipeline``): it works on the pipeline's
store, client, intake, committer, counters and alerts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from appliance.api.client import ApiError, ApiUnavailable
from appliance.api.limits import is_safe_id
from appliance.core.errors import UserError
from appliance.core.routing import capable
from appliance.core.status import REJECT_REASONS, Status, is_final
from appliance.core.verify import PdfFacts, Verdict


class IntakeSide:
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
        await self.route(letter_id)

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

    async def respool(self, letter_id: str) -> None:
        """Fetch again a letter already ACCEPTED whose spooled PDF is gone (through intake,
        like any other letter: the worker checks it; ``intake_verified`` routes it on)."""
        self.store.update(letter_id, stage="new", event="respool", pdf=None)
        self.intake.take(letter_id)

    def _reject(self, letter_id: str, code: str, text: str) -> None:
        self.counters["rejected"] += 1
        self._set_status(letter_id, Status.REJECTED, code, text or REJECT_REASONS.get(code), event="rejected")
        self.finish(letter_id)
