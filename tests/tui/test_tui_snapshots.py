"""Snapshot tests of the console's main screens at 80x24 and 120x40.

The console attaches to a canned daemon (real socket, fixed answers), so each screen
renders the same on every run.  Regenerate after an intended change with
``pytest tests/test_tui_snapshots.py --snapshot-update`` and review the SVG diff.
"""

import pytest

from tests.fixtures.canned_daemon import CannedDaemon
from tui.app import ConsoleApp

SOCKET = "/tmp/appliance-snapshot-console.sock"  # fixed: the path shows in the title bar


@pytest.fixture
def daemon(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "UTC")  # alert times render in local time
    time.tzset()
    with CannedDaemon(SOCKET) as d:
        yield d
    monkeypatch.undo()
    time.tzset()


async def _settle(pilot):
    from textual.widgets import DataTable

    for _ in range(250):
        if pilot.app.status and pilot.app.screen.query(DataTable).first().row_count:
            break
        await pilot.pause(0.02)
    # column widths follow the rows a frame later: lay out again before the picture
    await pilot.pause(0.3)
    pilot.app.screen.refresh(layout=True)
    await pilot.pause(0.3)


def _letters(pilot):
    async def go(p):
        from textual.widgets import DataTable

        await _settle(p)
        await p.press("2")
        for _ in range(200):  # wait for the listing, however slow the machine is today
            tables = p.app.screen.query(DataTable)
            if tables and tables.first().row_count:
                break
            await p.pause(0.02)
        await p.pause(0.3)
        p.app.screen.refresh(layout=True)
        await p.pause(0.3)
    return go


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_dashboard_snapshot(snap_compare, daemon, size):
    assert snap_compare(ConsoleApp(SOCKET, refresh_seconds=3600), terminal_size=size, run_before=_settle)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_letters_snapshot(snap_compare, daemon, size):
    assert snap_compare(ConsoleApp(SOCKET, refresh_seconds=3600), terminal_size=size,
                        run_before=_letters(None))


@pytest.mark.parametrize("size", [(80, 24)], ids=["80x24"])
def test_help_snapshot(snap_compare, daemon, size):
    async def go(p):
        await _settle(p)
        await p.press("question_mark")
        await p.pause(0.3)
    assert snap_compare(ConsoleApp(SOCKET, refresh_seconds=3600), terminal_size=size, run_before=go)
