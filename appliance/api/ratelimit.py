"""Token-bucket rate limiter shared by every call the API client makes, adaptive (AIMD).

The Supplier API allows 300 transactions per second per *application*, and several
appliances may share one application; going over earns 429s.  No box knows how many others
there are, so each one finds its share the way TCP does: additive increase while answers
come back, multiplicative decrease on a 429 (AIMD).  Boxes that follow that rule converge on
equal shares of whatever the server allows, with no configuration; ``rate`` stays a hard
cap per box.  A Retry-After pauses every call through the limiter until it has passed.

A bucket of ``burst`` tokens refilled at ``current`` per second keeps any one-second window
at or below ``current + burst`` calls (the burst shrinks with ``current``).  Waiters are
served in arrival order (one lock), urgent ones (status updates) first; ``try_acquire`` takes only what nobody is waiting for,
so background work (read-back proving) uses spare budget and never slows the rest.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

#: Longest Retry-After pause the limiter honours (a longer one is taken as this).
MAX_PAUSE = 120.0


def default_burst(rate: float) -> int:
    """A small burst (about 1/30 s worth of calls) so windows stay close to ``rate``."""
    return max(1, int(rate / 30))


class RateLimiter:
    """``rate`` is the static cap; ``current`` moves between ``min_rate`` and it.

    Defaults: ``min_rate`` = max(1, rate/100), so a congested box still makes progress;
    ``increase`` = rate/20 TPS per second of 429-free full use, so a box climbs from half to
    the cap in about ten seconds; ``decrease`` = 0.5 (halve on congestion, as TCP does);
    ``settle`` = 1 s, the time after a decrease during which further 429s count as the same
    congestion event (those requests were already in flight at the old rate).
    """

    def __init__(
        self,
        rate: float,
        burst: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        record: bool = False,
        min_rate: float | None = None,
        increase: float | None = None,
        decrease: float = 0.5,
        settle: float = 1.0,
    ):
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = float(rate)
        self.burst = default_burst(rate) if burst is None else int(burst)
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.min_rate = min(self.rate, max(1.0, self.rate / 100)) if min_rate is None else float(min_rate)
        if not 0 < self.min_rate <= self.rate:
            raise ValueError(f"min_rate must be in (0, rate], got {min_rate}")
        self.increase = self.rate / 20 if increase is None else float(increase)
        if self.increase < 0:
            raise ValueError(f"increase must not be negative, got {increase}")
        if not 0 < decrease < 1:
            raise ValueError(f"decrease must be in (0, 1), got {decrease}")
        self.decrease = float(decrease)
        self.settle = float(settle)
        self._clock = clock
        self._sleep = sleep
        self._current = self.rate  # start at the cap: one box alone needs no warm-up
        self._tokens = float(self.burst)
        self._last = clock()  # tokens are counted up to here; in the future during a pause
        self._paused_until = float("-inf")
        self._settled_at = float("-inf")  # 429s before this belong to the last decrease
        self._waiting = 0
        self._lock = asyncio.Lock()
        self._urgent_lock = asyncio.Lock()
        self._urgent = 0  # urgent callers waiting (or taking) now
        #: acquisition times (clock values) when constructed with record=True
        self.times: list[float] | None = [] if record else None
        self.acquired = 0
        #: 429s reported (penalise calls), and how many of them cut the rate
        self.penalties = 0
        self.decreases = 0

    @property
    def current(self) -> float:
        """The effective rate now (calls per second)."""
        return self._current

    @property
    def current_burst(self) -> int:
        """The burst scaled to ``current``, so a window stays near ``current + burst``."""
        return max(1, int(self.burst * self._current / self.rate))

    @property
    def paused(self) -> bool:
        """True while a Retry-After is being waited out."""
        return self._clock() < self._paused_until

    @property
    def tokens(self) -> float:
        """Requests that could leave at once now (for the metrics)."""
        self._refill()
        return self._tokens

    def _refill(self) -> float:
        now = self._clock()
        if now > self._last:
            self._tokens = min(self.current_burst, self._tokens + (now - self._last) * self._current)
            self._last = now
        return now

    def _take(self, now: float) -> None:
        self._tokens -= 1
        self.acquired += 1
        if self.times is not None:
            self.times.append(now)  # the instant the token was taken

    async def acquire(self, urgent: bool = False) -> None:
        """Wait until one call may go out.  ``urgent`` calls (status updates: an ACCEPTED
        has a deadline) wait in a line of their own that is served first whenever both
        lines wait, so a crowd of downloads never makes an ACCEPTED late."""
        self._waiting += 1
        self._urgent += urgent
        try:
            async with self._urgent_lock if urgent else self._lock:
                now = self._refill()
                # tolerance: float refill may land just short of 1
                while self._tokens < 1 - 1e-9 or (not urgent and self._urgent):
                    # rate and pause are read afresh each time: a 429 may arrive meanwhile
                    wait = max(0.0, self._last - now) + max(0.0, 1 - self._tokens) / self._current
                    await self._sleep(wait if wait > 0 else 1 / self._current)
                    now = self._refill()
                self._take(now)
        finally:
            self._waiting -= 1
            self._urgent -= urgent

    def try_acquire(self) -> bool:
        """Take a token only if it is spare: one is there now, nobody waits in ``acquire``
        and no Retry-After is running.  Never sleeps."""
        if self._waiting:  # counts the one holding the lock as well as those queued
            return False
        now = self._refill()
        if now < self._paused_until or self._tokens < 1 - 1e-9:
            return False
        self._take(now)
        return True

    def penalise(self, retry_after: float | None = None) -> None:
        """A 429 came back: cut the rate (once per congestion event) and honour Retry-After."""
        now = self._clock()
        self.penalties += 1
        if now >= self._settled_at:
            self._refill()  # count tokens earned at the old rate before it changes
            self._current = max(self.min_rate, self._current * self.decrease)
            self._tokens = min(self._tokens, self.current_burst)
            self._settled_at = now + self.settle
            self.decreases += 1
        if retry_after is not None:
            until = now + min(max(0.0, retry_after), MAX_PAUSE)
            if until > self._paused_until:
                self._refill()
                self._paused_until = until
                self._tokens = min(self._tokens, 0.0)  # no saved-up burst the moment it ends
                self._last = max(self._last, until)  # nothing is earned during the pause

    def reward(self) -> None:
        """A non-429 answer came back: additive increase, never above the cap.

        Each answer adds ``increase / current``, so a box using all of ``current`` for one
        second gains ``increase`` TPS (and a box using less gains less: it has not shown the
        server can take more)."""
        if self._current < self.rate:
            self._refill()
            self._current = min(self.rate, self._current + self.increase / self._current)


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The largest number of events in any half-open window ``[t, t + window)``."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best
