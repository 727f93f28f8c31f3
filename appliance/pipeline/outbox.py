"""The outbox sender: status updates leave through POST /letters, batched, in order.

Entries are made durable before they are sent (never report what we could forget) and
sent in store order (the client never puts two updates for one letter in one request).
A 202 only means "queued at Notify": the entry becomes *sent* and stays in the store until
``appliance.pipeline.prover`` reads the letter back and proves it applied.

An ACCEPTED carries a deadline (its letter's visibility window at Notify, less a margin):
one not answered 202 by then is never sent, and its letter is let go (another appliance
may have listed it since).  One whose request left but got no answer before the deadline
may or may not have reached Notify, and one answered after it may be applied after the
window ends: a person decides (``accept_expired(unsure=True)``).  So an ACCEPTED leaves
only while there is time left for its answer (``answer_within``), however long the rate
limiter made it wait, and a 429 ends a pass without backing off (the limiter paces).
Each request is one attempt; this loop does the retrying, so that every new attempt
checks the deadlines again.

A batch the API refuses (400/404/422) is split into single PATCHes so one bad update
cannot block the rest; a refused update is never taken for done (``Store.outbox_refuse``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Protocol

from appliance.api.client import ApiError, ApiUnavailable, NotFound, StatusUpdate, SupplierClient
from appliance.api.resources import chunk_updates
from appliance.core.errors import SendTooLate, StateError, UserError
from appliance.core.status import Status, reached
from appliance.store.committer import Committer
from appliance.store.store import Store

log = logging.getLogger(__name__)

REFUSED = (400, 404, 422)


class OutboxEvents(Protocol):
    """What the pipeline does when an update's fate is known."""

    async def accepted_sent(self, letter_id: str) -> None: ...
    async def accept_expired(self, letter_id: str, unsure: bool) -> None: ...
    def update_refused(self, letter_id: str, entry: dict[str, Any]) -> None: ...


def _update(e: dict[str, Any]) -> StatusUpdate:
    return StatusUpdate(e["letter_id"], e["status"], e.get("reason_code"), e.get("reason_text"))


def _deadlined(e: dict[str, Any]) -> bool:
    """An answer to a listing (ACCEPTED, or REJECTED at intake) due within its window."""
    return e.get("deadline") is not None


class _Again(Exception):
    """This pass stops and the next one starts as soon as the limiter allows: a 429, or a
    chunk whose ACCEPTED could no longer leave in time.  Later chunks may hold later
    updates of the same letters, so they must not go first."""


class OutboxSender:
    def __init__(self, store: Store, client: SupplierClient, committer: Committer, *,
                 batch_size: int, interval: float, alert: Callable[..., None], counters,
                 clear_alert: Callable[[str], object] = lambda key: None,
                 events: OutboxEvents, clock: Callable[[], float] = time.time,
                 answer_within: float = 0.0):
        """``answer_within``: seconds an answer may take; an ACCEPTED leaves only this long
        before its deadline or earlier, so its 202 can still come in time."""
        self.store = store
        self.client = client
        self.committer = committer
        self.batch_size = batch_size
        self.interval = interval
        self.alert = alert
        self.clear_alert = clear_alert
        self.counters = counters
        self.events = events
        self.clock = clock
        self.answer_within = answer_within
        # Each request is one attempt, so this loop retries on the client's own schedule.
        self._backoff_cap = max(getattr(client, "backoff_cap", 10.0), interval)
        self.api_ok = True
        self._wake = asyncio.Event()
        self._replays: list[int] = []  # seqs left unsent by the previous run

    def prepare_replay(self) -> None:
        """Note what the previous run left unsent (call before recovery adds more).

        Those updates may or may not have reached the API before the crash; ``run`` asks
        the API where each such letter stands before sending any of them.  ACCEPTEDs with
        a deadline are left to the deadline rule instead (see the module docstring)."""
        self._replays = [e["seq"] for e in self.store.outbox_unsent() if not _deadlined(e)]

    async def _reconcile_replays(self) -> None:
        pending = {e["seq"]: e for e in self.store.outbox_unsent()}
        entries = [pending[q] for q in self._replays if q in pending]
        letters = list(dict.fromkeys(e["letter_id"] for e in entries))
        for i in range(0, len(letters), 32):
            chunk = letters[i:i + 32]
            answers = await asyncio.gather(*(self._api_status(lid) for lid in chunk))
            at_api = dict(zip(chunk, answers))
            # The newest replayed update each letter's status at the API has reached is
            # proven, and every older update of that letter (sent or not) superseded: the
            # API's state no longer depends on them, so the prover must not weigh them.
            upto: dict[str, int] = {}
            for e in entries:
                shown = at_api.get(e["letter_id"])
                if shown and reached(shown, e["status"]):
                    upto[e["letter_id"]] = max(upto.get(e["letter_id"], 0), e["seq"])
                    self.counters["replays_already_at_api"] += 1
            for letter_id, seq in upto.items():
                self.store.outbox_proven(letter_id, at_api[letter_id], seq)
        self._replays = []
        await self.committer.durable()

    async def _api_status(self, letter_id: str) -> str | None:
        try:
            return (await self.client.get_letter(letter_id)).status
        except NotFound:
            return None

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        backoff = self.interval
        while self._replays:  # nothing leaves before we know what the API already has
            try:
                await self._reconcile_replays()
            except (ApiUnavailable, ApiError, UserError) as e:
                self.api_ok = False
                self.alert("api", f"cannot check replayed status updates yet: {e}", key="api:replay")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_cap)
        self.clear_alert("api:replay")
        backoff = self.interval
        while True:
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
                # lands as the wait ends (CPython gh-86296), and stop() would hang here.
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            await asyncio.sleep(self.interval)  # gather a batch
            await self._expire()
            pending = self.store.outbox_unsent(self.batch_size * 4)
            if not pending:
                continue
            await self.committer.durable()
            try:
                await self._send(pending)
                backoff = self.interval
                self.api_ok = True
                self.clear_alert("api:outbox")
            except _Again:  # the shared budget is full, or deadlines passed: go again
                self.counters["outbox_passes_cut"] += 1
                self._wake.set()
            except (ApiUnavailable, UserError) as e:  # incl. TokenError: auth refused or down
                self.api_ok = False
                self.alert("api", f"status updates queued ({len(pending)}+): {e}", key="api:outbox")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_cap)
                self._wake.set()

    async def _expire(self) -> None:
        """ACCEPTEDs whose deadline passed unanswered: never sent now (module docstring)."""
        now = self.clock()
        for e in self.store.outbox_unsent():
            if _deadlined(e) and now >= e["deadline"]:
                self.counters["accept_deadline_missed"] += 1
                try:
                    await self.events.accept_expired(e["letter_id"], unsure=bool(e.get("tried")))
                except StateError as err:  # a later update already left: it cannot be undone
                    log.error("outbox: %s; sending its %s anyway", err, e["status"])
                    self.store.outbox_undeadline(e["seq"])

    async def _send(self, pending: list[dict[str, Any]]) -> None:
        now = self.clock()
        pending = [e for e in pending if not (_deadlined(e) and now >= e["deadline"])]
        for chunk in chunk_updates(pending, self.batch_size, key=lambda e: e["letter_id"]):
            await self._send_chunk(chunk)

    async def _send_chunk(self, chunk: list[dict[str, Any]]) -> None:
        risky = [e["seq"] for e in chunk if _deadlined(e)]
        if risky:  # if no answer comes, these may have reached Notify: remember they left
            self.store.outbox_tried(risky)
            await self.committer.durable()
        # An ACCEPTED must leave before its deadline, however long the limiter made it wait.
        send_by = min((e["deadline"] - self.answer_within for e in chunk if _deadlined(e)), default=None)
        try:
            await self.client.post_letters([_update(e) for e in chunk], batch_size=len(chunk),
                                           retries=0, send_by=send_by)
            self.counters["outbox_requests"] += 1
        except SendTooLate as e:
            self.store.outbox_tried(risky, clear=True)  # nothing left: the next pass expires them
            self.counters["accept_too_late"] += 1
            raise _Again() from e
        except ApiError as e:
            self.store.outbox_tried(risky, clear=True)  # answered: it did not reach the queue
            if e.status == 429:  # the limiter has slowed down and waits out Retry-After
                raise _Again() from e
            if e.status not in REFUSED:
                raise ApiUnavailable(str(e)) from e
            await self._send_one_by_one(chunk)
            return
        await self._sent(chunk)

    async def _sent(self, entries: list[dict[str, Any]]) -> None:
        answered = self.clock()
        for e in self.store.outbox_sent([e["seq"] for e in entries]):
            if e["status"] != Status.ACCEPTED:
                continue
            if _deadlined(e) and answered > e["deadline"]:
                # Notify has it, but answered after the deadline: it may apply after the
                # window ends and another floor lists the letter.  Not printed unasked.
                self.counters["accept_answered_late"] += 1
                await self.events.accept_expired(e["letter_id"], unsure=True)
            else:
                await self.events.accepted_sent(e["letter_id"])
        await self.committer.durable()

    async def _send_one_by_one(self, chunk: list[dict[str, Any]]) -> None:
        held: set[str] = set()  # letters with an update left behind in this pass
        for e in chunk:
            if e["letter_id"] in held or e["letter_id"] in self.store.refused_letters():
                continue  # an earlier update of this letter did not go: this one waits
            if _deadlined(e):
                self.store.outbox_tried([e["seq"]])
                await self.committer.durable()
            try:
                await self.client.patch_letter(e["letter_id"], e["status"], e.get("reason_code"),
                                               e.get("reason_text"), retries=0,
                                               send_by=e["deadline"] - self.answer_within
                                               if _deadlined(e) else None)
                self.counters["outbox_requests"] += 1
            except SendTooLate:
                self.store.outbox_tried([e["seq"]], clear=True)
                self.counters["accept_too_late"] += 1
                held.add(e["letter_id"])
                continue
            except ApiError as err:
                self.store.outbox_tried([e["seq"]], clear=True)
                if err.status == 429:
                    raise _Again() from err
                if err.status not in REFUSED:
                    raise ApiUnavailable(str(err)) from err
                refused = self.store.outbox_refuse(e["seq"], err.status, err.detail)
                self.counters["refused_updates"] += 1
                if refused is not None:
                    self.events.update_refused(e["letter_id"], refused)
                await self.committer.durable()
                continue
            await self._sent([e])
