"""Marking FAILED from the console (#16): the profile's agreed reason codes in a picker
(arrows/Enter, digits, Esc), from a letter's detail, from a hold's "it is lost" and for
many letters at once; a reason typed where the profile agrees none; the daemon's refusal
shown as it was written (its "[failure_reasons]" used to be eaten as markup)."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input

from tests.fixtures.canned_daemon import HELD_ID, LETTERS, CannedDaemon
from tests.tui.helpers import received, screen_text, toasts, until
from tui.app import ConsoleApp
from tui.screens.confirm import FailReasonScreen, NoteScreen
from tui.screens.detail import LetterDetailScreen


@pytest.fixture
def canned(tmp_path):
    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path, events=False) as d:
        yield d, path


async def open_detail(pilot, app, letter_id):
    assert await until(pilot, lambda: bool(app.status))
    app.push_screen(LetterDetailScreen(letter_id))
    assert await until(pilot, lambda: "Timeline" in screen_text(app))


async def test_detail_offers_the_agreed_codes_and_sends_fail_with_the_code(canned):
    daemon, path = canned
    lid = LETTERS[0]["id"]
    app = ConsoleApp(path, refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_detail(pilot, app, lid)
        await pilot.press("x")
        assert await until(pilot, lambda: isinstance(app.screen, FailReasonScreen))
        text = screen_text(app)
        assert "DAMAGED: damaged in the machine [jam]" in text and "LOST" in text and lid in text
        await pilot.press("escape")  # cancelled: nothing sent
        assert await until(pilot, lambda: isinstance(app.screen, LetterDetailScreen))
        assert received(daemon, "fail") == []
        await pilot.press("x")
        assert await until(pilot, lambda: isinstance(app.screen, FailReasonScreen))
        await pilot.press("enter")  # the first, highlighted: DAMAGED
        assert await until(pilot, lambda: received(daemon, "fail"))
        assert received(daemon, "fail") == [{"id": lid, "code": "DAMAGED"}]
        assert await until(pilot, lambda: "FAILED DAMAGED" in toasts(app))  # the daemon's answer
        await pilot.press("x")
        assert await until(pilot, lambda: isinstance(app.screen, FailReasonScreen))
        await pilot.press("2")  # by its number: LOST (not the "Letters" screen)
        assert await until(pilot, lambda: len(received(daemon, "fail")) == 2)
        assert received(daemon, "fail")[1] == {"id": lid, "code": "LOST"}
        assert app.current_mode == "dashboard" and isinstance(app.screen, LetterDetailScreen)


async def test_a_holds_it_is_lost_needs_an_agreed_code_too(canned):
    daemon, path = canned
    app = ConsoleApp(path, refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_detail(pilot, app, HELD_ID)
        await pilot.press("h")
        assert await until(pilot, lambda: "it is lost (FAILED)" in screen_text(app))
        await pilot.press("4")  # it is lost
        assert await until(pilot, lambda: isinstance(app.screen, FailReasonScreen))
        await pilot.press("down", "down", "enter")  # MISPRINT
        assert await until(pilot, lambda: received(daemon, "resolve"))
    assert received(daemon, "resolve") == [{"id": HELD_ID, "outcome": "fail", "code": "MISPRINT"}]


async def test_marking_many_letters_failed_at_once(canned):
    daemon, path = canned
    app = ConsoleApp(path, refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        assert await until(pilot, lambda: bool(app.screen.query(DataTable))
                           and app.screen.query_one(DataTable).row_count)
        await pilot.press("space", "space")  # the first two letters
        assert await until(pilot, lambda: "2 marked" in screen_text(app))
        await pilot.press("x")
        assert await until(pilot, lambda: isinstance(app.screen, FailReasonScreen))
        assert "Mark 2 letters FAILED" in screen_text(app)
        await pilot.press("1")
        assert await until(pilot, lambda: len(received(daemon, "fail")) == 2)
        assert await until(pilot, lambda: "2 of 2 letter(s) marked FAILED" in toasts(app))
    assert received(daemon, "fail") == [{"id": LETTERS[0]["id"], "code": "DAMAGED"},
                                        {"id": LETTERS[1]["id"], "code": "DAMAGED"}]


async def test_without_agreed_codes_the_reason_is_typed(tmp_path):
    path = str(tmp_path / "ctl.sock")
    lid = LETTERS[0]["id"]
    with CannedDaemon(path, old=True, events=False) as daemon:  # a daemon before the codes
        app = ConsoleApp(path, refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_detail(pilot, app, lid)
            await pilot.press("x")
            assert await until(pilot, lambda: isinstance(app.screen, NoteScreen))
            assert isinstance(app.focused, Input)
            await pilot.press("enter")  # empty: not taken
            assert isinstance(app.screen, NoteScreen)
            await pilot.press(*"torn", "enter")
            assert await until(pilot, lambda: received(daemon, "fail"))
    assert received(daemon, "fail") == [{"id": lid, "reason": "torn"}]


async def test_the_daemons_refusal_is_shown_as_written(canned):
    daemon, path = canned
    # the console knows a code the profile no longer agrees (it was edited and reloaded)
    daemon.state.status["failure_reasons"] = {"OLDCODE": "retired"}
    app = ConsoleApp(path, refresh_seconds=3600)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_detail(pilot, app, LETTERS[0]["id"])
        await pilot.press("x")
        assert await until(pilot, lambda: isinstance(app.screen, FailReasonScreen))
        await pilot.press("enter")
        assert await until(pilot, lambda: "(the profile's [failure_reasons])" in toasts(app)), toasts(app)
