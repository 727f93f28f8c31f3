"""How many letters one poll may ask Notify for.  Pure: no I/O.

Notify hides every letter it lists for its visibility timeout (300 s), from every client
of the API app, and a letter not ACCEPTED within that window goes back to the queue for
anyone.  So a poll asks only for what this appliance will ACCEPT within the window.  How
many that is depends on this box's intake speed, its CPU's other work, the API's rate
limit and the other boxes sharing it, none of which is known in advance; so the number of
letters listed and not yet answered (the *listing window*) is found the way TCP finds its
congestion window: it doubles while letters are taken in time (slow start), then grows by
about one per window's worth, and halves when a letter misses its window.  A cold start
asks for little, so it hides no more than it can take.
"""

from __future__ import annotations

import math


class ListingWindow:
    """The most letters listed and not yet ACCEPTED (or rejected) at any one time."""

    def __init__(self, start: int = 20, floor: int = 1, cap: int = 100_000):
        self.size = float(start)
        self.floor = floor
        self.cap = cap
        self.slow_start = True  # until the first miss
        self.misses = 0
        self.cuts = 0
        self._cut_until = -math.inf

    def taken(self, n: int = 1) -> None:
        """``n`` letters were ACCEPTED (or REJECTED) in time."""
        for _ in range(n):
            self.size = min(self.cap, self.size + (1.0 if self.slow_start else 1.0 / self.size))

    def missed(self, now: float, hold: float) -> None:
        """A letter missed its window: halve, once per ``hold`` seconds (the letters of one
        listing that miss together are one event)."""
        self.misses += 1
        self.slow_start = False
        if now >= self._cut_until:
            self.size = max(float(self.floor), self.size / 2)
            self._cut_until = now + hold
            self.cuts += 1

    def limit(self, room: int, page_max: int, in_window: int) -> int:
        """The ``limit`` for the next ``GET /letters`` (0: do not poll): what the window
        has left, capped by the floor's room and the page size."""
        return max(0, min(room, page_max, int(self.size) - in_window))
