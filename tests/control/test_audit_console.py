"""The audit over the control socket, the CLI (table, CSV) and the console's Audit screen,
against a real daemon: pipeline + sandbox + LF-3000 simulator with its camera on a pty,
one piece spoiled by a foreign sheet and reprinted."""

import asyncio
import csv
import io
import time

import pytest
from textual.widgets import DataTable, Static

from appliance.api.client import SupplierClient
from appliance.cli.main import main as cli_main
from appliance.config.profile import load_profile
from appliance.config.settings import sandbox_api
from appliance.control.client import ControlClient
from appliance.control.server import ControlServer
from appliance.core.packs import load_packs
from appliance.pipeline.pipeline import Pipeline, PipelineSettings
from appliance.sandbox import Sandbox, SandboxOptions
from appliance.store.store import Store
from tests.fixtures import QUICK
from tests.fixtures.readback import readback_profile, settled
from tui.app import ConsoleApp
from tui.screens.audit import AuditScreen


@pytest.fixture
async def floor(tmp_path, sock_dir):
    sb = Sandbox(SandboxOptions(**QUICK, letters=10, bad_ratio=0.1, seed=21))
    await sb.start(host="127.0.0.1", port=0)
    state = tmp_path / "state"
    store = Store(state)
    client = SupplierClient(sandbox_api(sb.base_url))
    pipe = Pipeline(PipelineSettings(spool_dir=state / "spool", poll_interval=0.1, prove_after=0.2), client, store,
                    load_profile(readback_profile(tmp_path, '"read_foreign_at=2"')), load_packs(), state_dir=state)
    server = ControlServer(pipe, sock_dir / "c.sock")
    await pipe.start()
    await server.start()
    try:
        deadline = time.monotonic() + 30
        while not settled(sb, store):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        yield sb, pipe, str(sock_dir / "c.sock"), state
    finally:
        await server.stop()
        await pipe.stop()
        await client.aclose()
        store.close()
        await sb.stop()


async def test_audit_command_cli_csv_and_console_screen(floor, tmp_path, capsys):
    sb, pipe, path, state = floor
    async with ControlClient(path) as c:
        rows = (await c.call("audit"))["rows"]
    assert rows == pipe.audit.rows() and rows
    good = sum(l.kind == "good" for l in sb.letters.values())
    assert sum(r["expected"] for r in rows) == good + 1
    assert sum(r["reprinted"] for r in rows) == 1 and sum(r["enclosed"] for r in rows) == good

    out = tmp_path / "audit.csv"
    assert await asyncio.to_thread(cli_main, ["audit", "--socket", path, "--csv", str(out)]) == 0
    assert capsys.readouterr().out == f"{len(rows)} batch(es) written to {out}\n"
    parsed = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(int(r["batch"]), int(r["expected"]), int(r["diverted"]), int(r["reprinted"])) for r in parsed] == \
        [(r["batch"], r["expected"], r["diverted"], r["reprinted"]) for r in rows]
    assert await asyncio.to_thread(cli_main, ["audit", "--socket", path]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["inserter", "batch", "expected", "enclosed"]
    assert len(table) == len(rows) + 1 and table[1].split()[0] == "lf3000"

    app = ConsoleApp(path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("6")
        assert isinstance(app.screen, AuditScreen)
        grid = app.screen.query_one("#audit-table", DataTable)
        for _ in range(100):
            if grid.row_count == len(rows):
                break
            await pilot.pause(0.05)
        assert grid.row_count == len(rows)
        shown = [[str(c) for c in grid.get_row_at(i)] for i in range(grid.row_count)]  # cells: plain Text
        assert [(s[0], int(s[1]), int(s[2]), int(s[5])) for s in shown] == \
            [(r["device"], r["batch"], r["expected"], r["reprinted"]) for r in rows]
        note = str(app.screen.query_one("#audit-note", Static).render())
        assert f"{good + 1} expected" in note and "1 reprinted" in note


def test_cli_reads_a_stopped_appliances_state(tmp_path, capsys):
    assert cli_main(["audit", "--state", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "no audit facts here" in err and err.count("\n") == 1
