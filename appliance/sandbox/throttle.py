"""The deployed API's transactions-per-second limit (300 per API app; beyond it, 429).

A sliding one-second window over the requests actually served, so however requests
bunch, no one-second window ever holds more than the limit (a fixed per-second bucket
would let twice the limit through across a boundary).
"""

from __future__ import annotations

from collections import deque


class SlidingWindow:
    def __init__(self) -> None:
        self._served: deque[float] = deque()
        self.refused = 0

    def admit(self, now: float, limit: int) -> bool:
        """Count a request served at ``now`` and say True, or say False (refused) if
        ``limit`` were served in the second before; ``limit`` 0 = no limit."""
        if limit <= 0:
            return True
        served = self._served
        while served and served[0] <= now - 1.0:
            served.popleft()
        if len(served) >= limit:
            self.refused += 1
            return False
        served.append(now)
        return True
