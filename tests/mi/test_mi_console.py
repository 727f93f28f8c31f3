"""MI through the running daemon: control socket, CLI over the socket, the TUI MI screen."""

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from appliance.api.client import SupplierClient
from appliance.cli.main import main as cli_main
from appliance.config.profile import load_profile
from appliance.config.settings import sandbox_api
from appliance.control.client import ControlClient, ControlError
from appliance.control.server import ControlServer
from appliance.core.packs import load_packs
from appliance.mi.service import MiService, mi_client
from appliance.pipeline.pipeline import Pipeline, PipelineSettings
from appliance.sandbox import Sandbox, SandboxOptions
from appliance.store.store import Store
from tests.fixtures import QUICK
from tests.fixtures.mi_floor import floor_profile
from tui.app import ConsoleApp
from tui.screens.confirm import ConfirmScreen


@pytest.fixture
async def mi_daemon(tmp_path):
    sock = Path(tempfile.mkdtemp(prefix="mi-", dir="/tmp"))
    sb = Sandbox(SandboxOptions(**QUICK, letters=15, bad_ratio=0.0, seed=5))
    await sb.start(host="127.0.0.1", port=0)
    state = tmp_path / "state"
    store = Store(state)
    client = SupplierClient(sandbox_api(sb.base_url))
    profile = load_profile(floor_profile(tmp_path))
    pipe = Pipeline(PipelineSettings(spool_dir=state / "spool", poll_interval=0.1, prove_after=0.2),
                    client, store, profile, load_packs(), state_dir=state)
    mi = MiService(state, profile.mi, load_packs(), mi_client(sandbox_api(sb.base_url)))
    pipe.listeners.append(mi.journal)
    server = ControlServer(pipe, sock / "c.sock", mi=mi)
    await pipe.start()
    await server.start()
    try:
        assert await pipe.run_until_idle(timeout=30)
        yield sb, pipe, mi, str(sock / "c.sock")
    finally:
        await server.stop()
        await pipe.stop()
        mi.close()
        await mi.client.aclose()
        await client.aclose()
        store.close()
        await sb.stop()
        shutil.rmtree(sock, ignore_errors=True)


async def test_mi_over_the_control_socket_and_cli(mi_daemon, capsys):
    sb, pipe, mi, path = mi_daemon
    async with ControlClient(path) as c:
        rep = await c.call("mi_report", date="today")
        assert rep["events"] > 0 and rep["lines"]
        with pytest.raises(ControlError, match="not over yet"):
            await c.call("mi_submit", date="today")
    capsys.readouterr()
    assert await asyncio.to_thread(cli_main, ["mi", "preview", "--date", "today", "--socket", path]) == 0
    out = capsys.readouterr().out
    assert "sheets-white-80" in out and f"{rep['events']} counted device events" in out
    assert await asyncio.to_thread(cli_main, ["mi", "submit", "--date", "today", "--partial",
                                              "--socket", path]) == 0
    assert len(sb.mi) == len(rep["lines"])
    assert sum(r["attributes"]["quantity"] for r in sb.mi.values()) == sum(l["quantity"] for l in rep["lines"])


async def test_tui_mi_screen_shows_lines_and_submits_after_confirmation(mi_daemon):
    sb, pipe, mi, path = mi_daemon
    rep = mi.report("today")
    app = ConsoleApp(path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("5")
        await pilot.pause(0.3)
        await pilot.press("right_square_bracket")  # yesterday -> today
        await pilot.pause(0.3)
        table = app.screen.query_one("#mi-table", DataTable)
        assert table.row_count == len(rep["lines"])
        assert rep["day"] in str(app.screen.query_one("#mi-title", Static).render())
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause(0.2)
        assert len(sb.mi) == 0
        await pilot.press("s", "y")
        await pilot.pause(1.0)
        assert len(sb.mi) == len(rep["lines"])
        assert "verified" in str(app.screen.query_one("#mi-note", Static).render())
