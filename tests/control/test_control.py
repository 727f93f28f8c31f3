"""Control socket against a real pipeline and the local sandbox: what did the daemon do?"""

import asyncio
import json
from pathlib import Path

import pytest

from appliance.cli.main import main as cli_main
from appliance.control.client import ControlClient, ControlError, DaemonNotRunning
from appliance.control.server import ControlServer
from appliance.store.storage import Archive
from appliance.store.store import Store


async def test_socket_mode_and_status(daemon):
    sb, pipe, server, path = daemon
    assert oct(Path(path).stat().st_mode & 0o777) == "0o660"
    assert await pipe.run_until_idle(timeout=30)
    async with ControlClient(path) as c:
        s = await c.call("status")
    assert set(s["devices"]) == {"mono-duplex", "colour-press", "braille-embosser", "audio-cd",
                                 "inserter-1", "franker-1"}
    assert sum(s["counts"].values()) == 12
    assert s["counts"] == pipe.store.counts()
    assert len(s["throughput"]) == 10 and sum(s["throughput"]) >= 1


async def test_letters_filters_and_letter_timeline(daemon):
    sb, pipe, server, path = daemon
    assert await pipe.run_until_idle(timeout=30)
    async with ControlClient(path) as c:
        every = await c.call("letters", limit=100)
        assert every["total"] == 12 and len(every["letters"]) == 12
        rejected = await c.call("letters", status="REJECTED")
        want = {l.id for l in sb.letters.values() if l.status == "REJECTED"}
        assert {r["id"] for r in rejected["letters"]} == want and want
        some = next(iter(sb.letters))
        by_id = await c.call("letters", q=some[3:12])
        assert some in {r["id"] for r in by_id["letters"]}
        page = await c.call("letters", limit=5, offset=10)
        assert len(page["letters"]) == 2
        good = next(l.id for l in sb.letters.values() if l.status == "DISPATCHED")
        rec = await c.call("letter", id=good)
        events = [h["event"] for h in rec["history"]]
        assert events[0] == "listed" and "verified" in events
        assert [h["status"] for h in rec["history"] if h["event"] == "sent"] == \
            ["ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED"]
        proofs = [h for h in rec["history"] if h["event"] in ("proven", "superseded")]
        assert proofs[-1]["event"] == "proven" and proofs[-1]["status"] == "DISPATCHED"
        assert not rec["outbox"]
        with pytest.raises(ControlError, match="not known"):
            await c.call("letter", id="nope")
        with pytest.raises(ControlError, match="unknown command"):
            await c.call("launch")


async def test_actions_reach_the_daemon_and_the_api(daemon):
    sb, pipe, server, path = daemon
    assert await pipe.run_until_idle(timeout=30)
    good = next(l.id for l in sb.letters.values() if l.status == "DISPATCHED")
    async with ControlClient(path) as c:
        assert "paused" in await c.call("pause", device="mono-duplex")
        assert pipe.device_state["mono-duplex"] == "paused"
        assert "draining" in await c.call("drain", device="colour-press")
        assert pipe.device_state["colour-press"] == "draining"
        await c.call("resume", device="mono-duplex")
        assert pipe.device_state["mono-duplex"] == "idle"
        with pytest.raises(ControlError, match="no device named"):
            await c.call("pause", device="toaster")
        assert "RETURNED R01" in await c.call("return", id=good, reason="r01")
        with pytest.raises(ControlError, match="R01-R10|unknown return reason"):
            await c.call("return", id=good, reason="R11")
        with pytest.raises(ControlError, match="can no longer be cancelled"):
            await c.call("cancel", id=good)
    assert await pipe.run_until_idle(timeout=10)
    assert sb.letters[good].status == "RETURNED"
    assert sb.letters[good].reason_code == "R01"


async def test_two_consoles_see_the_same_events(daemon):
    sb, pipe, server, path = daemon
    assert await pipe.run_until_idle(timeout=30)
    seen: list[list[dict]] = [[], []]

    async def watch(i, ready):
        async with ControlClient(path) as c:
            agen = c.events()
            first = asyncio.ensure_future(agen.__anext__())
            ready.set()
            seen[i].append(await first)
            async for ev in agen:
                seen[i].append(ev)
                states = [e["data"].get("state") for e in seen[i]]
                if "draining" in states and states[-1] == "idle" and states.index("draining") < len(states) - 1:
                    return

    readies = [asyncio.Event(), asyncio.Event()]
    watchers = [asyncio.create_task(watch(i, readies[i])) for i in range(2)]
    for r in readies:
        await r.wait()
    while len(server._subscribers) < 2:
        await asyncio.sleep(0.01)
    async with ControlClient(path) as c:
        await c.call("pause", device="audio-cd")
        await c.call("resume", device="audio-cd")
        await c.call("drain", device="audio-cd")
        await c.call("resume", device="audio-cd")
    await asyncio.wait_for(asyncio.gather(*watchers), 10)
    states = [[(e["event"], e["data"]["name"], e["data"]["state"]) for e in s] for s in seen]
    assert states[0] == states[1]
    assert ("device", "audio-cd", "paused") in states[0]
    assert ("device", "audio-cd", "draining") in states[0]


async def test_slow_console_is_dropped_printing_goes_on(daemon, monkeypatch):
    sb, pipe, server, path = daemon
    monkeypatch.setattr("appliance.control.server.EVENT_QUEUE", 2)
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(b'{"id":1,"cmd":"subscribe"}\n')
    await writer.drain()
    assert json.loads(await reader.readline())["ok"]
    while not server._subscribers:
        await asyncio.sleep(0.01)
    q = next(iter(server._subscribers.values()))
    for _ in range(q.maxsize + 1):  # the pump cannot run between these: the queue overflows
        server._on_change("alert", {"message": "x"})
    assert not server._subscribers
    writer.close()
    assert await pipe.run_until_idle(timeout=30)  # the pipeline never noticed


async def test_garbage_requests_get_one_line_errors(daemon):
    sb, pipe, server, path = daemon
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(b"not json\n")
    writer.write(b'{"id": 2, "cmd": "pause", "args": {"printer": "x"}}\n')
    await writer.drain()
    a = json.loads(await reader.readline())
    b = json.loads(await reader.readline())
    writer.close()
    assert not a["ok"] and "JSON" in a["error"]
    assert b["id"] == 2 and not b["ok"] and "bad arguments" in b["error"]


async def test_cli_against_the_daemon(daemon, capsys):
    sb, pipe, server, path = daemon
    assert await pipe.run_until_idle(timeout=30)
    good = next(l.id for l in sb.letters.values() if l.status == "DISPATCHED")
    assert await asyncio.to_thread(cli_main, ["status", "--socket", path]) == 0
    assert "mono-duplex" in capsys.readouterr().out
    assert await asyncio.to_thread(cli_main, ["letters", "--status", "DISPATCHED", "--socket", path]) == 0
    assert good in capsys.readouterr().out
    assert await asyncio.to_thread(cli_main, ["pause", "franker-1", "--socket", path]) == 0
    assert pipe.device_state["franker-1"] == "paused"
    assert await asyncio.to_thread(cli_main, ["return", good, "--reason", "R09", "--socket", path]) == 0
    assert pipe.store.get(good)["reason_code"] == "R09"


def test_cli_refuses_bad_reason_locally_and_says_daemon_not_running(capsys, sock_dir):
    missing = str(sock_dir / "none.sock")
    assert cli_main(["return", "abc", "--reason", "R11", "--socket", missing]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "R01" in err and "not running" not in err
    assert cli_main(["status", "--socket", missing]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not running" in err and "appliance demo --hold" in err


async def test_client_says_daemon_not_running(sock_dir):
    with pytest.raises(DaemonNotRunning, match="appliance run --config"):
        await ControlClient(sock_dir / "x.sock").connect()


def store_with_archive(path: Path, n: int) -> Store:
    """A real store that knows ``n`` archived letters (one archive append, as after months
    of work: its index is built on open) and five hot ones on a device."""
    Archive(path / "archive").append("2026-12-01", [
        {"id": f"arch{i:06d}", "status": "DISPATCHED" if i % 10 else "REJECTED", "rev": 6,
         "specification_id": "notify-c5"} for i in range(n)])
    ticks = iter(range(1_000_000))
    store = Store(path, clock=lambda: 1e9 + next(ticks))
    for i in range(5):
        store.add_letter(f"hot{i}", "s", "g", "0" * 64)
        store.set_status(f"hot{i}", "ACCEPTED")
        store.update(f"hot{i}", stage="printing", device="mono-duplex")
    return store


async def test_letters_with_100k_archived(tmp_path):
    class P:
        store = store_with_archive(tmp_path / "state", 100_000)
        listeners = []

    try:
        server = ControlServer(P(), "/tmp/unused.sock", operator=object())
        res = await server.cmd_letters(limit=10, offset=0)
        assert res["total"] == 100_005
        assert [r["id"] for r in res["letters"][:5]] == [f"hot{i}" for i in range(4, -1, -1)]
        # archived letters follow, most recently archived first
        assert res["letters"][5] == {"id": "arch099999", "status": "DISPATCHED", "stage": "archived",
                                     "specification_id": "notify-c5"}
        res = await server.cmd_letters(limit=3, offset=100_002)
        assert [r["id"] for r in res["letters"]] == ["arch000002", "arch000001", "arch000000"]
        res = await server.cmd_letters(q="arch0999", limit=200)
        assert res["total"] == 100
        res = await server.cmd_letters(status="REJECTED", limit=1, offset=9_999)
        assert res["total"] == 10_000 and res["letters"][0]["id"] == "arch000000"
        res = await server.cmd_letters(status="REJECTED", limit=2, offset=0)
        assert [r["id"] for r in res["letters"]] == ["arch099990", "arch099980"]
        res = await server.cmd_letters(device="mono-duplex")
        assert res["total"] == 5  # archived rows carry no device: excluded by that filter
    finally:
        P.store.close()
