"""One piece at a time, in submission order: the work loop of the file printer and of the
simulated finishing machines (a real device has its own queue)."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from drivers.base import Work


class WorkQueue:
    """``put`` work; ``run`` (under the driver's supervisor) hands it to ``handle`` in order,
    waiting while ``is_paused``."""

    def __init__(self, handle: Callable[[Work, int], Awaitable[None]], is_paused: Callable[[], bool]):
        self._handle = handle
        self._is_paused = is_paused
        self._queue: asyncio.Queue[Work] = asyncio.Queue()
        self.seq = 0
        self.busy = False

    def put(self, work: Work) -> int:
        self._queue.put_nowait(work)
        return self._queue.qsize()

    @property
    def depth(self) -> int:
        return self._queue.qsize() + (1 if self.busy else 0)

    async def run(self) -> None:
        while True:
            work = await self._queue.get()
            while self._is_paused():
                await asyncio.sleep(0.05)
            self.busy = True
            self.seq += 1
            try:
                await self._handle(work, self.seq)
            finally:
                self.busy = False
