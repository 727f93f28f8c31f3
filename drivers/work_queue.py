"""One piece at a time, earliest deadline first: the work loop of the file printer and of the
simulated finishing machines (a real device has its own queue).  ``Work.order`` (the
pipeline's dispatch-by key) decides; equal keys keep submission order."""

from __future__ import annotations

import asyncio
import heapq
from typing import Awaitable, Callable

from drivers.base import Work


class WorkQueue:
    """``put`` work; ``run`` (under the driver's supervisor) hands it to ``handle`` earliest
    ``Work.order`` first (stable), waiting while ``is_paused``.  Bounded by the pipeline,
    which hands a device at most its ``max_queued``."""

    def __init__(self, handle: Callable[[Work, int], Awaitable[None]], is_paused: Callable[[], bool]):
        self._handle = handle
        self._is_paused = is_paused
        self._heap: list[tuple[tuple, int, Work]] = []
        self._ready = asyncio.Event()
        self._puts = 0
        self.seq = 0
        self.busy = False

    def put(self, work: Work) -> int:
        self._puts += 1
        heapq.heappush(self._heap, (tuple(work.order), self._puts, work))
        self._ready.set()
        return len(self._heap)

    @property
    def depth(self) -> int:
        return len(self._heap) + (1 if self.busy else 0)

    async def run(self) -> None:
        while True:
            while not self._heap:
                self._ready.clear()
                await self._ready.wait()
            while self._is_paused():  # choose after the pause: work put meanwhile may come first
                await asyncio.sleep(0.05)
            work = heapq.heappop(self._heap)[2]
            self.busy = True
            self.seq += 1
            try:
                await self._handle(work, self.seq)
            finally:
                self.busy = False
