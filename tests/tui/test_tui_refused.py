"""A letter Notify refused, as the console shows it and as an operator settles it: the
count always on the dashboard, REFUSED in the listing, the API's reason in the detail,
'n' marks it handled with a note that reaches the daemon."""

from __future__ import annotations

from textual.widgets import Input, Static

from tests.fixtures.canned_daemon import REFUSED_ID, CannedDaemon
from tui.app import ConsoleApp
from tui.screens.detail import LetterDetailScreen, timeline_text
from tui.screens.letters import parse_filters


async def _until(pilot, cond, tries: int = 200) -> bool:
    for _ in range(tries):
        if cond():
            return True
        await pilot.pause(0.02)
    return cond()


async def test_refused_letter_is_shown_and_marked_handled_with_a_note(tmp_path):
    path = str(tmp_path / "ctl.sock")
    with CannedDaemon(path) as daemon:
        app = ConsoleApp(path)
        async with app.run_test(size=(120, 40)) as pilot:
            summary = app.screen.query_one("#summary", Static)
            assert await _until(pilot, lambda: "refused by Notify 1" in str(summary.render()))
            app.push_screen(LetterDetailScreen(REFUSED_ID))

            def detail() -> str:
                found = app.screen.query("#detail")
                return str(found.first().render()) if found else ""

            assert await _until(pilot, lambda: "Refused by Notify (422)" in detail())
            await pilot.press("n")
            assert await _until(pilot, lambda: bool(app.screen.query(Input)))
            await pilot.press(*"cancelled at Notify", "enter")
            assert await _until(pilot, lambda: any(r.get("cmd") == "handled" for r in daemon.received))
    handled = next(r for r in daemon.received if r.get("cmd") == "handled")
    assert handled["args"] == {"id": REFUSED_ID, "note": "cancelled at Notify"}


def test_refused_filter_and_timeline_words():
    assert parse_filters("refused=yes status=accepted") == {"refused": True, "status": "ACCEPTED"}
    text = timeline_text({"id": "L1", "refused": {"http_status": 400, "detail": "bad reasonCode"},
                          "history": [{"t": 1.0, "event": "sent", "status": "ACCEPTED"}],
                          "outbox": [{"created": 1.0, "status": "ACCEPTED", "refused": {"status": 400}}]}).plain
    assert "sent to Notify (202)" in text and "refused by Notify" in text
    assert "Refused by Notify (400): bad reasonCode" in text
