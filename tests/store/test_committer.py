"""Group commit (appliance.store.committer): durable() returns only once the change is on disk."""

from __future__ import annotations

import asyncio
import threading

from appliance.store.committer import Committer
from appliance.store.store import Store


async def test_durable_waits_for_a_write_under_way_that_holds_the_callers_change(tmp_path):
    """A change made before the committer prepared its flush, and durable() called after
    (the caller awaited something in between): the store is clean by then, but the write is
    still in its thread; durable() used to return at once, before the change was on disk."""
    store = Store(tmp_path)
    release, started = threading.Event(), threading.Event()
    real = store._write_item

    def slow(item):
        started.set()
        release.wait(5)
        real(item)

    store._write_item = slow
    committer = Committer(store, 0.001)
    task = asyncio.create_task(committer.run())
    try:
        store.add_letter("A", "spec", "g", "ab" * 32)
        other = asyncio.create_task(committer.durable())  # someone else's flush picks up A
        await asyncio.to_thread(started.wait, 5)
        assert not store.dirty  # prepared: the change is in the write under way
        mine = asyncio.create_task(committer.durable())
        await asyncio.sleep(0.05)
        assert not mine.done() and not other.done()  # not on disk yet
        release.set()
        await asyncio.wait_for(asyncio.gather(mine, other), 5)
        with Store(tmp_path, readonly=True) as on_disk:
            assert on_disk.is_known("A")
    finally:
        release.set()
        task.cancel()
        store.close()
