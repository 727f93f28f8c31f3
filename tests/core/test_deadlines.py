"""Dispatch deadlines (appliance.core.deadlines): plain values, no clock but the one passed in."""

from dataclasses import replace
from datetime import date, datetime, timezone

import pytest

from appliance.core.deadlines import (
    MissedTally,
    RateMeter,
    ServiceTable,
    Waiting,
    assess,
    dispatch_by,
    edf_key,
    parse_days,
    production_day,
)
from appliance.core.packs import load_packs

PACKS = load_packs()
SAME_DAY = PACKS["notify-sameday"]
ECONOMY = PACKS["notify-c5"]  # economy, deliveryDays < 3
FIRST = PACKS["notify-first"]  # first-class, deliveryDays < 2
WHITEMAIL = PACKS["notify-admail-whitemail"]  # admail-economy, deliveryDays < 2
TABLE = ServiceTable(bank_holidays=frozenset({date(2026, 12, 25), date(2026, 12, 28), date(2027, 1, 1)}))


def utc(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M")


def test_same_day_before_the_intake_cutoff_is_todays_collection():
    # Wednesday 2 December 2026, 13:59 in London (GMT): today's 17:30 collection
    d = dispatch_by(SAME_DAY, utc(2026, 12, 2, 13, 59), TABLE)
    assert iso(d.at) == "2026-12-02 17:30" and d.rule.startswith("SAME_DAY")


def test_same_day_at_or_after_the_intake_cutoff_is_the_next_working_days():
    assert iso(dispatch_by(SAME_DAY, utc(2026, 12, 2, 14, 0), TABLE).at) == "2026-12-03 17:30"
    # Friday afternoon -> Monday
    assert iso(dispatch_by(SAME_DAY, utc(2026, 12, 4, 16, 0), TABLE).at) == "2026-12-07 17:30"


def test_weekend_arrivals_count_from_monday():
    assert iso(dispatch_by(SAME_DAY, utc(2026, 12, 5, 9, 0), TABLE).at) == "2026-12-07 17:30"
    assert iso(dispatch_by(ECONOMY, utc(2026, 12, 6, 9, 0), TABLE).at) == "2026-12-08 17:30"


def test_bank_holidays_are_skipped():
    # Thursday 24 Dec after the cut-off: 25 Fri holiday, weekend, 28 Mon holiday -> Tue 29
    assert iso(dispatch_by(SAME_DAY, utc(2026, 12, 24, 15, 0), TABLE).at) == "2026-12-29 17:30"
    # economy: one working day after its production day (24th) -> 29th
    assert iso(dispatch_by(ECONOMY, utc(2026, 12, 24, 10, 0), TABLE).at) == "2026-12-29 17:30"
    assert production_day(utc(2026, 12, 31, 15, 0), TABLE) == date(2027, 1, 4)


def test_postage_class_and_delivery_days_bound():
    t = utc(2026, 12, 2, 10, 0)  # Wednesday
    assert iso(dispatch_by(FIRST, t, TABLE).at) == "2026-12-02 17:30"  # first class: same day
    assert iso(dispatch_by(ECONOMY, t, TABLE).at) == "2026-12-03 17:30"  # economy: 1 working day
    slow = replace(TABLE, dispatch_days={"economy": 5, "admail-economy": 5})
    # deliveryDays < 3 caps the supplier's 5 days at 2
    d = dispatch_by(ECONOMY, t, slow)
    assert iso(d.at) == "2026-12-04 17:30" and "deliveryDays below 3" in d.rule
    assert iso(dispatch_by(WHITEMAIL, t, slow).at) == "2026-12-03 17:30"  # < 2 -> 1 day


def test_dst_change_uses_local_wall_clock():
    # Friday 27 March 2026 15:00 GMT (after the cut-off); clocks go forward on Sunday 29th:
    # Monday's 17:30 is 16:30 UTC, and economy's Tuesday the same
    assert iso(dispatch_by(SAME_DAY, utc(2026, 3, 27, 15, 0), TABLE).at) == "2026-03-30 16:30"
    assert iso(dispatch_by(ECONOMY, utc(2026, 3, 27, 15, 0), TABLE).at) == "2026-03-31 16:30"
    # 13:30 BST (12:30 UTC) is before the 14:00 cut-off; 13:30 UTC (14:30 BST) is not
    assert iso(dispatch_by(SAME_DAY, utc(2026, 3, 30, 12, 30), TABLE).at) == "2026-03-30 16:30"
    assert iso(dispatch_by(SAME_DAY, utc(2026, 3, 30, 13, 30), TABLE).at) == "2026-03-31 16:30"
    # back to GMT on 25 October
    assert iso(dispatch_by(SAME_DAY, utc(2026, 10, 23, 15, 0), TABLE).at) == "2026-10-26 17:30"


def test_other_timezone_and_working_days():
    t = ServiceTable(timezone="America/New_York", working_days=parse_days(["Sun", "Mon", "Tue", "Wed", "Thu"]))
    # Friday 4 Dec 2026 10:00 in New York is not a working day: Sunday's 17:30 EST
    assert iso(dispatch_by(SAME_DAY, utc(2026, 12, 4, 15, 0), t).at) == "2026-12-06 22:30"
    with pytest.raises(ValueError):
        parse_days(["Mon", "Funday"])


def test_edf_key_orders_by_deadline_then_listing_and_fifo_ignores_deadlines():
    keys = [edf_key(20.0, 1), edf_key(10.0, 2), edf_key(None, 0), edf_key(10.0, 3)]
    assert sorted(keys) == [(10.0, 2), (10.0, 3), (20.0, 1), (float("inf"), 0)]
    assert sorted([edf_key(20.0, 1, "fifo"), edf_key(10.0, 2, "fifo")]) == [(0.0, 1), (0.0, 2)]


def test_rate_meter_slides():
    m = RateMeter(window_s=600)
    assert m.rate(1000.0) is None
    for i in range(30):
        m.add(1000.0 + i * 10)  # one every 10 s for 5 min
    assert m.rate(1300.0) == pytest.approx(6.0, rel=0.05)
    assert m.rate(1000.0 + 290 + 601) is None  # all slid out


def test_assess_queue_too_long_blocked_and_passed():
    now = 0.0
    waiting = [Waiting("a", 600.0, "p"), Waiting("b", 600.0, "p"), Waiting("c", 6000.0, "q"),
               Waiting("d", 3000.0, "p", blocked="envelope first-c5 not loaded"),
               Waiting("e", 100000.0, "p", blocked="held for a person"), Waiting("f", -1.0, "p")]
    # 1 a minute: a is done at 60 s, b at 120 s: both fine at 600 s; with 0.1/min b is late
    assert [r.id for r in assess(waiting, now, 1.0, 3600)] == ["d", "f"]
    slow = assess(waiting, now, 0.15, 3600)
    assert [r.id for r in slow] == ["b", "d", "f"]
    assert "1 ahead" in slow[0].why and slow[1].why.startswith("envelope")
    assert [r.id for r in assess(waiting, now, None, 3600)] == ["d", "f"]  # no rate: blocked, passed


def test_missed_tally_counts_and_is_bounded():
    t = MissedTally(keep_days=2)
    t.add(date(2026, 12, 1), "notify-sameday")
    t.add("2026-12-01", "notify-sameday")
    t.add("2026-12-02", "notify-c5")
    assert t.day("2026-12-01") == 2 and t.total() == 3
    t.add("2026-12-03", "notify-c5")
    assert sorted(t.counts) == ["2026-12-02", "2026-12-03"]
    assert MissedTally(t.counts).between(date(2026, 12, 3), date(2026, 12, 3)) == {"2026-12-03": {"notify-c5": 1}}


def test_missed_tally_counts_a_letter_once_even_from_a_reloaded_copy():
    t = MissedTally()
    assert t.add("2026-12-02", "notify-sameday", letter_id="L1")
    assert not t.add("2026-12-02", "notify-sameday", letter_id="L1")
    again = MissedTally(t.counts, ids=list(t.ids))  # as read back after a restart
    assert not again.add("2026-12-02", "notify-sameday", letter_id="L1") and again.total() == 1
    small = MissedTally(keep_ids=2)
    for lid in ("a", "b", "c"):
        small.add("2026-12-02", "p", letter_id=lid)
    assert list(small.ids) == ["b", "c"] and small.add("2026-12-02", "p", letter_id="a")
