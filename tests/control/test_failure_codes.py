"""No operator action bypasses a rule the CLI enforces: FAILED from a hold (resolve ... fail)
and FAILED rows in bulk need one of the profile's agreed codes, like 'fail' does; the header
counts letters on hold from the store."""

import dataclasses

import pytest

from appliance.control.client import ControlClient, ControlError
from appliance.control.server import ControlServer
from tests.fixtures.floor import Floor, new_sandbox

AGREED = {"DAMAGED": "Damaged in finishing", "LOST": "Lost on the floor"}


async def test_failed_from_a_hold_or_in_bulk_needs_an_agreed_code(tmp_path, sock_dir):
    sb = await new_sandbox(good=4)
    try:
        async with Floor(sb, tmp_path) as f:
            f.pipe.profile = dataclasses.replace(f.pipe.profile, failure_reasons=AGREED)
            franker = f.pipe.devices["franker-1"]
            franker.emit("device.state", state="stopped")  # letters wait, ENCLOSED, before the franker
            await f.wait(lambda: f.store.stage_count("wait-franker") == 4, timeout=30)
            held, bulk, other, kept = sorted(sb.letters)
            for lid in (held, bulk):  # what a lost piece on the line does to a letter
                f.pipe.operator_hold(lid, "franker-1: piece lost on the line")
            server = ControlServer(f.pipe, sock_dir / "c.sock")
            await server.start()
            try:
                async with ControlClient(server.path) as c:
                    s = await c.call("status")
                    assert s["held"] == 2 and s["refused"] == 0 and s["waiting_for_retry"] == 0
                    assert s["failure_reasons"] == AGREED
                    assert {a["key"] for a in s["alerts"]} >= {f"letter:{held}:hold", f"letter:{bulk}:hold"}
                    for outcome in ("fail", "failed"):
                        with pytest.raises(ControlError, match="a reason code is needed") as e:
                            await c.call("resolve", id=held, outcome=outcome)
                        assert "DAMAGED, LOST" in str(e.value) and "[" not in str(e.value)
                    with pytest.raises(ControlError, match="'BROKEN' is not an agreed code"):
                        await c.call("resolve", id=held, outcome="fail", code="BROKEN")
                    with pytest.raises(ControlError, match="goes with fail only"):
                        await c.call("resolve", id=held, outcome="dispatched", code="LOST")
                    assert f.store.get(held)["stage"] == "operator-hold"  # refused: nothing moved
                    assert f.pipe.alerts.get(f"letter:{held}:hold") is not None
                    said = await c.call("resolve", id=held, outcome="fail", code="lost")
                    assert "FAILED LOST" in said
                    got = await c.call("bulk_status", rows=[
                        {"line": 1, "letter_id": bulk, "status": "FAILED"},
                        {"line": 2, "letter_id": other, "status": "failed", "reason_code": "NOPE"},
                        {"line": 3, "letter_id": bulk, "status": "FAILED", "reason_code": "damaged"}])
                    ok = {r["line"]: r for r in got["results"]}
                    assert not ok[1]["ok"] and "a reason code is needed" in ok[1]["message"]
                    assert not ok[2]["ok"] and "not an agreed code" in ok[2]["message"]
                    assert "[" not in ok[1]["message"] + ok[2]["message"]
                    assert ok[3]["ok"] and "FAILED DAMAGED" in ok[3]["message"]
                    s = await c.call("status")
                    assert s["held"] == 0
                    assert not {f"letter:{held}:hold", f"letter:{bulk}:hold"} & {a["key"] for a in s["alerts"]}
                    franker.emit("device.state", state="idle")
                    await f.wait_final(list(sb.letters), timeout=30)
            finally:
                await server.stop()
        assert (sb.letters[held].status, sb.letters[held].reason_code, sb.letters[held].reason_text) == \
            ("FAILED", "LOST", "Lost on the floor")
        assert (sb.letters[bulk].status, sb.letters[bulk].reason_code) == ("FAILED", "DAMAGED")
        assert sb.letters[other].status == sb.letters[kept].status == "DISPATCHED"
    finally:
        await sb.stop()
