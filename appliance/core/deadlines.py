"""Dispatch deadlines: when a letter must leave the floor, and whether it will.

Pure: no I/O, the clock is always passed in (epoch seconds).  The supplier's service table
(the profile's ``[service]``, ``appliance.config.service``) says when the day's intake and
collection cut-offs fall, which days are working days, and how many working days each
postage class may wait; a pack's ``SAME_DAY`` feature and ``constraints.deliveryDays``
tighten that.  ``assess`` says which waiting letters will miss their deadline at the floor's
measured rate, ``RateMeter`` measures that rate, ``MissedTally`` counts the misses.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from typing import Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from appliance.core.packs import Pack

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

#: Working days each postage class may wait before dispatch unless the profile says otherwise:
#: first class leaves the day it is produced, second-class tariffs may wait a day.
DEFAULT_DISPATCH_DAYS = {"first-class": 0, "economy": 1, "admail": 1, "admail-economy": 1,
                         "articles-blind": 0}


@dataclass(frozen=True)
class ServiceTable:
    """The supplier's service levels (``[service]``): cut-offs, calendar, dispatch days."""

    timezone: str = "Europe/London"
    intake_cutoff: clock_time = clock_time(14, 0)  # letters listed later count from the next working day
    collection_cutoff: clock_time = clock_time(17, 30)  # the carrier's collection: the dispatch-by time
    working_days: frozenset[int] = frozenset(range(5))  # Monday = 0
    bank_holidays: frozenset[date] = frozenset()
    dispatch_days: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_DISPATCH_DAYS))
    default_dispatch_days: int = 1  # a postage id the table does not name
    at_risk_lead_minutes: int = 60  # alert this long before a cut-off a letter will miss
    order: str = "edf"  # edf (earliest deadline first) | fifo (first come, first served)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_working_day(self, d: date) -> bool:
        return d.weekday() in self.working_days and d not in self.bank_holidays

    def next_working_day(self, d: date) -> date:
        """The first working day after ``d`` (a year without one is a configuration error
        the profile parser refuses, so this ends)."""
        for _ in range(400):
            d += timedelta(days=1)
            if self.is_working_day(d):
                return d
        raise ValueError("no working day within a year; check [service] working_days")

    def collection(self, d: date) -> float:
        """Epoch seconds of day ``d``'s collection in local time (DST handled by zoneinfo)."""
        return datetime.combine(d, self.collection_cutoff, tzinfo=self.tz).timestamp()

    def local_day(self, t: float) -> date:
        return datetime.fromtimestamp(t, self.tz).date()


@dataclass(frozen=True)
class Deadline:
    at: float  # dispatch by (epoch seconds): the collection cut-off of the due day
    rule: str  # one line: why this day ("SAME_DAY: ...", "economy: dispatch within 1 working day")


def production_day(arrived: float, table: ServiceTable) -> date:
    """The working day a letter counts from: its arrival day if that is a working day and it
    came before the intake cut-off, else the next working day."""
    local = datetime.fromtimestamp(arrived, table.tz)
    d = local.date()
    if table.is_working_day(d) and local.time() < table.intake_cutoff:
        return d
    return table.next_working_day(d)


def dispatch_days(pack: Pack, table: ServiceTable) -> tuple[int, str]:
    """Working days after its production day a letter of ``pack`` may leave, and why.

    The profile's table gives the supplier's service per postage class; the pack's
    ``constraints.deliveryDays`` bounds it.  That constraint is read as the working days the
    supplier may take before dispatch: the embedded packs pair economy postage taking 3 days
    in the post with ``deliveryDays < 3``, which no letter could meet if it counted the post
    too.  The postage's own ``deliveryDays`` is the carrier's part (shown, not scheduled).
    """
    postage = pack.postage.id or pack.postage_id
    days = table.dispatch_days.get(postage, table.default_dispatch_days)
    why = f"{postage or 'postage'}: dispatch within {days} working day{'s' * (days != 1)}"
    bound = pack.delivery_days
    if bound is not None:
        fits = [n for n in range(days + 1) if bound.allows(n)]
        best = max(fits) if fits else 0
        if best < days:
            days = best
            why = (f"deliveryDays {bound.describe()}: dispatch within "
                   f"{days} working day{'s' * (days != 1)}")
    return days, why


def dispatch_by(pack: Pack, arrived: float, table: ServiceTable) -> Deadline:
    """A letter's dispatch-by time from its pack and the service table."""
    day = production_day(arrived, table)
    cutoff = table.collection_cutoff.strftime("%H:%M")
    if pack.same_day:
        late = day != table.local_day(arrived)
        return Deadline(table.collection(day), f"SAME_DAY: the {cutoff} collection on "
                        f"{'the next working day' if late else 'the day it arrived'}")
    days, why = dispatch_days(pack, table)
    for _ in range(days):
        day = table.next_working_day(day)
    return Deadline(table.collection(day), f"{why} ({cutoff} collection)")


def edf_key(deadline: float | None, seq: int, order: str = "edf") -> tuple[float, int]:
    """The order letters are worked in: earliest dispatch-by first, then the order they were
    listed (Notify lists by its priority, so that breaks ties); ``fifo``: listing order only."""
    if order == "fifo" or deadline is None:
        return (0.0 if order == "fifo" else math.inf, seq)
    return (deadline, seq)


class RateMeter:
    """Letters finished per minute over a sliding window (``now`` passed in)."""

    def __init__(self, window_s: float = 600.0, cap: int = 100_000):
        self.window = window_s
        self._times: deque[float] = deque(maxlen=cap)

    def add(self, t: float) -> None:
        self._times.append(t)

    def rate(self, now: float) -> float | None:
        """Per minute; None before anything finished in the window (nothing to measure)."""
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()
        if not self._times:
            return None
        span = max(now - self._times[0], 60.0)  # one burst is not a rate of thousands a minute
        return len(self._times) * 60.0 / min(span, self.window)


@dataclass(frozen=True)
class Waiting:
    """A letter not yet dispatched, as ``assess`` needs it."""

    id: str
    deadline: float
    pack: str
    blocked: str | None = None  # why it cannot move now (no capable printer, envelope ...), or None


@dataclass(frozen=True)
class Risk:
    id: str
    deadline: float
    pack: str
    why: str
    eta: float | None  # when it would be dispatched at the current rate (None: blocked)


def assess(waiting: Sequence[Waiting], now: float, rate_per_min: float | None,
           lead_s: float) -> list[Risk]:
    """The letters that will miss their deadline, in work (EDF) order.

    ``waiting`` is in the order the floor works it.  A letter's estimated dispatch is now
    plus the letters ahead of it (and itself) at the measured rate; over its deadline, it is
    at risk ("queue too long").  A blocked letter is at risk once its deadline is within
    ``lead_s`` (before that, a person has time to clear the block).  Without a measured rate
    (nothing finished lately) only blocked letters and those already past are at risk.
    """
    risks = []
    for ahead, w in enumerate(waiting):
        if w.deadline <= now:
            risks.append(Risk(w.id, w.deadline, w.pack, w.blocked or "deadline passed", None))
            continue
        if w.blocked is not None:
            if w.deadline - now <= lead_s:
                risks.append(Risk(w.id, w.deadline, w.pack, w.blocked, None))
            continue
        if rate_per_min:
            eta = now + (ahead + 1) * 60.0 / rate_per_min
            if eta > w.deadline:
                risks.append(Risk(w.id, w.deadline, w.pack, f"queue too long at the current rate: "
                                  f"{ahead} ahead at {rate_per_min:.1f}/min", eta))
    return risks


class MissedTally:
    """Missed deadlines per day (the deadline's local date) and pack; JSON-able.  The ids of
    the last ``keep_ids`` letters counted are kept too, so a letter is never counted twice
    (not even when a restart loses the letter's own note that it was)."""

    def __init__(self, counts: Mapping[str, Mapping[str, int]] | None = None, keep_days: int = 400,
                 ids: Iterable[str] = (), keep_ids: int = 20_000):
        self.keep_days = keep_days
        self.counts: dict[str, dict[str, int]] = {d: dict(p) for d, p in (counts or {}).items()}
        self.ids: deque[str] = deque(ids, maxlen=keep_ids)
        self._seen = set(self.ids)

    def add(self, day: date | str, pack: str, n: int = 1, letter_id: str | None = None) -> bool:
        """Count a miss; False (nothing counted) for a letter counted already."""
        if letter_id is not None:
            if letter_id in self._seen:
                return False
            if len(self.ids) == self.ids.maxlen:
                self._seen.discard(self.ids[0])
            self.ids.append(letter_id)
            self._seen.add(letter_id)
        day = str(day)
        by_pack = self.counts.setdefault(day, {})
        by_pack[pack] = by_pack.get(pack, 0) + n
        for old in sorted(self.counts)[:-self.keep_days]:  # bounded: a year and a bit
            del self.counts[old]
        return True

    def day(self, d: date | str) -> int:
        return sum(self.counts.get(str(d), {}).values())

    def total(self) -> int:
        return sum(sum(p.values()) for p in self.counts.values())

    def between(self, first: date, last: date) -> dict[str, dict[str, int]]:
        return {d: dict(p) for d, p in sorted(self.counts.items()) if str(first) <= d <= str(last)}


def parse_days(names: Iterable[str]) -> frozenset[int]:
    """``["Mon", ..., "Fri"]`` as weekday numbers; ValueError names the first unknown one."""
    out = set()
    for n in names:
        key = n[:3].title()
        if key not in WEEKDAYS:
            raise ValueError(n)
        out.add(WEEKDAYS.index(key))
    return frozenset(out)


def deadlines_line(view: dict | None) -> str:
    """One line for the console and ``appliance status`` from the snapshot's ``deadlines``
    (a daemon from before deadlines sends none: empty line)."""
    if not view:
        return ""
    cut = str(view.get("next_cutoff") or "")
    when = cut[11:16] if len(cut) >= 16 else cut
    day = ""
    try:
        day = " " + WEEKDAYS[date.fromisoformat(cut[:10]).weekday()]
    except ValueError:
        pass
    return (f"deadlines: at risk {view.get('at_risk', 0)}  missed today {view.get('missed_today', 0)} "
            f"(kept {view.get('missed_total', 0)})  next cut-off {when}{day}"
            + ("  order FIFO" if view.get("order") == "fifo" else ""))
