"""Token-bucket rate limiter shared by every call the API client makes.

The Supplier API allows 300 transactions per second per application; going over earns 429s.
A bucket of ``burst`` tokens refilled at ``rate`` per second keeps any one-second window at
or below ``rate + burst`` calls.  Waiters are served in arrival order (one lock).
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable


def default_burst(rate: float) -> int:
    """A small burst (about 1/30 s worth of calls) so windows stay close to ``rate``."""
    return max(1, int(rate / 30))


class RateLimiter:
    def __init__(
        self,
        rate: float,
        burst: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        record: bool = False,
    ):
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = float(rate)
        self.burst = default_burst(rate) if burst is None else int(burst)
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.burst)
        self._last = clock()
        self._lock = asyncio.Lock()
        #: acquisition times (clock values) when constructed with record=True
        self.times: list[float] | None = [] if record else None
        self.acquired = 0

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        return now

    async def acquire(self) -> None:
        """Wait until one call may go out."""
        async with self._lock:
            now = self._refill()
            while self._tokens < 1 - 1e-9:  # tolerance: float refill may land just short of 1
                await self._sleep((1 - self._tokens) / self.rate)
                now = self._refill()
            self._tokens -= 1
            self.acquired += 1
            if self.times is not None:
                self.times.append(now)  # the instant the token was taken


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The largest number of events in any half-open window ``[t, t + window)``."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best
