"""The outbox sender: status updates leave through POST /letters, batched, in order.

Entries are made durable before they are sent (never report what we could forget), sent
in store order (the client never puts two updates for one letter in one request), and
acknowledged in the store only after the API answered.  A batch the API refuses is split
into single PATCHes so one bad update cannot block the rest.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from appliance.api.client import ApiError, ApiUnavailable, NotFound, StatusUpdate, SupplierClient
from appliance.core.errors import UserError
from appliance.core.status import reached
from appliance.store.committer import Committer
from appliance.store.store import Store

REFUSED = (400, 404, 422)


class OutboxSender:
    def __init__(self, store: Store, client: SupplierClient, committer: Committer, *,
                 batch_size: int, interval: float, alert: Callable[..., None], counters):
        self.store = store
        self.client = client
        self.committer = committer
        self.batch_size = batch_size
        self.interval = interval
        self.alert = alert
        self.counters = counters
        self.api_ok = True
        self._wake = asyncio.Event()
        self._replays: list[int] = []  # seqs left unacknowledged by the previous run

    def prepare_replay(self) -> None:
        """Note what the previous run left unacknowledged (call before recovery adds more).

        Those updates may or may not have reached the API before the crash; ``run`` asks
        the API where each such letter stands before sending any of them."""
        self._replays = [e["seq"] for e in self.store.outbox_pending()]

    async def _reconcile_replays(self) -> None:
        pending = {e["seq"]: e for e in self.store.outbox_pending()}
        entries = [pending[q] for q in self._replays if q in pending]
        letters = list(dict.fromkeys(e["letter_id"] for e in entries))
        for i in range(0, len(letters), 32):
            chunk = letters[i:i + 32]
            answers = await asyncio.gather(*(self._api_status(lid) for lid in chunk))
            at_api = dict(zip(chunk, answers))
            drop = [e["seq"] for e in entries
                    if at_api.get(e["letter_id"]) and reached(at_api[e["letter_id"]], e["status"])]
            if drop:
                self.store.outbox_ack(drop)
                self.counters["replays_already_at_api"] += len(drop)
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
                self.alert("api", f"cannot check replayed status updates yet: {e}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
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
            pending = self.store.outbox_pending(self.batch_size * 4)
            if not pending:
                continue
            await self.committer.durable()
            try:
                await self._send(pending)
                backoff = self.interval
                self.api_ok = True
            except (ApiUnavailable, UserError) as e:  # incl. TokenError: auth refused or down
                self.api_ok = False
                self.alert("api", f"status updates queued ({len(pending)}+): {e}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                self._wake.set()

    async def _send(self, pending: list[dict[str, Any]]) -> None:
        updates = [StatusUpdate(e["letter_id"], e["status"], e.get("reason_code"), e.get("reason_text"))
                   for e in pending]
        try:
            self.counters["outbox_requests"] += await self.client.post_letters(
                updates, batch_size=self.batch_size)
            self.store.outbox_ack([e["seq"] for e in pending])
        except ApiError as e:
            if e.status not in REFUSED:
                raise ApiUnavailable(str(e)) from e
            await self._send_one_by_one(pending)
        await self.committer.durable()

    async def _send_one_by_one(self, pending: list[dict[str, Any]]) -> None:
        for e in pending:
            try:
                await self.client.patch_letter(e["letter_id"], e["status"], e.get("reason_code"),
                                               e.get("reason_text"))
            except ApiError as err:
                if err.status not in REFUSED:
                    raise ApiUnavailable(str(err)) from err
                self.alert("api", f"API refused {e['status']}: {err}", e["letter_id"])
                self.counters["refused_updates"] += 1
            self.store.outbox_ack([e["seq"]])
