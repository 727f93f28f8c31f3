"""Console screens driven with Textual's pilot against a real daemon (pipeline + sandbox):
every assertion is on what the daemon did, not only on what the screen shows."""

import asyncio
import re

from textual.widgets import DataTable, Input, OptionList, RichLog, Static

from tui.app import ConsoleApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.detail import LetterDetailScreen
from tui.screens.help import HelpScreen
from tui.screens.letters import parse_filters


def dispatched(sb):
    return [l.id for l in sb.letters.values() if l.status == "DISPATCHED"]


def text_of(widget) -> str:
    return str(widget.render())


async def test_dashboard_lists_devices_and_pauses_after_confirmation(daemon):
    sb, pipe, server, path = daemon
    assert await pipe.run_until_idle(timeout=30)
    app = ConsoleApp(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        table = app.screen.query_one("#devices", DataTable)
        assert table.row_count == 6
        assert "DISPATCHED" in text_of(app.screen.query_one("#summary", Static))
        await pilot.press("down")  # colour-press
        await pilot.press("p")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # declined: nothing sent
        await pilot.pause(0.1)
        assert pipe.device_state["colour-press"] != "paused"
        await pilot.press("p", "y")
        await pilot.pause(0.3)
        assert pipe.device_state["colour-press"] == "paused"
        await pilot.press("d", "y")
        await pilot.pause(0.3)
        assert pipe.device_state["colour-press"] == "draining"
        await pilot.press("u", "y")
        await pilot.pause(0.3)
        assert pipe.device_state["colour-press"] == "idle"


async def test_returns_desk_scan_pick_confirm_sends_returned(daemon):
    sb, pipe, server, path = daemon
    assert await pipe.run_until_idle(timeout=30)
    target = dispatched(sb)[0]
    app = ConsoleApp(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await pilot.pause(0.2)
        assert isinstance(app.focused, Input)
        await pilot.press(*"nosuchletter", "enter")  # a wedge scanner types then Enter
        await pilot.pause(0.2)
        assert "not known" in text_of(app.screen.query_one("#returns-letter", Static))
        app.screen.query_one("#returns-id", Input).value = ""
        await pilot.press(*target, "enter")
        await pilot.pause(0.3)
        assert isinstance(app.focused, OptionList)
        await pilot.press("enter")  # R01 is highlighted first
        assert isinstance(app.screen, ConfirmScreen)
        assert "R01" in text_of(app.screen.query_one("#question"))
        await pilot.press("y")
        await pilot.pause(0.3)
        assert "RETURNED R01" in text_of(app.screen.query_one("#returns-result", Static))
        assert isinstance(app.focused, Input) and app.focused.value == ""  # ready for the next scan
    assert pipe.store.get(target)["status"] == "RETURNED"
    assert await pipe.run_until_idle(timeout=10)
    assert (sb.letters[target].status, sb.letters[target].reason_code) == ("RETURNED", "R01")


async def test_returns_desk_pick_another_reason(daemon):
    sb, pipe, server, path = daemon
    assert await pipe.run_until_idle(timeout=30)
    target = dispatched(sb)[1]
    app = ConsoleApp(path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3", *target, "enter")
        await pilot.pause(0.3)
        await pilot.press("down", "down", "down", "enter", "y")  # R04
        await pilot.pause(0.3)
    assert pipe.store.get(target)["reason_code"] == "R04"


async def test_letters_search_detail_timeline_and_fail(daemon):
    sb, pipe, server, path = daemon
    assert await pipe.run_until_idle(timeout=30)
    target = dispatched(sb)[2]
    app = ConsoleApp(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await pilot.pause(0.3)
        table = app.screen.query_one("#letters-table", DataTable)
        assert table.row_count == 12
        await pilot.press("slash", *target[:10])
        await pilot.pause(0.3)
        assert table.row_count == 1
        await pilot.press("escape", "enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, LetterDetailScreen)
        detail = text_of(app.screen.query_one("#detail", Static))
        assert target in detail and "verified" in detail and "applied at Notify" in detail
        await pilot.press("c", "y")  # DISPATCHED cannot be cancelled: the daemon says why
        await pilot.pause(0.3)
        assert pipe.store.get(target)["status"] == "DISPATCHED"
        await pilot.press("x")  # the demo profile agrees no codes: the reason is typed
        await pilot.pause(0.2)
        assert isinstance(app.focused, Input)
        await pilot.press(*"torn", "enter")
        await pilot.pause(0.3)
        assert pipe.store.get(target)["status"] == "FAILED"
        assert pipe.store.get(target)["reason_text"] == "torn"
        assert "FAILED" in text_of(app.screen.query_one("#detail", Static))
        await pilot.press("escape")
        assert not isinstance(app.screen, LetterDetailScreen)


async def test_help_and_log_screens(daemon):
    sb, pipe, server, path = daemon
    assert await pipe.run_until_idle(timeout=30)
    app = ConsoleApp(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "Returns desk" in text_of(app.screen.query_one("#help-text"))
        await pilot.press("escape")
        await pilot.press("4")
        await pilot.pause(0.2)
        while len(server._subscribers) < 1:
            await pilot.pause(0.05)
        async with __import__("appliance.control.client", fromlist=["ControlClient"]).ControlClient(path) as c:
            await c.call("pause", device="audio-cd")
        for _ in range(40):
            await pilot.pause(0.05)
            lines = [str(s.text) for s in app.screen.query_one(RichLog).lines]
            if any("audio-cd  is now paused" in l for l in lines):
                break
        assert any(re.match(r"\d\d:\d\d:\d\d  audio-cd  is now paused", l) for l in lines), lines


async def test_closing_the_console_mid_run_does_not_affect_printing(daemon):
    sb, pipe, server, path = daemon
    app = ConsoleApp(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("q")
    assert await pipe.run_until_idle(timeout=30)
    assert all(l.status in ("DISPATCHED", "REJECTED") for l in sb.letters.values())
    await asyncio.sleep(0.1)
    assert not server._subscribers


def test_filter_text_parsing():
    assert parse_filters("status=accepted device=mono spec=x age=60 junk nope=1") == {
        "status": "ACCEPTED", "device": "mono", "specification": "x", "min_age": 60.0}
