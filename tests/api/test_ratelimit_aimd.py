"""The adaptive (AIMD) rate limiter: pure tests on a fake clock, a simulation of boxes
sharing one API app's budget, and the client against the real local sandbox."""

from __future__ import annotations

import asyncio
import math

import pytest

from appliance.api.client import SupplierClient
from appliance.api.ratelimit import MAX_PAUSE, RateLimiter, max_in_window
from appliance.api.resources import LetterRef
from appliance.config.settings import sandbox_api
from appliance.core.errors import NotFound, RateLimited
from appliance.sandbox.runner import run_in_thread


class FakeTime:
    def __init__(self, start: float = 0.0):
        self.now = start

    def clock(self) -> float:
        return self.now

    async def sleep(self, dt: float) -> None:
        self.now += dt


def fake(rate: float = 100, **options) -> tuple[RateLimiter, FakeTime]:
    t = FakeTime()
    return RateLimiter(rate, clock=t.clock, sleep=t.sleep, record=True, **options), t


async def no_sleep(dt: float) -> None:
    raise AssertionError(f"slept {dt}")


# --- decrease ------------------------------------------------------------------------

def test_defaults_scale_with_the_cap():
    lim = RateLimiter(300)
    assert (lim.current, lim.min_rate, lim.increase, lim.decrease, lim.burst) == (300, 3, 15, 0.5, 10)
    assert RateLimiter(50).min_rate == 1  # at least one call a second
    assert RateLimiter(0.5).min_rate == 0.5  # never above the cap


def test_penalise_halves_the_rate():
    lim, _ = fake(100)
    lim.penalise(None)
    assert lim.current == 50 and (lim.penalties, lim.decreases) == (1, 1)


def test_one_decrease_per_congestion_event():
    lim, t = fake(100)
    for _ in range(5):  # a volley of 429s for requests already in flight
        lim.penalise(None)
    t.now = 0.9
    lim.penalise(None)
    assert lim.current == 50 and (lim.penalties, lim.decreases) == (6, 1)
    t.now = 1.0  # settled: a new 429 is new congestion
    lim.penalise(None)
    assert lim.current == 25 and lim.decreases == 2


def test_floor_respected():
    lim, t = fake(100)
    for _ in range(20):
        t.now += 1.5
        lim.penalise(None)
    assert lim.current == lim.min_rate == 1
    lim, t = fake(100, min_rate=10)
    for _ in range(20):
        t.now += 1.5
        lim.penalise(None)
    assert lim.current == 10


async def test_burst_shrinks_with_the_rate():
    lim, t = fake(300, burst=10)
    t.now = 1.0
    lim.penalise(None)
    assert (lim.current, lim.current_burst) == (150, 5)
    for _ in range(600):
        await lim.acquire()
    assert max_in_window(lim.times) <= 150 + 5
    assert lim.times[-1] == pytest.approx(1.0 + (600 - 5) / 150)


# --- Retry-After ---------------------------------------------------------------------

async def test_retry_after_pause_blocks_acquire_and_try_acquire():
    lim, t = fake(100, burst=10)
    lim.penalise(2.0)
    t.now = 1.99
    assert lim.paused and not lim.try_acquire()
    await lim.acquire()
    assert lim.times == [pytest.approx(2.0 + 1 / lim.current)]  # nothing saved up in the pause
    assert not lim.paused
    t.now += 1.0
    assert lim.try_acquire()


async def test_retry_after_capped_and_later_429s_extend_the_pause():
    lim, t = fake(100)
    lim.penalise(10_000)
    await lim.acquire()
    assert MAX_PAUSE <= lim.times[0] <= MAX_PAUSE + 0.1
    lim, t = fake(100)
    lim.penalise(1.0)
    t.now = 0.5
    lim.penalise(3.0)  # inside the settle time: no second decrease, but the pause holds
    await lim.acquire()
    assert lim.current == 50 and lim.times[0] >= 3.5


async def test_a_penalty_while_waiting_holds_the_waiter():
    t = FakeTime()
    lim: RateLimiter

    async def sleep(dt):
        if t.now == 0:
            lim.penalise(5.0)  # a 429 lands while this call waits for its token
        t.now += dt

    lim = RateLimiter(10, burst=1, clock=t.clock, sleep=sleep, record=True)
    await lim.acquire()
    await lim.acquire()
    assert lim.times[1] >= 5.0


# --- increase ------------------------------------------------------------------------

async def test_reward_climbs_back_to_the_cap_never_above():
    lim, t = fake(100, increase=5)
    lim.penalise(None)
    seen = []
    while t.now < 20:  # full use: every token taken, every answer a success
        await lim.acquire()
        lim.reward()
        seen.append((t.now, lim.current))
    at = {round(when): rate for when, rate in seen}
    assert at[5] == pytest.approx(75, abs=3)  # +5 TPS per second of full use
    assert at[11] == lim.current == 100 and max(r for _, r in seen) == 100
    assert max_in_window([w for w, _ in seen if w >= 12]) <= 100 + lim.burst


def test_reward_at_the_cap_changes_nothing():
    lim, _ = fake(100)
    for _ in range(1000):
        lim.reward()
    assert lim.current == 100


def test_reward_scales_with_use():
    lim, _ = fake(100, increase=5)
    lim.penalise(None)
    for _ in range(25):  # half a second's worth of calls at 50 TPS: about +2.5 TPS
        lim.reward()
    assert 52.3 < lim.current < 52.5


# --- try_acquire ---------------------------------------------------------------------

def test_try_acquire_takes_only_what_is_there_and_never_sleeps():
    lim, t = fake(10, burst=2)
    lim._sleep = no_sleep
    assert [lim.try_acquire() for _ in range(3)] == [True, True, False]
    t.now = 0.05
    assert not lim.try_acquire()
    t.now = 0.1
    assert lim.try_acquire() and lim.acquired == 3 and len(lim.times) == 3


async def test_try_acquire_false_while_a_waiter_waits():
    t = FakeTime()
    woken = asyncio.Event()

    async def sleep(dt):
        t.now += dt
        await woken.wait()

    lim = RateLimiter(10, burst=1, clock=t.clock, sleep=sleep)
    assert lim.try_acquire()
    waiter = asyncio.create_task(lim.acquire())
    await asyncio.sleep(0)  # the waiter is asleep until its token is due
    t.now = 5.0  # plenty of tokens by now, but they are the waiter's
    assert not lim.try_acquire()
    woken.set()
    await waiter
    assert not lim.try_acquire()  # the waiter took the one token there was
    t.now += 0.1
    assert lim.try_acquire() and lim.acquired == 3


# --- several boxes, one API app ------------------------------------------------------

def simulate(n: int, *, capacity: int = 300, cap: float = 300, seconds: float = 120,
             measure_from: float = 80, retry_after: bool, dt: float = 0.001):
    """``n`` greedy boxes, each capped at ``cap``, share a server that serves ``capacity``
    requests per one-second window and answers 429 above that (with a Retry-After to the
    window's end when ``retry_after``).  Box 0 starts at its cap, the others congested near
    their floor.  Returns what each box had served from ``measure_from`` on, and the 429s."""
    now = [-30.0]
    boxes = [RateLimiter(cap, clock=lambda: now[0]) for _ in range(n)]
    for _ in range(7):
        now[0] += 2.0
        for box in boxes[1:]:
            box.penalise(None)
    served, refused = [0] * n, 0
    window, used = None, 0
    for step in range(int(seconds / dt)):
        now[0] = step * dt
        if math.floor(now[0]) != window:
            window, used = math.floor(now[0]), 0
        for i in range(n):
            j = (i + step) % n  # take turns going first
            while boxes[j].try_acquire():
                if used < capacity:
                    used += 1
                    boxes[j].reward()
                    if now[0] >= measure_from:
                        served[j] += 1
                else:
                    refused += 1
                    boxes[j].penalise(window + 1 - now[0] if retry_after else None)
    return served, refused, boxes


@pytest.mark.parametrize("retry_after", [False, True], ids=["no-retry-after", "retry-after"])
@pytest.mark.parametrize("n", [2, 3])
def test_boxes_sharing_one_app_converge_on_fair_shares(n, retry_after):
    capacity, seconds, measure_from = 300, 120, 80
    served, refused, boxes = simulate(n, capacity=capacity, seconds=seconds,
                                      measure_from=measure_from, retry_after=retry_after)
    span = seconds - measure_from
    fair = capacity / n
    per_second = [s / span for s in served]
    assert all(abs(p - fair) <= 0.35 * fair for p in per_second), per_second
    assert sum(per_second) >= 0.7 * capacity, per_second
    total = sum(b.acquired for b in boxes)
    assert refused <= 0.1 * total, (refused, total)  # the server is not flooded with 429s
    assert all(b.current <= b.rate for b in boxes)


# --- the client against the real sandbox ---------------------------------------------

async def test_client_penalised_by_429s_and_requests_still_succeed():
    with run_in_thread(letters=5, bad_ratio=0, rate_limit_every=3, retry_after=0.2) as sb:
        limiter = RateLimiter(50, record=True)
        async with SupplierClient(sandbox_api(sb.base_url), limiter=limiter,
                                  backoff_base=0.01) as c:
            ids = list(sb.letters)
            got = [await c.get_letter(i) for i in ids]
        statuses = [r.status for r in sb.log if r.kind == "get"]
    assert [g.id for g in got] == ids
    assert statuses.count(429) == limiter.penalties >= 2
    assert statuses.count(200) == len(ids)
    assert limiter.decreases >= 1 and limiter.current < 50
    # rewarded after the last penalty: above the halved rate again, below the cap
    assert limiter.current > 50 * 0.5 ** limiter.decreases


async def test_read_back_uses_only_spare_budget():
    with run_in_thread(letters=5, bad_ratio=0) as sb:
        limiter = RateLimiter(20, burst=1)
        async with SupplierClient(sandbox_api(sb.base_url), limiter=limiter) as c:
            some = next(iter(sb.letters))
            ref = await c.read_back(some)
            assert isinstance(ref, LetterRef) and ref.id == some
            assert limiter.acquired == 1  # prepaid: the token try_acquire took, no second one
            assert await c.read_back(some) is None  # the bucket is empty: not waited for
            await asyncio.sleep(0.06)
            waiter = asyncio.create_task(c.get_letter(some))  # intake's call takes the token
            await asyncio.sleep(0)
            assert await c.read_back(some) is None
            await waiter
            limiter.penalise(5.0)  # a Retry-After is running
            await asyncio.sleep(0.06)
            assert await c.read_back(some) is None
            gets = [r for r in sb.log if r.kind == "get"]
            assert len(gets) == 2 and c.stats["read_back"] == 1 and c.stats["get"] == 1


async def test_read_back_is_one_attempt_raising_what_get_letter_raises():
    with run_in_thread(letters=5, bad_ratio=0, retry_after=0) as sb:
        limiter = RateLimiter(100)
        async with SupplierClient(sandbox_api(sb.base_url), limiter=limiter) as c:
            with pytest.raises(NotFound):
                await c.read_back("no-such-letter")
            sb.faults.rate_limit_next = 1
            with pytest.raises(RateLimited):
                await c.read_back(next(iter(sb.letters)))
            assert c.stats["read_back"] == 2 and limiter.penalties == 1
            assert len([r for r in sb.log if r.kind == "get"]) == 2  # no retries
