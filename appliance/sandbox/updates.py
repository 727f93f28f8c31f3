"""Status updates as the deployed server handles them: queued, answered, applied later.

The real server checks a PATCH or POST /letters body, puts each update on a queue and
answers 202 at once; a worker applies them a few seconds later in queue order, without
checking the status transition (any status may follow any other).  An update it failed to
enqueue is only logged server-side: the client had its 202 and the update never applies.
So a client must not read its own 202 as "applied".  ``UpdateQueue`` plays that worker:
``faults.apply_delay`` 0 applies each update before the 202 (the sandbox's old behaviour),
``faults.drop_updates`` is the share silently lost.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable

from appliance.sandbox.model import Faults, UpdateRecord

log = logging.getLogger(__name__)
MAX_NAP = 0.1  # longest the worker sleeps with updates waiting (apply_delay may change)


class UpdateQueue:
    """Accepted updates in arrival order (``records``), applied by ``run()`` when due."""

    def __init__(self, faults: Callable[[], Faults], seed: int,
                 apply: Callable[[UpdateRecord], None]):
        """``faults`` gives the live settings (read at each use: they change at run time)."""
        self.records: list[UpdateRecord] = []
        self._faults = faults
        self._rng = random.Random(seed)
        self._apply = apply
        self._waiting: deque[UpdateRecord] = deque()
        self._wake: asyncio.Event | None = None  # made in run(), on the server's loop

    def waiting(self) -> int:
        return len(self._waiting)

    def accept(self, updates: list[tuple[str, str, str | None, str | None]],
               now: float) -> list[UpdateRecord]:
        """Record updates a 202 is about to be given for; apply them now if apply_delay is
        0 (after any still waiting, so arrival order holds when the delay is changed)."""
        recs = [UpdateRecord(now, *u) for u in updates]
        self.records.extend(recs)
        self._waiting.extend(recs)
        if self._faults().apply_delay <= 0:
            self.apply_due(math.inf, now)
        elif self._wake is not None:
            self._wake.set()
        return recs

    def apply_due(self, due_by: float, now: float) -> None:
        """Apply (or drop) every waiting update received ``apply_delay`` before ``due_by``."""
        delay = max(self._faults().apply_delay, 0)
        while self._waiting and self._waiting[0].received + delay <= due_by:
            rec = self._waiting.popleft()
            share = self._faults().drop_updates
            if share and self._rng.random() < share:
                rec.dropped = True
                log.info("sandbox: update %s -> %s dropped (drop_updates)", rec.letter_id,
                         rec.status)
                continue
            try:
                self._apply(rec)
            except Exception:
                log.exception("sandbox: applying update %s -> %s failed", rec.letter_id,
                              rec.status)
                continue
            rec.applied_at = now

    async def run(self) -> None:
        """The worker: apply updates as they fall due, until cancelled."""
        self._wake = wake = asyncio.Event()
        while True:
            now = time.time()
            try:
                self.apply_due(now, now)
            except Exception:  # keep working; never lose a failure silently
                log.exception("sandbox: update worker failed")
            timeout = None
            if self._waiting:
                due = self._waiting[0].received + max(self._faults().apply_delay, 0)
                timeout = min(max(due - time.time(), 0.0), MAX_NAP)
            try:
                await asyncio.wait_for(wake.wait(), timeout)
            except TimeoutError:
                pass
            wake.clear()
