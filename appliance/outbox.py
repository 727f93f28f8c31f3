"""The outbox sender: status updates leave through POST /letters, batched, in order.

Entries are made durable before they are sent (never report what we could forget), sent
in store order (the client never puts two updates for one letter in one request), and
acknowledged in the store only after the API answered.  A batch the API refuses is split
into single PATCHes so one bad update cannot block the rest.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from .api import ApiError, ApiUnavailable, StatusUpdate, SupplierClient
from .committer import Committer
from .store import Store

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

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        backoff = self.interval
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            except asyncio.TimeoutError:
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
            except ApiUnavailable as e:
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
