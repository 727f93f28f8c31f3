"""What a key costs before its effect is painted (#18, tui_bench): table cells built
directly, no repaint hold when a kept screen comes back, no wasted frame on a new page.
Behaviour only, never timings."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import App
from textual.screen import Screen
from textual.widgets import DataTable

from tests.fixtures.canned_daemon import CannedDaemon
from tests.tui.helpers import until
from tui.app import ConsoleApp
from tui.screens.dashboard import DashboardScreen
from tui.screens.letters import PAGE, LettersScreen
from tui.widgets.fit_table import FitTable
from tui.widgets.labels import letter_status

CELLS = {"plain": "letter-000001", "styled": Text("letter-000002", style="reverse bold"),
         "status": letter_status("REJECTED"), "markup-like": "[x] mono", "empty": "",
         "spans": Text.assemble("ab", ("cd", "bold red"), "ef"), "too long": "x" * 40,
         "wide": "封筒 C5"}


class CellsApp(App):
    def compose(self):
        yield FitTable([("cell", 14, 0), ("other", 8, 0)], id="t", cursor_type="row", zebra_stripes=True)


async def test_one_line_cells_are_built_directly_and_look_as_datatable_renders_them(monkeypatch):
    app = CellsApp()
    async with app.run_test(size=(40, 14)) as pilot:
        table = app.query_one(FitTable)
        table.set_rows([(name, {"cell": cell, "other": "ok"}) for name, cell in CELLS.items()])
        await pilot.pause()
        slow = []
        real = DataTable._render_cell
        monkeypatch.setattr(DataTable, "_render_cell",
                            lambda self, r, *a, **k: (r >= 0 and slow.append(r)) or real(self, r, *a, **k))
        width = table.ordered_columns[0].get_render_width(table)
        same = []
        for row in range(len(CELLS)):
            for cursor, hover in ((False, False), (True, False), (False, True)):
                for base in (table.rich_style, Style(bgcolor="red")):
                    table._shown_cells.clear()
                    ours = table._render_cell(row, 0, base, width, cursor, hover)
                    built = len(slow)
                    theirs = real(table, row, 0, base, width, cursor, hover)
                    same.append(list(Segment.simplify(ours[0])) == list(Segment.simplify(theirs[0])))
                    slow = slow[:built]
    assert all(same) and len(same) == len(CELLS) * 6
    too_long = list(CELLS).index("too long")
    assert set(slow) == {too_long}  # only the cell that does not fit went through DataTable


async def test_a_screen_visited_before_is_painted_without_textuals_repaint_hold(tmp_path, monkeypatch):
    held = []
    real = App.delay_update
    monkeypatch.setattr(App, "delay_update", lambda self, *a, **k: held.append(1) or real(self, *a, **k))
    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path, events=False):
        app = ConsoleApp(path, refresh_seconds=3600)
        async with app.run_test(size=(120, 30)) as pilot:
            for key, screen in (("2", LettersScreen), ("1", DashboardScreen), ("2", LettersScreen),
                                ("1", DashboardScreen), ("2", LettersScreen)):
                await pilot.press(key)
                assert await until(pilot, lambda: isinstance(app.screen, screen))
    assert len(held) == 1  # the letters screen's first visit, while it is built


async def test_a_new_page_moves_the_cursor_once_its_rows_are_in(tmp_path, monkeypatch):
    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path, events=False):
        app = ConsoleApp(path, refresh_seconds=3600)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("2")
            assert await until(pilot, lambda: isinstance(app.screen, LettersScreen)
                               and app.screen.query_one("#letters-table", FitTable).row_count > 3)
            table = app.screen.query_one("#letters-table", FitTable)
            table.move_cursor(row=3)
            await pilot.pause()
            while_asked = []
            real = app.call

            async def call(cmd, **args):
                if cmd == "letters":
                    while_asked.append(table.cursor_row)
                return await real(cmd, **args)

            monkeypatch.setattr(app, "call", call)
            await pilot.press("n")
            assert await until(pilot, lambda: app.screen.page_start == PAGE and while_asked
                               and table.cursor_row == 0)
    assert while_asked == [3]  # the old page was not repainted with its cursor moved


async def test_a_screen_shown_again_is_not_restyled_unless_the_stylesheet_changed(tmp_path, monkeypatch):
    restyled = []
    real = App.update_styles
    monkeypatch.setattr(App, "update_styles", lambda self, node, *a, **k:
                        (isinstance(node, Screen) and restyled.append(type(node).__name__))
                        or real(self, node, *a, **k))
    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path, events=False):
        app = ConsoleApp(path, refresh_seconds=3600)
        async with app.run_test(size=(120, 30)) as pilot:
            for round in (1, 2):  # each screen's first visit (the first screen's styles settle then)
                if round == 2:
                    restyled.clear()
                for key, screen in (("2", LettersScreen), ("1", DashboardScreen)):
                    await pilot.press(key)
                    assert await until(pilot, lambda: isinstance(app.screen, screen))
                await pilot.pause(0.1)
            shown_again = list(restyled)
            table = app.screen.query_one("#devices", FitTable)
            dark = table.styles.background
            app.theme = "textual-light"
            await pilot.pause(0.1)
            await pilot.press("2")
            assert await until(pilot, lambda: isinstance(app.screen, LettersScreen))
            await pilot.pause(0.1)
            light = app.screen.query_one("#letters-table", FitTable).styles.background
    assert shown_again == []
    assert light != dark  # a theme change still restyles the screens kept
