"""Shared machinery for simulated devices: a serial work queue and a durable ledger.

A real inserter or franking machine keeps its own counters across an appliance restart;
the ledger (an append-only JSON-lines file in the device's directory) plays that part so
``reconcile()`` can tell which pieces the "machine" already handled.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any, Awaitable, Callable

from appliance.store.storage import open_private, private_dir
from drivers.base import Work


class Ledger:
    def __init__(self, path: Path):
        self.path = path
        private_dir(path.parent)

    def append(self, record: dict[str, Any]) -> None:
        """Append and fsync (blocking: call it from a worker thread, not the event loop)."""
        with open_private(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:  # torn last line after a crash
                continue
        return out


class SerialWorker:
    """Processes submitted work one piece at a time, in submission order."""

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
        """The work loop; the driver runs it under its supervisor (``Driver.spawn``)."""
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
