"""Snapshot tests of every console screen and dialog at 80x24 and 120x40.

The console attaches to a canned daemon (real socket, fixed answers and times), so each
screen renders the same on every run.  Regenerate after an intended change with
``pytest tests/tui/test_tui_snapshots.py --snapshot-update`` and review each SVG.
"""

import pytest
from textual.widgets import DataTable, RichLog

from tests.fixtures.canned_daemon import LETTERS, REFUSED_ID, CannedDaemon
from tui.app import ConsoleApp
from tui.screens.detail import LetterDetailScreen

SOCKET = "/tmp/appliance-snapshot-console.sock"  # fixed: the path shows in the title bar
SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])


@pytest.fixture
def daemon(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "UTC")  # times render in local time
    monkeypatch.setenv("USER", "nightshift")  # the operator named in the ack dialog
    time.tzset()
    with CannedDaemon(SOCKET) as d:
        yield d
    monkeypatch.undo()
    time.tzset()


async def until(pilot, cond, tries: int = 250) -> None:
    for _ in range(tries):
        if cond():
            break
        await pilot.pause(0.02)
    await pilot.pause(0.05)


def table_filled(pilot) -> bool:
    tables = pilot.app.screen.query(DataTable)
    return bool(tables) and all(t.row_count for t in tables)


async def _settle(pilot):
    """Status and events in, tables filled."""
    await until(pilot, lambda: pilot.app.status and len(pilot.app.events) >= 7 and table_filled(pilot))


def steps(*keys, screen=None, ready=None):
    """run_before: settle on the dashboard, press ``keys`` (or push ``screen``), wait for ``ready``."""
    async def go(p):
        await _settle(p)
        if screen:
            p.app.push_screen(screen())
            await until(p, lambda: detail_loaded(p))
        for k in keys:
            await p.press(k)
            await p.pause(0.02)
        await until(p, lambda: ready(p) if ready else table_filled(p))
    return go


def detail_loaded(p) -> bool:
    found = p.app.screen.query("#detail")
    return bool(found) and "Timeline" in str(found.first().render())


def refused_detail():
    return LetterDetailScreen(REFUSED_ID)


def dialog_up(p) -> bool:
    return bool(p.app.screen.query("#dialog"))


def snap(snap_compare, size, run_before):
    return snap_compare(ConsoleApp(SOCKET, refresh_seconds=3600), terminal_size=size, run_before=run_before)


@SIZES
def test_dashboard_snapshot(snap_compare, daemon, size):
    assert snap(snap_compare, size, _settle)


@SIZES
def test_letters_snapshot(snap_compare, daemon, size):
    assert snap(snap_compare, size, steps("2"))


@SIZES
def test_letter_detail_snapshot(snap_compare, daemon, size):
    assert snap(snap_compare, size, steps(screen=refused_detail, ready=detail_loaded))


@SIZES
def test_help_snapshot(snap_compare, daemon, size):
    assert snap(snap_compare, size, steps("question_mark", ready=dialog_up))


@SIZES
def test_log_snapshot(snap_compare, daemon, size):
    assert snap(snap_compare, size,
                steps("4", ready=lambda p: len(p.app.screen.query_one(RichLog).lines) >= 7))


@SIZES
def test_mi_snapshot(snap_compare, daemon, size):
    assert snap(snap_compare, size, steps("5"))


@SIZES
def test_returns_desk_snapshot(snap_compare, daemon, size):
    # a letter looked up: the reasons are offered
    async def go(p):
        await _settle(p)
        await p.press("3")
        await until(p, lambda: p.app.screen.query("#returns-id"))
        p.app.screen.query_one("#returns-id").value = LETTERS[3]["id"]  # as a wedge scanner types it
        await p.press("enter")
        await until(p, lambda: not p.app.screen.query_one("#reasons").disabled)
    assert snap(snap_compare, size, go)


@SIZES
def test_audit_snapshot(snap_compare, daemon, size):
    assert snap(snap_compare, size, steps("6"))


@SIZES
def test_confirm_dialog_snapshot(snap_compare, daemon, size):
    assert snap(snap_compare, size, steps("r", screen=refused_detail, ready=dialog_up))


@SIZES
def test_note_dialog_snapshot(snap_compare, daemon, size):
    assert snap(snap_compare, size, steps("n", screen=refused_detail, ready=dialog_up))


@SIZES
def test_failed_picker_snapshot(snap_compare, daemon, size):
    assert snap(snap_compare, size, steps("x", screen=refused_detail, ready=dialog_up))


@SIZES
def test_ack_dialog_snapshot(snap_compare, daemon, size):
    assert snap(snap_compare, size, steps("tab", "a", ready=dialog_up))
