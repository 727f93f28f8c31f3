"""How much one poll asks for: the listing window finds what this box takes in time."""

from appliance.core.pacing import ListingWindow


def test_no_room_no_poll():
    assert ListingWindow().limit(0, 2500, 0) == 0


def test_a_cold_start_asks_for_little():
    # A full page would hide 2 500 letters from every other box for the window.
    w = ListingWindow()
    assert w.limit(1000, 2500, 0) == 20
    assert w.limit(1000, 2500, 15) == 5  # letters listed and not yet answered count
    assert w.limit(10, 2500, 0) == 10  # the floor's room still caps it


def test_slow_start_doubles_then_a_miss_halves_once_per_event():
    w = ListingWindow(start=20)
    w.taken(20)
    assert w.size == 40  # one window's worth taken in time: doubled
    w.missed(now=100.0, hold=5.0)
    w.missed(now=101.0, hold=5.0)  # same listing missing together: one cut
    assert w.size == 20 and w.cuts == 1 and w.misses == 2
    w.taken(20)
    assert 20.9 < w.size < 21.1  # congestion avoidance: about one more per window
    w.missed(now=106.0, hold=5.0)
    assert 10 <= w.size < 11


def test_never_below_the_floor_nor_above_the_cap():
    w = ListingWindow(start=4, floor=2, cap=6)
    for t in range(10):
        w.missed(now=float(t * 10), hold=1.0)
    assert w.size == 2
    w.slow_start = True
    w.taken(50)
    assert w.size == 6
    assert w.limit(1000, 2500, 0) == 6
