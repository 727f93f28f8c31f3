"""The dashboard's deadlines line (#17): at risk, missed today and the next cut-off in one
line that still fits 80x24 with every device and alert row the dashboard had before."""

from __future__ import annotations

from textual.widgets import DataTable

from tests.fixtures.canned_daemon import CannedDaemon
from tests.tui.helpers import screen_text, until
from tui.app import ConsoleApp

DEADLINES = {"at_risk": 3, "missed_today": 2, "missed_total": 7, "missed": {"2026-12-02": {"notify-sameday": 2}},
             "next_cutoff": "2026-12-02T17:30+00:00", "rate_per_min": 12.5, "order": "edf", "risks": []}


async def test_dashboard_shows_deadlines_in_one_line_at_80x24(tmp_path):
    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path) as d:
        before = None
        for deadlines in (None, DEADLINES):
            if deadlines:
                d.state.status["deadlines"] = deadlines
            app = ConsoleApp(path, refresh_seconds=3600)
            async with app.run_test(size=(80, 24)) as pilot:
                await until(pilot, lambda: bool(app.status) and all(t.row_count for t in app.screen.query(DataTable)))
                await pilot.pause()
                text = screen_text(app)
                rows = {t.id: t.size.height for t in app.screen.query(DataTable)}
            if deadlines is None:
                before = rows
                assert "deadlines:" not in text  # a daemon without deadlines: nothing shown
                continue
    line = next(x for x in text.splitlines() if "deadlines:" in x)
    assert "at risk 3" in line and "missed today 2 (kept 7)" in line and "next cut-off 17:30 Wed" in line
    assert len(text.splitlines()) == 24 and all(len(x) <= 80 for x in text.splitlines())
    assert rows["devices"] == before["devices"]  # the device table kept its rows
