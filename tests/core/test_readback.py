"""Read-back verdicts (pure): every anomaly an inserter's reader can see, one code each."""

import pytest

from appliance.core.markcode import encode
from appliance.core.readback import COMPLETE, REASONS, hand_pulled, judge


def m(k, n=3, run=41, letter="L-1"):
    return encode(letter, k, n, run)


@pytest.mark.parametrize("reads, code, words", [
    ([m(1), m(2), m(3)], COMPLETE, "all 3 sheet(s) read"),
    ([m(3), m(1), m(2)], COMPLETE, "all 3"),  # order of feeding does not matter
    ([m(1), m(3)], "READBACK_MISSING", "sheet(s) 2 of 3 not read"),
    ([m(1)], "READBACK_MISSING", "sheet(s) 2, 3 of 3"),
    ([m(1), m(2), m(3), m(1, 2, 7, "L-2")], "READBACK_FOREIGN", "sheet 1/2 of letter L-2"),
    ([m(1), m(2), m(3, 4)], "READBACK_FOREIGN", "sheet marked 3/4, the letter has 3"),
    ([m(1), m(2), m(3, run=40)], "READBACK_STALE", "sheet 3/3 from print run 40, current run 41"),
    ([m(1), m(2), m(2), m(3)], "READBACK_DUPLICATE", "sheet 2/3 read 2 times"),
    ([m(1), "?", m(3)], "READBACK_UNREADABLE", "unreadable mark '?'"),
    ([m(1), "QR:garbage", m(2), m(3)], "READBACK_UNREADABLE", "unreadable mark 'QR:garbage'"),
    ([], "READBACK_NOTHING", "pulled by hand"),
])
def test_verdicts(reads, code, words):
    v = judge("L-1", 3, 41, reads)
    assert v.code == code
    assert words in v.reason
    assert v.complete == (code == COMPLETE)


def test_a_swap_between_neighbours_names_both_problems():
    """Sheet 3 of L-1 went into L-2's envelope: L-1 is missing it, L-2 has a foreign sheet."""
    v = judge("L-1", 3, 41, [m(1), m(2)])
    assert v.code == "READBACK_MISSING"
    v2 = judge("L-2", 2, 7, [m(1, 2, 7, "L-2"), m(2, 2, 7, "L-2"), m(3)])
    assert v2.code == "READBACK_FOREIGN" and "letter L-1" in v2.reason


def test_several_problems_most_telling_code_first_all_listed():
    v = judge("L-1", 3, 41, [m(1), m(1), m(2, run=9)])
    assert v.code == "READBACK_STALE"
    assert "run 9" in v.reason and "read 2 times" in v.reason and "sheet(s) 2, 3 of 3 not read" in v.reason


def test_unknown_run_skips_the_stale_check():
    assert judge("L-1", 2, 0, [m(1, 2, 5), m(2, 2, 6)]).complete


def test_hand_pulled_and_every_code_has_a_text():
    assert hand_pulled().code == "READBACK_HAND_PULLED"
    assert all(text and "\n" not in text for text in REASONS.values())
