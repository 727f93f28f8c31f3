"""A restart's replay: an update the previous run left unsent that Notify already shows
applied is not sent again, and it supersedes the letter's older updates still waiting for
proof (Notify's state no longer depends on them).  Before, only the replayed entry was
dropped and the prover then read DISPATCHED against ACCEPTED, PRINTED, ENCLOSED and raised
"another writer has this letter" on the box's own letter (seen in the backup/restore test)."""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace

from appliance.pipeline.outbox import OutboxSender
from appliance.store.committer import Committer
from appliance.store.store import Store
from tests.pipeline.test_outbox_order import Events


class Client:
    def __init__(self, shown: str):
        self.shown = shown
        self.sent: list[tuple[str, str]] = []

    async def get_letter(self, letter_id):
        return SimpleNamespace(status=self.shown)

    async def post_letters(self, updates, *, batch_size, retries=None, send_by=None):
        self.sent += [(u.letter_id, u.status) for u in updates]
        return 1


async def test_a_replayed_update_already_applied_supersedes_the_older_unproven_ones(tmp_path):
    store = Store(tmp_path)
    store.add_letter("L", "notify-c5", "g", "ab" * 32, listed_at=1_900_000_000.0)
    for status in ("ACCEPTED", "PRINTED", "ENCLOSED"):
        store.set_status("L", status)
    store.outbox_sent([e["seq"] for e in store.outbox_unsent()])  # 202s: not yet proven
    store.set_status("L", "DISPATCHED")  # left unsent by the run that stopped
    committer = Committer(store, 0.001)
    client = Client("DISPATCHED")
    sender = OutboxSender(store, client, committer, batch_size=10, interval=0.01,
                          alert=lambda *a, **k: None, counters=Counter(), events=Events())
    sender.prepare_replay()
    tasks = [asyncio.create_task(committer.run()), asyncio.create_task(sender.run())]
    try:
        for _ in range(200):
            if not store.outbox_of("L"):
                break
            await asyncio.sleep(0.01)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    try:
        assert store.outbox_of("L") == []  # nothing left for the prover to misjudge
        assert client.sent == []  # and nothing sent again
    finally:
        store.close()
