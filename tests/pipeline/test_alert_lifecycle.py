"""Alerts on the real floor, over the control socket: one alert per cause, updated while the
condition holds, closed when it clears or when a person acknowledges it."""

import asyncio
import json
import stat

import pytest

from appliance.cli.main import main as cli_main
from appliance.control.client import ControlClient, ControlError
from appliance.control.server import ControlServer
from tests.fixtures.floor import Floor, new_sandbox


def _by_key(alerts):
    return {a["key"]: a for a in alerts}


async def _alert_event(stream, key):
    async for msg in stream:
        if msg["event"] == "alert" and msg["data"]["key"] == key:
            return msg["data"]


async def test_alert_life_cycle_on_the_floor(tmp_path, sock_dir, capsys):
    sb = await new_sandbox(good=0)
    try:
        async with Floor(sb, tmp_path) as f:
            server = ControlServer(f.pipe, sock_dir / "c.sock")
            await server.start()
            try:
                await _run(sb, f, server, capsys)
            finally:
                await server.stop()
        journal = tmp_path / "state" / "audit" / "alerts" / "acks.jsonl"
        (line,) = [json.loads(x) for x in journal.read_text().splitlines()]
        assert line["who"] == "Sam" and line["letter_id"] and line["t"] and line["key"].startswith("letter:")
        assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    finally:
        await sb.stop()


async def _run(sb, f, server, capsys):
    franker = f.pipe.devices["franker-1"]
    # What the FM-200 says when its ink runs out: an alert and a stopped machine (said twice).
    franker.emit("device.alert", message="out of ink; refill to continue")
    franker.emit("device.state", state="stopped")
    franker.emit("device.alert", message="out of ink; refill to continue")
    await f.wait(lambda: f.pipe.device_state["franker-1"] == "stopped")
    ids = sb.add_letters(25, bad_ratio=0)
    await f.wait(lambda: f.store.stage_count("wait-franker") == 25, timeout=30)
    async with ControlClient(server.path) as c:
        s = await c.call("status")
        got = _by_key(s["alerts"])
        # 25 letters behind one cause: one alert each, not 25 symptoms that hide the cause
        assert sum(1 for a in s["alerts"] if a["key"] == "routing:no-franker") == 1
        waits = got["routing:no-franker"]
        assert waits["count"] == 25 and waits["severity"] == "critical"
        ink = got["device:franker-1:out-of-ink"]
        assert ink["count"] == 2 and ink["severity"] == "critical" and ink["device"] == "franker-1"
        assert ink["state"] == "open" and ink["t"] == ink["last_seen"] >= ink["opened"]
        assert s["alert_counts"]["critical"] >= 2
        assert await asyncio.to_thread(cli_main, ["alerts", "--socket", str(server.path)]) == 0
        out = capsys.readouterr().out
        assert "routing:no-franker" in out and "x25" in out and "device:franker-1:out-of-ink" in out

        # A letter alert a person sees to: acknowledged over the socket, with who and when.
        lid = ids[3]
        f.pipe.devices["inserter-1"].emit("device.alert", letter_id=lid,
                                          message="pull envelope 0001/0002: address not read")
        key = f"letter:{lid}:inserter-1-pull-envelope-address-not-read"
        await f.wait(lambda: f.pipe.alerts.get(key) is not None)
        listed = _by_key((await c.call("alerts"))["open"])
        assert listed[key]["letter_id"] == lid and listed[key]["device"] == "inserter-1"
        with pytest.raises(ControlError, match="who"):
            await c.call("ack", key=key, who=" ")
        with pytest.raises(ControlError, match="no open alert"):
            await c.call("ack", key="device:nope:jam", who="Sam")
        async with ControlClient(server.path) as watcher:
            told = asyncio.create_task(_alert_event(watcher.events(), key))
            await f.wait(lambda: server._subscribers)
            said = await c.call("ack", key=key, who="Sam")
            data = await asyncio.wait_for(told, 10)
        assert "Sam" in said and "[" not in said
        assert data["state"] == "closed" and data["closed_by"] == "Sam"
        s = await c.call("status")
        assert key not in _by_key(s["alerts"])
        closed = _by_key(s["alerts_closed"])[key]
        assert closed["closed_by"] == "Sam" and closed["closed_at"] >= closed["opened"]
        rec = await c.call("letter", id=lid)
        acked = [h for h in rec["history"] if "acknowledged by Sam" in (h.get("event") or "")]
        assert len(acked) == 1 and acked[0]["t"] >= closed["opened"]

        # The operator refills: the machine is ready again, both alerts close by themselves.
        franker.emit("device.state", state="idle")
        await f.wait_final(ids, timeout=60)
        s = await c.call("status")
        assert not {"routing:no-franker", "device:franker-1:out-of-ink"} & set(_by_key(s["alerts"]))
        closed = _by_key(s["alerts_closed"])
        assert closed["device:franker-1:out-of-ink"]["closed_by"] == "cleared"
        assert closed["routing:no-franker"]["count"] == 25
        everything = await c.call("alerts", closed=True)
        assert "device:franker-1:out-of-ink" in _by_key(everything["closed"])
        assert not [a for a in everything["open"] if a["severity"] == "critical"]
        assert await asyncio.to_thread(cli_main, ["alerts", "--all", "--socket", str(server.path)]) == 0
        out = capsys.readouterr().out
        assert "by Sam)" in out and "by cleared)" in out and "[" not in out
