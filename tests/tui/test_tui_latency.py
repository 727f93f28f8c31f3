"""What keeps the console quick under full ingest (#18, tui_bench): screens are kept between
visits and coming back to one redoes only what changed.  Behaviour only, never timings."""

from __future__ import annotations

import gc

from textual.app import App
from textual.widgets import DataTable, RichLog, Static
from textual.widgets._footer import FooterKey

import tui.screens.log as log_screen
from tests.fixtures.canned_daemon import EVENTS, LETTERS, CannedDaemon
from tests.tui.helpers import received, until
from tui.app import ConsoleApp
from tui.screens.dashboard import DashboardScreen
from tui.screens.detail import LetterDetailScreen
from tui.screens.letters import LettersScreen
from tui.screens.log import LogScreen
from tui.widgets.fit_table import FitTable
from tui.widgets.footer import ConsoleFooter


def lines(app) -> list[str]:
    return [s.text.rstrip() for s in app.screen.query_one(RichLog).lines]


async def test_coming_back_to_the_log_adds_only_the_new_events(tmp_path, monkeypatch):
    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path):
        app = ConsoleApp(path, refresh_seconds=3600)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("4")
            assert await until(pilot, lambda: app.events_received >= len(EVENTS) and len(lines(app)) >= 7)
            await pilot.pause(0.3)
            before = lines(app)
            strips = list(app.screen.query_one(RichLog).lines)
            await pilot.press("1")
            assert await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
            described = []
            real = log_screen.describe
            monkeypatch.setattr(log_screen, "describe", lambda ev: described.append(ev) or real(ev))
            for i in range(3):
                app.take_event({"event": "device", "data": {"name": f"new-{i}", "state": "idle",
                                                            "t": 1764079300.0 + i}})
            await pilot.press("4")
            assert await until(pilot, lambda: isinstance(app.screen, LogScreen)
                               and any("new-2  is now idle" in line for line in lines(app)))
            after = lines(app)
            kept = list(app.screen.query_one(RichLog).lines)[:len(strips)]
    assert [ev["data"]["name"] for ev in described] == ["new-0", "new-1", "new-2"]  # not all again
    assert after[:len(before)] == before and len(after) == len(before) + 3
    assert all(a is b for a, b in zip(kept, strips))  # the lines already there were not redrawn


async def test_a_log_that_missed_more_than_the_buffer_is_rebuilt(tmp_path):
    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path, events=False):
        app = ConsoleApp(path, refresh_seconds=3600)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("4")
            await pilot.pause(0.1)
            app.take_event({"event": "device", "data": {"name": "first", "state": "idle", "t": 1.0}})
            assert await until(pilot, lambda: any("first  is now idle" in line for line in lines(app)))
            await pilot.press("1")
            for i in range(app.events.maxlen + 5):  # more than the app keeps: the log starts over
                app.take_event({"event": "device", "data": {"name": f"d{i}", "state": "busy", "t": 2.0}})
            await pilot.press("4")
            last = f"d{app.events.maxlen + 4}  is now busy"
            assert await until(pilot, lambda: isinstance(app.screen, LogScreen)
                               and any(last in line for line in lines(app)))
            got = lines(app)
    assert not any("first  is now idle" in line for line in got)
    assert len(got) == log_screen.SHOWN


async def test_the_footer_is_not_rebuilt_when_its_keys_are_the_same(tmp_path):
    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path):
        app = ConsoleApp(path, refresh_seconds=3600)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("2")
            assert await until(pilot, lambda: isinstance(app.screen, LettersScreen)
                               and app.screen.query_one(ConsoleFooter).query(FooterKey))
            await pilot.pause(0.2)
            footer = app.screen.query_one(ConsoleFooter)
            keys = list(footer.query(FooterKey))
            await pilot.press("1")
            await pilot.pause(0.1)
            await pilot.press("2")
            await pilot.pause(0.1)
            await pilot.pause(0.2)
            same = list(footer.query(FooterKey))
            labels = [k.description for k in same]
    assert [id(k) for k in same] == [id(k) for k in keys]
    assert labels[:2] == ["Help", "Quit"] and "Next page" in labels


async def test_the_footer_follows_a_change_of_its_keys(tmp_path):
    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path):
        app = ConsoleApp(path, refresh_seconds=3600)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause(0.3)
            footer = app.screen.query_one(ConsoleFooter)
            assert await until(pilot, lambda: "Pause" in [k.description for k in footer.query(FooterKey)])
            keys = app.screen._bindings.key_to_bindings  # shares its lists with the class: replace, not edit
            keys["p"] = [keys["p"][0].__class__("p", "device('pause')", "Hold")]
            app.screen.refresh_bindings()
            assert await until(pilot, lambda: "Hold" in [k.description for k in footer.query(FooterKey)])


async def test_a_burst_of_device_events_refreshes_the_dashboard_once_or_twice(tmp_path):
    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path, events=False) as daemon:
        app = ConsoleApp(path, refresh_seconds=3600)
        async with app.run_test(size=(120, 30)) as pilot:
            assert await until(pilot, lambda: len(received(daemon, "status")) >= 1)
            await pilot.pause(0.6)
            asked = len(received(daemon, "status"))
            app.take_event({"event": "device", "data": {"name": "lf3000", "state": "busy", "t": 1.0}})
            assert await until(pilot, lambda: len(received(daemon, "status")) == asked + 1)  # at once
            for i in range(40):  # one burst, well inside the 0.5 s gap however slow the machine
                app.take_event({"event": "device", "data": {"name": "lf3000", "state": "idle", "t": 2.0 + i}})
            assert await until(pilot, lambda: len(received(daemon, "status")) == asked + 2)  # the rest: once
            await pilot.pause(0.8)
            assert len(received(daemon, "status")) == asked + 2


class TableApp(App):
    def compose(self):
        yield FitTable([("id", 6, 0), ("status", 10, 0), ("stage", 10, 1)], id="t", cursor_type="row")


def page(statuses: dict[str, str]) -> list[tuple[str, dict]]:
    return [(k, {"id": k, "status": v, "stage": "print"}) for k, v in statuses.items()]


async def test_a_table_update_with_one_changed_row_touches_only_that_cell(monkeypatch):
    app = TableApp()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one(FitTable)
        table.set_rows(page({"a": "ACCEPTED", "b": "ACCEPTED", "c": "ACCEPTED"}))
        await pilot.pause()
        table.move_cursor(row=2)
        calls = []
        for name in ("clear", "add_row", "remove_row"):
            monkeypatch.setattr(table, name, lambda *a, _n=name, **k: calls.append(_n))
        updated = []
        real_update = table.update_cell
        monkeypatch.setattr(table, "update_cell", lambda row, col, value, **k:
                            updated.append((row, col)) or real_update(row, col, value, **k))
        assert table.set_rows(page({"a": "ACCEPTED", "b": "PRINTED", "c": "ACCEPTED"}))
        await pilot.pause()
        assert calls == [] and updated == [("b", "status")]
        assert [str(c) for c in table.get_row("b")] == ["b", "PRINTED", "print"]
        assert table.cursor_row == 2
        assert not table.set_rows(page({"a": "ACCEPTED", "b": "PRINTED", "c": "ACCEPTED"}))  # same: untouched
        assert calls == [] and len(updated) == 1


async def test_a_table_with_other_rows_is_rebuilt_with_their_keys():
    app = TableApp()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one(FitTable)
        table.set_rows(page({"a": "ACCEPTED", "b": "ACCEPTED"}))
        await pilot.pause()
        table.set_rows(page({"c": "PRINTED", "d": "FAILED", "e": "ACCEPTED"}))  # the next page
        await pilot.pause()
        assert [r.key.value for r in table.ordered_rows] == ["c", "d", "e"]
        assert [str(c) for c in table.get_row("d")] == ["d", "FAILED", "print"]
        table.set_rows(page({"c": "PRINTED", "e": "ACCEPTED"}))  # one fewer: rebuilt too
        await pilot.pause()
        assert [r.key.value for r in table.ordered_rows] == ["c", "e"]


async def test_the_letters_screen_keeps_one_detail_screen_and_shows_each_letter_in_it(tmp_path):
    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path, events=False) as daemon:
        app = ConsoleApp(path, refresh_seconds=3600)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("2")
            assert await until(pilot, lambda: isinstance(app.screen, LettersScreen)
                               and app.screen.query_one("#letters-table", FitTable).row_count)
            letters = app.screen
            seen = []
            for row in (0, 1, 0):
                letters.query_one("#letters-table", FitTable).move_cursor(row=row)
                await pilot.press("enter")
                want = LETTERS[row]["id"]
                assert await until(pilot, lambda: isinstance(app.screen, LetterDetailScreen)
                                   and want in str(app.screen.query_one("#detail", Static).render()))
                seen.append(app.screen)
                assert LETTERS[1 - row]["id"] not in str(app.screen.query_one("#detail", Static).render())
                await pilot.press("escape")
                assert await until(pilot, lambda: app.screen is letters)
            asked = [a.get("id") for a in received(daemon, "letter")]
            assert seen[0].is_attached  # kept between visits
    assert seen[0] is seen[1] is seen[2]  # built once, not per letter
    assert asked == [LETTERS[0]["id"], LETTERS[1]["id"], LETTERS[0]["id"]]  # one load per visit


async def test_coming_back_to_the_letters_screen_keeps_its_table_rows(tmp_path):
    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path, events=False):
        app = ConsoleApp(path, refresh_seconds=3600)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("2")
            assert await until(pilot, lambda: isinstance(app.screen, LettersScreen)
                               and app.screen.query_one("#letters-table", FitTable).row_count)
            letters = app.screen
            rows = list(letters.query_one("#letters-table", FitTable).ordered_rows)
            await pilot.press("1")
            assert await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
            await pilot.press("2")
            await pilot.pause(0.3)
            again = list(app.screen.query_one("#letters-table", FitTable).ordered_rows)
            assert app.screen is letters
    assert len(again) == len(rows) and all(a is b for a, b in zip(again, rows))


async def test_the_console_keeps_its_start_up_objects_out_of_the_collector(tmp_path):
    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path, events=False):
        app = ConsoleApp(path, refresh_seconds=3600)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause(0.1)
            frozen = gc.get_freeze_count()
    assert frozen > 0
    assert gc.get_freeze_count() == 0  # given back when the console closes


async def test_a_table_keeps_a_few_pages_of_rendered_rows_not_thousands():
    app = TableApp()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one(FitTable)
        table.set_rows(page({f"r{i:03d}": "ACCEPTED" for i in range(500)}))
        await pilot.pause()
        for _ in range(60):
            await pilot.press("pagedown")
        assert table.cursor_row > 400
        caches = (table._cell_render_cache, table._row_render_cache, table._line_cache)
        assert all(len(c) <= c.maxsize for c in caches)
        assert table._cell_render_cache.maxsize <= 1000 and table._line_cache.maxsize <= 200


def count_cell_renders(monkeypatch) -> list[tuple[int, int]]:
    """(row, column) of every body cell rendered from now, by FitTable itself or by DataTable
    (the header row is -1)."""
    rendered: list[tuple[int, int]] = []
    real = DataTable._render_cell
    real_fresh = FitTable._fresh_cell

    def counting(self, row_index, column_index, *args, **kwargs):
        if row_index >= 0 and not fresh:
            rendered.append((row_index, column_index))
        return real(self, row_index, column_index, *args, **kwargs)

    def counting_fresh(self, row_index, column_index, *args, **kwargs):
        rendered.append((row_index, column_index))
        fresh.append(True)
        try:
            return real_fresh(self, row_index, column_index, *args, **kwargs)
        finally:
            fresh.pop()

    fresh: list[bool] = []
    monkeypatch.setattr(DataTable, "_render_cell", counting)
    monkeypatch.setattr(FitTable, "_fresh_cell", counting_fresh)
    return rendered


async def test_one_changed_cell_is_the_only_cell_rendered_again(monkeypatch):
    app = TableApp()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one(FitTable)
        table.set_rows(page({"a": "ACCEPTED", "b": "ACCEPTED", "c": "ACCEPTED"}))
        await pilot.pause()
        rendered = count_cell_renders(monkeypatch)
        table.set_rows(page({"a": "ACCEPTED", "b": "PRINTED", "c": "ACCEPTED"}))
        await pilot.pause()
        await pilot.pause()
        shown = "\n".join("".join(seg.text for seg in strip)
                          for strip in app.screen._compositor.render_strips())
    assert rendered == [(1, 1)]
    assert "PRINTED" in shown


async def test_a_new_page_of_rows_is_not_measured_cell_by_cell(monkeypatch):
    import textual.widgets._data_table as data_table

    app = TableApp()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one(FitTable)
        table.set_rows(page({"a": "ACCEPTED"}))
        await pilot.pause()
        measured = []
        real = data_table.measure
        monkeypatch.setattr(data_table, "measure", lambda *a, **k: measured.append(a[1]) or real(*a, **k))
        table.set_rows(page({f"r{i}": "PRINTED" for i in range(50)}))  # the next page
        await pilot.pause()
        await pilot.pause()
        assert measured == []
        assert table.virtual_size.height == 51  # 50 rows and the header
        assert [str(c) for c in table.get_row("r7")] == ["r7", "PRINTED", "print"]


async def test_a_restyled_table_does_not_render_its_cells_again(monkeypatch):
    app = TableApp()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one(FitTable)
        table.set_rows(page({"a": "ACCEPTED", "b": "ACCEPTED", "c": "ACCEPTED"}))
        await pilot.pause()
        rendered = count_cell_renders(monkeypatch)
        table.notify_style_update()  # what a screen coming back does to every widget
        await pilot.pause()
        await pilot.pause()
        assert rendered == []
        table.move_cursor(row=1)  # the cursor's row: its style changed, so rendered again
        await pilot.pause()
        await pilot.pause()
        assert sorted(set(rendered)) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]


async def test_visiting_screens_does_not_reparse_the_css_but_a_theme_change_still_restyles(
        tmp_path, monkeypatch):
    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path, events=False):
        app = ConsoleApp(path, refresh_seconds=3600)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause(0.2)
            reparsed = []
            real = app.stylesheet.reparse
            monkeypatch.setattr(app.stylesheet, "reparse",
                                lambda: reparsed.append(type(app.screen).__name__) or real())
            for key in "2414241":
                await pilot.press(key)
                await pilot.pause(0.1)
            assert reparsed == []
            assert isinstance(app.screen, DashboardScreen)
            app.theme = "textual-light" if app.theme != "textual-light" else "textual-dark"
            await pilot.pause(0.2)
            reparsed.clear()
            await pilot.press("4")
            await pilot.pause(0.2)
            assert reparsed == ["LogScreen"]  # styled again for the new theme
