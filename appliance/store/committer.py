"""Group commit for the store: many writers, one durable flush.

Every side effect in the pipeline waits for ``durable()`` first; writers that arrive
within ``interval`` of each other share one flush, so durability costs one fsync pair per
burst rather than per letter.
"""

from __future__ import annotations

import asyncio

from appliance.store.store import Store


class Committer:
    """Group commit: many callers wait for one durable flush of the store."""

    def __init__(self, store: Store, interval: float):
        self.store = store
        self.interval = interval
        self._waiters: list[asyncio.Future] = []
        self._wake = asyncio.Event()
        self._writing: asyncio.Future | None = None  # the write under way, if any
        self.flushes = 0

    async def durable(self) -> None:
        if not self.store.dirty and not self._waiters:
            # Clean, but a write may be under way holding this caller's change (made before
            # the flush was prepared, durable() called after): it is durable when that ends.
            if self._writing is not None and not self._writing.done():
                await asyncio.shield(self._writing)
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._wake.set()
        await fut

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.interval)  # let concurrent writers join this commit
            self._wake.clear()
            waiters, self._waiters = self._waiters, []
            writing = self._writing = asyncio.get_running_loop().create_future()
            try:
                write = self.store.prepare_flush()
                if write is not None:
                    # The disk work (fsyncs) in a thread: the loop keeps moving letters meanwhile.
                    await asyncio.to_thread(write)
                self.flushes += 1
                writing.set_result(None)
            except Exception as e:  # disk full, read-only fs: every waiter must hear it
                for w in [*waiters, writing]:
                    if not w.done():
                        w.set_exception(e)
                writing.exception()  # heard by whoever waits on it; nobody else must be told
                continue
            finally:
                if not writing.done():  # cancelled mid-write: not known durable
                    writing.cancel()
            for w in waiters:
                if not w.done():
                    w.set_result(None)
