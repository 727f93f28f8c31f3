"""The console at 80x24 (#16): every screen usable without scrolling sideways, dialogs
that wrap, a footer that keeps Help and Quit, a help that says it scrolls, a returns desk
that can be left.  Each test failed before its fix."""

from __future__ import annotations

import pytest
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Input

from tests.fixtures.canned_daemon import LETTERS, REFUSED_ID, CannedDaemon
from tests.tui.helpers import screen_text, until, widget_text
from tui.app import ConsoleApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.detail import LetterDetailScreen
from tui.screens.help import HelpScreen


@pytest.fixture
def canned(tmp_path):
    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path) as d:
        yield d, path


def filled(app) -> bool:
    tables = app.screen.query(DataTable)
    return bool(app.status) and bool(tables) and all(t.row_count for t in tables)


async def test_footer_keeps_help_and_quit_at_80_columns(canned):
    _, path = canned
    app = ConsoleApp(path, refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        def footer() -> str:
            return screen_text(app).splitlines()[-1]

        for key in ("1", "2", "5"):
            await pilot.press(key)
            assert await until(pilot, lambda: filled(app) and "Quit" in footer())
            assert "? Help" in footer() and "q Quit" in footer(), footer()
        app.push_screen(LetterDetailScreen(REFUSED_ID))  # the most keys of all
        assert await until(pilot, lambda: "Timeline" in screen_text(app) and "Mark FAILED" in footer())
        assert "? Help" in footer() and "q Quit" in footer(), footer()


async def test_mi_columns_fit_80_columns_without_scrolling(canned):
    _, path = canned
    app = ConsoleApp(path, refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        assert await until(pilot, lambda: filled(app))
        table = app.screen.query_one("#mi-table", DataTable)
        assert table.virtual_size.width <= table.size.width  # nothing off to the right
        text = screen_text(app)
        assert "state" in text and "+12 to send" in text and "⚠ uncertain" in text


async def test_letters_keep_specification_at_80_columns_and_show_dash_for_archived(canned):
    _, path = canned
    app = ConsoleApp(path, refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        assert await until(pilot, lambda: filled(app))
        lines = screen_text(app).splitlines()
        assert any("specification" in line for line in lines)
        assert any(LETTERS[3]["id"] in line and "notify-braille" in line for line in lines)
        archived = [line for line in lines if "archived" in line]
        assert len(archived) == 3 and all(line.rstrip().endswith("-") for line in archived), archived


async def test_confirm_dialogs_wrap_and_show_the_whole_letter_id(canned):
    _, path = canned
    app = ConsoleApp(path, refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(LetterDetailScreen(REFUSED_ID))
        assert await until(pilot, lambda: "Timeline" in screen_text(app))
        await pilot.press("s")  # the longest question: "Send again (or retry intake) for letter <id>?"
        assert await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause(0.05)
        text = widget_text(app, "#dialog")
        assert "Send again (or retry intake) for" in text and REFUSED_ID in text, text
        await pilot.press("n")
        # the returns desk's: "Send RETURNED R05 (Addressee gone away/Refused) for <id>?"
        await pilot.press("3")
        app.screen.query_one("#returns-id", Input).value = LETTERS[3]["id"]  # as a wedge scanner types it
        await pilot.press("enter")
        assert await until(pilot, lambda: not app.screen.query_one("#reasons").disabled)
        await pilot.press("down", "down", "down", "down", "enter")
        assert await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause(0.05)
        text = widget_text(app, "#dialog")
        assert "Addressee gone away/Refused" in text and LETTERS[3]["id"] in text, text


async def test_help_says_it_scrolls_and_scrolls_by_keys(canned):
    _, path = canned
    app = ConsoleApp(path, refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.pause(0.05)
        assert "scroll" in screen_text(app)
        box = app.screen.query_one("#dialog", VerticalScroll)
        assert box.max_scroll_y > 0  # taller than 24 lines
        await pilot.press("pagedown")
        assert await until(pilot, lambda: box.scroll_y > 0)
        assert "submit the day to Notify" in screen_text(app)  # the last lines, reached by keys
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_returns_desk_esc_leaves_and_digits_go_to_the_field_only_with_focus(canned):
    _, path = canned
    app = ConsoleApp(path, refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        box = app.screen.query_one("#returns-id", Input)
        assert await until(pilot, lambda: box.has_focus)
        await pilot.press("1", "2")  # focused: digits are part of a letter id
        assert box.value == "12" and app.current_mode == "returns"
        await pilot.press("escape")  # clears and leaves the field
        await pilot.pause(0.05)
        assert box.value == "" and not box.has_focus
        await pilot.press("2")  # now a digit switches screens as everywhere
        assert await until(pilot, lambda: app.current_mode == "letters")
        await pilot.press("3")
        assert await until(pilot, lambda: app.current_mode == "returns" and box.has_focus)
        await pilot.press("escape", "escape")  # twice: back to the dashboard
        assert await until(pilot, lambda: isinstance(app.screen, DashboardScreen))


async def test_table_cells_from_the_daemon_keep_their_brackets(tmp_path):
    from tests.fixtures.canned_daemon import DEVICES

    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path, events=False) as daemon:
        daemon.state.status["devices"] = {"[b]inserter[/b]": {**DEVICES["lf3000"], "detail": "tray [2] empty"}}
        app = ConsoleApp(path, refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            assert await until(pilot, lambda: filled(app))
            text = screen_text(app)
            assert "[b]inserter[/b]" in text and "tray [2] empty" in text, text


def test_a_long_device_detail_keeps_its_end():
    from tui.screens.dashboard import tail

    assert tail("/tmp/pytest-of-root/pytest-9/state/spool/mono-duplex", 22) == "…ate/spool/mono-duplex"
    assert tail("link up", 22) == "link up"
