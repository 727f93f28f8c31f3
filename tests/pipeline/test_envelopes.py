"""Envelopes loaded at inserters: a letter goes only to an inserter holding its pack's exact
envelope id (a client-branded envelope never used for another pack); a letter whose
envelope nobody holds is held before printing, with one alert per envelope, and printed
and enclosed in the right envelope once an operator loads it over the control socket."""

import argparse
import asyncio
import json
import os
from pathlib import Path

from appliance.cli import devices
from appliance.control.client import ControlClient
from appliance.control.server import ControlServer
from appliance.core.errors import ControlError
from tests.fixtures.floor import Floor, new_sandbox

PROFILE = """
[profile]
name = "envelopes"
on_no_printer = "hold"

[[printer]]
name = "press"
driver = "file"
paper_sizes = ["A4"]
max_weight_gsm = 200
colour = true
duplex = true
job_seconds = 0.01

[[inserter]]
name = "branded"
driver = "sim"
piece_seconds = 0.002
envelopes = ["client1-campaign1"]

[[inserter]]
name = "stock"
driver = "sim"
piece_seconds = 0.002
envelopes = ["economy-c5"]

[[franker]]
name = "franker-1"
driver = "sim"
piece_seconds = 0.001
"""


def ledger(state: Path, device: str, name: str) -> dict[str, dict]:
    path = state / "devices" / device / name
    if not path.exists():
        return {}
    return {r["letter_id"]: r for r in map(json.loads, path.read_text().splitlines())}


def printed(state: Path) -> set[str]:
    path = state / "output" / "press" / "printed.jsonl"
    return {json.loads(x)["letter_id"] for x in path.read_text().splitlines()} if path.exists() else set()


async def test_envelope_held_before_print_then_loaded_and_branded_never_mixed(tmp_path, capsys):
    profile = tmp_path / "profile.toml"
    profile.write_text(PROFILE)
    sb = await new_sandbox(good=0)
    state = tmp_path / "state"
    sock = Path(os.environ.get("TMPDIR", "/tmp")) / f"env-{os.getpid()}.sock"
    try:
        async with Floor(sb, tmp_path, profile=profile) as f:
            server = ControlServer(f.pipe, sock)
            await server.start()
            try:
                branded = [sb.add_letter(specification_id="client1-campaign1", pages=2) for _ in range(3)]
                # notify-c5 is enclosed in economy-c4, which no inserter holds at the start.
                c5 = [sb.add_letter(specification_id="notify-c5", pages=2) for _ in range(4)]
                await f.wait_final(branded, timeout=30)
                await f.wait(lambda: all((f.store.get(i) or {}).get("stage") == "held" for i in c5))
                # Held BEFORE printing: nothing of theirs went to the press.
                assert not printed(state) & set(c5)
                alerts = {a.key: a for a in f.pipe.alerts.open_alerts()}
                a = alerts["routing:envelope:economy-c4"]
                assert a.severity == "critical" and a.message == "load envelope economy-c4: 4 letters waiting"
                assert [k for k in alerts if k.startswith("routing:envelope:")] == [
                    "routing:envelope:economy-c4"]
                async with ControlClient(sock) as c:
                    listed = await c.call("envelopes", inserter="branded")
                    assert listed["envelopes"] == ["client1-campaign1"]
                    status = await c.call("status")
                    assert status["envelopes"] == {"branded": ["client1-campaign1"], "stock": ["economy-c5"]}
                    for bad in ({"inserter": "nope", "action": "add", "envelope": "economy-c4"},
                                {"inserter": "stock", "action": "remove", "envelope": "economy-c4"}):
                        try:
                            await c.call("envelopes", **bad)
                        except ControlError as e:
                            assert "\n" not in str(e) and ("nope" in str(e) or "economy-c4" in str(e)), e
                        else:
                            raise AssertionError(f"{bad} was accepted")
                # The CLI an operator types at the reload, over the same socket.
                cli = argparse.Namespace(what=["envelopes", "stock", "add", "economy-c4"], socket=str(sock),
                                         json=False, config=None, profile=None)
                assert await asyncio.to_thread(devices.cmd_devices, cli) == 0
                assert capsys.readouterr().out.strip() == "stock holds economy-c4, economy-c5"
                await f.wait_final(c5, timeout=30)
                assert "routing:envelope:economy-c4" not in {a.key for a in f.pipe.alerts.open_alerts()}
                events = [h.get("event") for h in (f.store.get(c5[0]) or {}).get("history", [])]
                assert "wait-envelope economy-c4" in events, events
            finally:
                await server.stop()
    finally:
        await sb.stop()
    assert all(sb.letters[i].status == "DISPATCHED" for i in branded + c5)
    # What the machines did: each letter in its own pack's envelope, at the inserter holding it.
    at_branded = ledger(state, "branded", "enclosed.jsonl")
    at_stock = ledger(state, "stock", "enclosed.jsonl")
    assert set(at_branded) == set(branded) and not set(at_stock) & set(branded)
    assert {r["envelope"] for r in at_branded.values()} == {"client1-campaign1"}
    assert set(at_stock) == set(c5) and {r["envelope"] for r in at_stock.values()} == {"economy-c4"}
    # The reload is kept (0600) for the next start, and in the timeline.
    saved = state / "envelopes.json"
    assert saved.stat().st_mode & 0o777 == 0o600
    assert json.loads(saved.read_text())["inserters"]["stock"] == ["economy-c4", "economy-c5"]
    log = [json.loads(x) for x in (state / "envelopes.jsonl").read_text().splitlines()]
    assert [(e["inserter"], e["action"], e["envelope"]) for e in log] == [("stock", "add", "economy-c4")]


def test_loaded_envelopes_survive_a_restart_and_the_profile_is_only_the_first_start(tmp_path):
    from appliance.core.errors import ActionRefused
    from appliance.pipeline.envelopes import EnvelopeStock

    first = EnvelopeStock(tmp_path, {"a": frozenset({"economy-c5"}), "b": frozenset()})
    assert first.takes("b", "anything") and not first.takes("a", "first-c5")  # no list = any
    assert first.change("a", "add", "first-c5", who="sam") == "a holds economy-c5, first-c5"
    assert first.change("a", "remove", "economy-c5") == "a holds first-c5"
    mistakes = {("c", "add", "x"): "no inserter named 'c'; inserters: a, b",
                ("a", "remove", "economy-c5"): "envelope economy-c5 is not loaded at a (holds first-c5)",
                ("b", "remove", "x"): "takes any envelope", ("a", "add", "two words"): "no spaces"}
    for bad, words in mistakes.items():
        try:
            first.change(*bad)
        except ActionRefused as e:
            assert words in str(e) and "\n" not in str(e), e
        else:
            raise AssertionError(bad)
    # Restarted with the same profile, and with a new inserter added to it.
    again = EnvelopeStock(tmp_path, {"a": frozenset({"economy-c5"}), "b": frozenset(),
                                     "new": frozenset({"x"})})
    assert again.listing("a") == ["first-c5"] and again.listing("b") is None and again.listing("new") == ["x"]
    assert (tmp_path / "envelopes.json").stat().st_mode & 0o777 == 0o600
    assert [(h["action"], h["envelope"], h["by"]) for h in again.history()] == [
        ("add", "first-c5", "sam"), ("remove", "economy-c5", "operator")]


async def test_envelope_unloaded_while_the_letter_prints_waits_at_the_inserter_until_loaded(tmp_path):
    from appliance.pipeline.operator import Operator

    profile = tmp_path / "profile.toml"
    profile.write_text(PROFILE.replace("job_seconds = 0.01", "job_seconds = 1.0"))
    sb = await new_sandbox(good=0)
    state = tmp_path / "state"
    try:
        async with Floor(sb, tmp_path, profile=profile) as f:
            op = Operator(f.pipe)
            lid = sb.add_letter(specification_id="client1-campaign1", pages=2)
            await f.wait(lambda: (f.store.get(lid) or {}).get("stage") == "printing")
            await op.envelopes("branded", "remove", "client1-campaign1", who="sam")
            await f.wait(lambda: f.store.get(lid)["stage"] == "wait-inserter")
            alert = next(a for a in f.pipe.alerts.open_alerts()
                         if a.key == "routing:envelope:client1-campaign1")
            assert alert.message == "load envelope client1-campaign1: 1 letters waiting"
            assert not ledger(state, "stock", "enclosed.jsonl")  # never enclosed in another pack's envelope
            await op.envelopes("branded", "add", "client1-campaign1", who="sam")
            await f.wait_final([lid])
            assert "routing:envelope:client1-campaign1" not in {a.key for a in f.pipe.alerts.open_alerts()}
    finally:
        await sb.stop()
    assert sb.letters[lid].status == "DISPATCHED"
    assert ledger(state, "branded", "enclosed.jsonl")[lid]["envelope"] == "client1-campaign1"
