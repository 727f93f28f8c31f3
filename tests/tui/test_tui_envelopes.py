"""The dashboard's envelope key: load and unload an envelope at the selected inserter (a
reload of its feeders), asserted on what the daemon then holds; a printer is refused."""

from textual.widgets import Input

from tui.app import ConsoleApp
from tui.screens.confirm import NoteScreen


async def test_envelope_key_loads_and_unloads_at_the_selected_inserter(daemon):
    sb, pipe, server, path = daemon
    assert await pipe.run_until_idle(timeout=30)
    before = pipe.envelope_stock.listing("inserter-1")
    app = ConsoleApp(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("e")  # the first row is a printer: nothing asked
        await pilot.pause(0.2)
        assert not isinstance(app.screen, NoteScreen)
        await pilot.press("down", "down", "down", "down")  # inserter-1
        await pilot.press("e")
        await pilot.pause(0.3)
        assert isinstance(app.screen, NoteScreen) and isinstance(app.focused, Input)
        await pilot.press(*"+client9-campaign9", "enter")
        await pilot.pause(0.3)
        assert "client9-campaign9" in pipe.envelope_stock.listing("inserter-1")
        await pilot.press("e")
        await pilot.pause(0.3)
        await pilot.press(*"-client9-campaign9", "enter")
        await pilot.pause(0.3)
        assert pipe.envelope_stock.listing("inserter-1") == before
    changes = [(h["action"], h["envelope"]) for h in pipe.envelope_stock.history()]
    assert changes == [("add", "client9-campaign9"), ("remove", "client9-campaign9")]
