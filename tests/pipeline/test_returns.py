"""Returns, tracking imports and FAILED codes against a real daemon and the sandbox:
bad lines are refused here by line number, good lines reach the API."""

import asyncio
import dataclasses

import pytest

from appliance.cli.main import main as cli_main
from appliance.control.client import ControlClient, ControlError
from appliance.core.returns import parse_returns, parse_tracking_csv
from appliance.store.store import Store

BAD_REASONS = ["R11", "R00", "R1", "X01", "", " ", "Deceased", "R01 Addressee gone away", "r01x", "R010",
               "R01;R02", "ＲＯ1"]


def by_status(sb, status):
    return [l.id for l in sb.letters.values() if l.status == status]


def status_requests(sb) -> int:
    c = sb.counts()
    return c.get("patch", 0) + c.get("post_letters", 0)


async def cli(*args) -> int:
    return await asyncio.to_thread(cli_main, list(args))


# --- parsing (no daemon) ----------------------------------------------------------------


def test_returns_stack_lines_reasons_and_line_numbers():
    text = "# morning post\nAAA1\n\nBBB2,R09\nCCC3 r07\nDDD4,R11\nAAA1\nbad id here,R01\nEEE5,R01,R02\n"
    p = parse_returns(text, "r01")
    assert [(r.line, r.letter_id, r.reason_code, r.reason_text) for r in p.rows] == [
        (2, "AAA1", "R01", "Addressee gone away"), (4, "BBB2", "R09", "Deceased"),
        (5, "CCC3", "R07", "No such address")]
    bad = {b.line: b.message for b in p.bad}
    assert set(bad) == {6, 7, 8, 9}
    assert "R11" in bad[6] and "R01, R02" in bad[6]
    assert "already on line 2" in bad[7]
    assert "expected 'id' or 'id,reason'" in bad[9]
    no_stack = parse_returns("AAA1\nBBB2,R02\n")
    assert [b.line for b in no_stack.bad] == [1] and "no reason" in no_stack.bad[0].message
    with pytest.raises(ValueError, match="not a return reason"):
        parse_returns("AAA1\n", "R42")


def test_tracking_csv_good_and_bad_rows_by_line_number():
    text = ("letter_id,status,carrier_ref,reason\n"
            "A1,DELIVERED,RM123,\n"
            "A2,forwarded,RM124,\n"
            "A3,LOST,RM125,\n"
            "A4,RETURNED,RM126,R05\n"
            "A5,RETURNED,RM127,\n"
            "A6,RETURNED,RM128,R99\n"
            ",DELIVERED,RM129,\n"
            "A1,DELIVERED,RM130,\n"
            "A7\n")
    p = parse_tracking_csv(text)
    assert [(r.line, r.letter_id, r.status, r.reason_code) for r in p.rows] == [
        (2, "A1", "DELIVERED", None), (3, "A2", "FORWARDED", None), (5, "A4", "RETURNED", "R05")]
    assert [b.line for b in p.bad] == [4, 6, 7, 8, 9, 10]
    assert parse_tracking_csv("id;status\nA1;DELIVERED\n").bad[0].line == 1
    assert parse_tracking_csv("").bad[0].message.startswith("empty file")


# --- against the daemon -----------------------------------------------------------------


@pytest.mark.parametrize("reason", BAD_REASONS)
async def test_invalid_returned_reason_refused_locally_nothing_reaches_the_api(daemon, reason, capsys):
    sb, pipe, server, path = daemon
    assert await pipe.run_until_idle(timeout=30)
    target = by_status(sb, "DISPATCHED")[0]
    before = status_requests(sb)
    capsys.readouterr()
    assert await cli("return", target, "--reason", reason, "--socket", path) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "return reason" in err and "R01" in err
    assert await cli("returns", "-", "--reason", reason, "--socket", path) in (1, 2)
    async with ControlClient(path) as c:
        with pytest.raises(ControlError, match="return reason|R01-R10"):
            await c.call("return", id=target, reason=reason)
        res = await c.call("bulk_status", rows=[{"line": 1, "letter_id": target, "status": "RETURNED",
                                                 "reason_code": reason}])
        assert res["results"][0]["ok"] is False and "return reason" in res["results"][0]["message"]
    with pytest.raises(Exception, match="R01-R10|return reason"):
        pipe.store.set_status(target, "RETURNED", reason or None, "Addressee gone away")
    assert await pipe.run_until_idle(timeout=10)
    assert status_requests(sb) == before
    assert sb.letters[target].status == "DISPATCHED"
    assert not pipe.store.outbox_pending()


async def test_bulk_returns_stack_with_good_and_bad_lines_archived_letters_too(daemon, tmp_path, capsys):
    sb, pipe, server, path = daemon
    assert await pipe.run_until_idle(timeout=30)
    done = by_status(sb, "DISPATCHED")
    rejected = by_status(sb, "REJECTED")
    assert len(done) >= 3 and rejected
    assert set(done) <= pipe.store.archived_ids()  # finished long ago: only in the archive
    stack = tmp_path / "stack.txt"
    stack.write_text(f"{done[0]}\n{done[1]},R09\nnosuchletter\n{rejected[0]}\n{done[2]},R77\n{done[0]}\n")
    capsys.readouterr()
    assert await cli("returns", str(stack), "--reason", "R01", "--socket", path) == 1
    out = capsys.readouterr().out
    assert "NOT APPLIED line 3: nosuchletter is not known" in out
    assert f"NOT APPLIED line 4: {rejected[0]}: cannot move a letter from REJECTED to RETURNED" in out
    assert "NOT APPLIED line 5:" in out and "NOT APPLIED line 6:" in out
    assert "2 applied, 4 not applied" in out
    assert await pipe.run_until_idle(timeout=10)
    assert (sb.letters[done[0]].status, sb.letters[done[0]].reason_code) == ("RETURNED", "R01")
    assert (sb.letters[done[1]].status, sb.letters[done[1]].reason_text) == ("RETURNED", "Deceased")
    assert sb.letters[done[2]].status == "DISPATCHED"
    assert sb.letters[rejected[0]].status == "REJECTED"
    # --check sends nothing
    before = status_requests(sb)
    stack.write_text(f"{done[2]}\n")
    assert await cli("returns", str(stack), "--reason", "R02", "--check", "--socket", path) == 0
    assert await pipe.run_until_idle(timeout=10)
    assert status_requests(sb) == before and sb.letters[done[2]].status == "DISPATCHED"


async def test_tracking_csv_import_delivered_forwarded(daemon, tmp_path, capsys):
    sb, pipe, server, path = daemon
    assert await pipe.run_until_idle(timeout=30)
    done = by_status(sb, "DISPATCHED")
    rejected = by_status(sb, "REJECTED")[0]
    csv_path = tmp_path / "tracking.csv"
    csv_path.write_text("letter_id,status,reason\n"
                        f"{done[0]},DELIVERED,\n"
                        f"{done[1]},FORWARDED,\n"
                        f"{rejected},DELIVERED,\n"
                        f"{done[2]},MISLAID,\n"
                        f"{done[3]},RETURNED,R04\n")
    capsys.readouterr()
    assert await cli("tracking-import", str(csv_path), "--socket", path) == 1
    out = capsys.readouterr().out
    assert "NOT APPLIED line 4:" in out and "NOT APPLIED line 5:" in out and "3 applied" in out
    assert await pipe.run_until_idle(timeout=10)
    assert sb.letters[done[0]].status == "DELIVERED"
    assert sb.letters[done[1]].status == "FORWARDED"
    assert (sb.letters[done[3]].status, sb.letters[done[3]].reason_code) == ("RETURNED", "R04")
    assert sb.letters[done[2]].status == "DISPATCHED" and sb.letters[rejected].status == "REJECTED"
    # a forwarded letter may later be delivered; a delivered one cannot be forwarded
    csv_path.write_text(f"id,status\n{done[1]},DELIVERED\n{done[0]},FORWARDED\n")
    assert await cli("tracking-import", str(csv_path), "--socket", path) == 1
    assert await pipe.run_until_idle(timeout=10)
    assert sb.letters[done[1]].status == "DELIVERED" and sb.letters[done[0]].status == "DELIVERED"


async def test_failed_needs_an_agreed_code_when_the_profile_lists_them(daemon, capsys):
    sb, pipe, server, path = daemon
    assert await pipe.run_until_idle(timeout=30)
    pipe.profile = dataclasses.replace(pipe.profile, failure_reasons={"DAMAGED": "Damaged in finishing",
                                                                      "LOST": "Lost on the floor"})
    target = by_status(sb, "DISPATCHED")[0]
    async with ControlClient(path) as c:
        with pytest.raises(ControlError, match="not an agreed code.*DAMAGED, LOST"):
            await c.call("fail", id=target, code="BROKEN")
        with pytest.raises(ControlError, match="a reason code is needed"):
            await c.call("fail", id=target, reason="it broke")
        assert await c.call("failure_reasons") == {"DAMAGED": "Damaged in finishing",
                                                   "LOST": "Lost on the floor"}
    assert await cli("fail", target, "--code", "damaged", "--socket", path) == 0
    assert await pipe.run_until_idle(timeout=10)
    assert (sb.letters[target].status, sb.letters[target].reason_code,
            sb.letters[target].reason_text) == ("FAILED", "DAMAGED", "Damaged in finishing")


async def test_returns_with_the_daemon_stopped_are_queued_in_the_state_dir(tmp_path, capsys):
    state = tmp_path / "state"
    with Store(state) as store:
        store.add_letter("OLD1", "notify-c5", "g", "0" * 64)
        for s in ("ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED"):
            store.set_status("OLD1", s)
        store.outbox_ack([e["seq"] for e in store.outbox_pending()])
        store.flush()
        assert "OLD1" in store.archived_ids()
    cfg = tmp_path / "appliance.toml"
    cfg.write_text(f'[api]\nbase_url = "http://127.0.0.1:9"\nauth = "none"\n'
                   f'[paths]\nstate_dir = "{state}"\nprofile = "x.toml"\n')
    stack = tmp_path / "stack.txt"
    stack.write_text("OLD1,R06\nOLD2,R06\n")
    assert await cli("returns", str(stack), "--config", str(cfg), "--socket", str(tmp_path / "no.sock")) == 1
    out = capsys.readouterr().out
    assert "OLD1 RETURNED R06" in out and "line 2: OLD2 is not known" in out and "next starts" in out
    with Store(state, readonly=True) as store:
        assert store.get_status("OLD1") == "RETURNED"
        assert [(e["status"], e["reason_code"]) for e in store.outbox_pending()] == [("RETURNED", "R06")]
