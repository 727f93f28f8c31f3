"""Alerts on the dashboard (#16): open ones most severe first with count and last seen,
Enter opens the letter or the device's row, 'a' acknowledges with the operator's name,
closed ones leave the list; the header counts come from the snapshot's own fields; a daemon
from before the alert life cycle is shown without a crash."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Static

from tests.fixtures.canned_daemon import HELD_ID, CannedDaemon
from tests.tui.helpers import received, toasts, until
from tui.app import ConsoleApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.detail import LetterDetailScreen


@pytest.fixture
def canned(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("USER", "nightshift")
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path, events=False) as d:
        yield d, path
    monkeypatch.undo()
    time.tzset()


def rows(app) -> list[dict[str, str]]:
    table = app.screen.query_one("#alerts", DataTable)
    labels = [label for label, _, _ in table.shown]  # the columns this width shows
    return [dict(zip(labels, map(str, table.get_row_at(i)))) for i in range(table.row_count)]


def summary(app) -> str:
    return str(app.screen.query_one("#summary", Static).render())


async def ready(pilot, app):
    assert await until(pilot, lambda: bool(app.status) and app.screen.query_one("#alerts").row_count)


async def test_open_alerts_by_severity_with_count_and_last_seen_and_header_counts(canned):
    _, path = canned
    app = ConsoleApp(path, refresh_seconds=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        shown = rows(app)
        assert [r["severity"] for r in shown] == ["✖ CRIT", "⚠ warn", "⚠ warn", "ℹ info"]
        assert shown[0]["count"] == "37" and shown[0]["last seen"] == "14:01:30"
        assert "[cartridge K]" in shown[0]["message"]  # the daemon's text as written
        assert shown[1]["letter"] == HELD_ID
        text = summary(app)
        for words in ("held 2", "refused by Notify 1", "waiting for retry 2", "alerts 4 (1 critical)"):
            assert words in text, text


async def test_enter_opens_the_letter_or_the_device_row(canned):
    _, path = canned
    app = ConsoleApp(path, refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await pilot.press("tab")  # to the alerts
        assert app.focused.id == "alerts"
        await pilot.press("enter")  # fm200's ink: its device row
        devices = app.screen.query_one("#devices", DataTable)
        assert await until(pilot, lambda: devices.has_focus)
        assert devices.coordinate_to_cell_key((devices.cursor_row, 0)).row_key.value == "fm200"
        await pilot.press("tab", "down", "enter")  # the held letter's alert
        assert await until(pilot, lambda: isinstance(app.screen, LetterDetailScreen))
        assert app.screen.letter_id == HELD_ID


async def test_a_acknowledges_with_the_operators_name_and_the_alert_leaves(canned):
    daemon, path = canned
    app = ConsoleApp(path, refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await pilot.press("tab", "a")
        assert await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # declined: nothing sent
        await pilot.pause(0.05)
        assert received(daemon, "ack") == []
        await pilot.press("a", "y")
        assert await until(pilot, lambda: len(rows(app)) == 3)
        assert received(daemon, "ack") == [{"key": "device:fm200:ink-empty", "who": "nightshift"}]
        assert [r["severity"] for r in rows(app)] == ["⚠ warn", "⚠ warn", "ℹ info"]
        assert "alerts 3" in summary(app) and "critical" not in summary(app)
        assert "acknowledged by nightshift" in toasts(app)


async def test_a_daemon_without_the_alert_life_cycle_is_shown(tmp_path):
    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path, old=True, events=False) as daemon:
        app = ConsoleApp(path, refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot, app)
            assert len(rows(app)) == 4 and rows(app)[0]["severity"] == "⚠ warn"  # no severity: a warning
            assert "refused by Notify 1" in summary(app) and "alerts 4" in summary(app)
            await pilot.press("tab", "a")  # nothing to acknowledge by: says so, sends nothing
            await pilot.pause(0.1)
            assert isinstance(app.screen, DashboardScreen)
            assert "cannot acknowledge" in toasts(app)
            assert received(daemon, "ack") == []
