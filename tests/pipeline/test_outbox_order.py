"""The outbox never lets a letter's later update overtake an earlier one: not when a
chunk is cut short because an ACCEPTED in it could no longer leave in time, not on a 429.
(The two-floor run once sent a DISPATCHED before its ENCLOSED that way.)"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from appliance.core.errors import ApiError, SendTooLate
from appliance.pipeline.outbox import OutboxSender
from appliance.store.committer import Committer
from appliance.store.store import Store


class Events:
    async def accepted_sent(self, letter_id):
        pass

    async def accept_expired(self, letter_id, unsure):
        pass

    def update_refused(self, letter_id, entry):
        pass


class Client:
    """Records what was sent; the first request fails with ``first``."""

    def __init__(self, first: Exception):
        self.first = first
        self.sent: list[tuple[str, str]] = []
        self.calls = 0

    async def post_letters(self, updates, *, batch_size, retries=None, send_by=None):
        self.calls += 1
        if self.calls == 1:
            raise self.first
        self.sent += [(u.letter_id, u.status) for u in updates]
        return 1

    async def patch_letter(self, *a, **k):
        raise AssertionError("not expected")


@pytest.mark.parametrize("first", [SendTooLate("too late"), ApiError(429, "slow down")],
                         ids=["accepted-too-late", "429"])
async def test_a_cut_pass_sends_nothing_out_of_order(tmp_path, first):
    store = Store(tmp_path)
    now = 1_900_000_000.0
    # B moves fast (two updates: two chunks); A's ACCEPTED shares B's first chunk
    for lid in ("A", "B"):
        store.add_letter(lid, "notify-c5", "g", "ab" * 32, listed_at=now)
    store.set_status("B", "ACCEPTED")
    store.set_status("A", "ACCEPTED", deadline=now + 3600)
    store.set_status("B", "PRINTED")
    committer = Committer(store, 0.001)
    client = Client(first)
    sender = OutboxSender(store, client, committer, batch_size=10, interval=0.01, alert=lambda *a, **k: None,
                          counters=Counter(), events=Events())
    tasks = [asyncio.create_task(committer.run()), asyncio.create_task(sender.run())]
    try:
        for _ in range(200):
            if len(client.sent) >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        store.close()
    b = [s for lid, s in client.sent if lid == "B"]
    assert b == ["ACCEPTED", "PRINTED"], client.sent
