"""The log screen (key 4) reads as sentences with times (#16): HH:MM:SS, the device, the
letter, what happened; never a raw event dict."""

from __future__ import annotations

import re

import pytest
from textual.widgets import RichLog

from tests.fixtures.canned_daemon import LETTERS, REFUSED_ID, CannedDaemon
from tests.tui.helpers import until
from tui.app import ConsoleApp
from tui.screens.log import describe


@pytest.fixture
def utc(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def test_log_lines_are_timestamped_sentences(tmp_path, utc):
    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path) as _:
        app = ConsoleApp(path, refresh_seconds=3600)
        async with app.run_test(size=(160, 30)) as pilot:
            await pilot.press("4")

            def lines() -> list[str]:
                return [s.text.rstrip() for s in app.screen.query_one(RichLog).lines]

            assert await until(pilot, lambda: len(lines()) >= 7)
            got = lines()
    assert all(re.match(r"\d\d:\d\d:\d\d  \S", line) for line in got), got
    assert not any("{" in line or "'event'" in line for line in got), got
    assert "13:58:20  mono-duplex  is now busy" in got
    assert f"13:58:30  mono-duplex  letter {LETTERS[1]['id']} printed, next enclosing" in got
    assert f"13:58:40  lf3000  letter {LETTERS[5]['id']} marked FAILED (DEVICE_DIVERTED)" in got
    assert "14:01:30  fm200  CRITICAL: ink at 0%: refill the franker's ink [cartridge K] (seen 37 times)" in got
    assert "14:01:35  fm200  is now offline (link down: reconnecting)" in got
    assert "13:43:20  mono-duplex  alert cleared: paper jam in tray 2" in got
    assert f"14:01:40  letter {REFUSED_ID} accepted, its update REFUSED by Notify" in got


def test_an_event_without_a_time_gets_the_time_it_arrived(utc):
    line = describe({"event": "device", "data": {"name": "lf3000", "state": "idle"}, "received": 1764079200.0})
    assert line.plain == "14:00:00  lf3000  is now idle"
    closed = describe({"event": "alert", "data": {"key": "k", "source": "fm200", "message": "ink low",
                                                  "state": "closed", "closed_by": "nightshift",
                                                  "closed_at": 1764079260.0}})
    assert closed.plain == "14:01:00  fm200  alert acknowledged by nightshift: ink low"
    odd = describe({"event": "mystery", "data": {"x": 1}, "received": 1764079200.0})
    assert odd.plain == "14:00:00  mystery: x=1"


def test_an_alerts_count_updates_are_not_logged_again():
    from tui.screens.log import worth_a_line

    def alert(count, state="open"):
        return {"event": "alert", "data": {"key": "device:fm200:ink-empty", "count": count, "state": state}}

    seen: set = set()
    got = [worth_a_line(ev, seen) for ev in (alert(1), alert(2), alert(3), alert(3, "closed"), alert(1))]
    assert got == [True, False, False, True, True]  # opened, (updates), closed, opened again
    assert worth_a_line({"event": "alert", "data": {"message": "old daemon"}}, seen)
