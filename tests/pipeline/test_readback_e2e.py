"""Read-backs and automatic reprint, end to end: the pipeline, the sandbox API, a real
SerialInserter on a pty and the LF-3000 simulator whose camera reports every sheet.

Each read-back anomaly spoils one piece: its letter is printed again (new print run) and
then ENCLOSED and DISPATCHED exactly once at the API; a letter spoiled twice waits for an
operator with the reason.  The audit counts each batch."""

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import pytest

from appliance.api.client import SupplierClient
from appliance.config.profile import load_profile
from appliance.config.settings import sandbox_api
from appliance.core.packs import load_packs
from appliance.pipeline.audit import AuditLog, to_csv
from appliance.pipeline.pipeline import Pipeline, PipelineSettings
from appliance.sandbox import Sandbox, SandboxOptions
from appliance.store.store import Store
from tests.fixtures import QUICK
from tests.fixtures.floor import GOOD_PATH
from tests.fixtures.readback import readback_profile, settled


async def _run(tmp_path: Path, profile: Path, letters: int = 16, timeout: float = 40):
    sb = Sandbox(SandboxOptions(**QUICK, letters=letters, bad_ratio=0.1, seed=21))
    await sb.start(host="127.0.0.1", port=0)
    state = tmp_path / "state"
    store = Store(state)
    client = SupplierClient(sandbox_api(sb.base_url))
    pipe = Pipeline(PipelineSettings(spool_dir=state / "spool", poll_interval=0.1, prove_after=0.2), client, store,
                    load_profile(profile), load_packs(), state_dir=state)
    try:
        await pipe.start()
        deadline = time.monotonic() + timeout
        while not settled(sb, store):
            assert time.monotonic() < deadline, "floor did not settle"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the last status updates reach the sandbox
        records = {lid: store.get(lid) for lid in sb.letters}
        rows = pipe.audit.rows()
        sim = pipe.devices["lf3000"].sim
        handled = list(sim.handled)
    finally:
        await pipe.stop()
        await client.aclose()
        store.close()
        await sb.stop()
    return sb, records, rows, handled


def _statuses(letter) -> list[str]:
    return [s for s, _ in letter.history if s != "PENDING"]


def _prints(state: Path) -> Counter:
    prints = Counter()
    for ledger in (state / "output").glob("*/printed.jsonl"):
        for line in ledger.read_text().splitlines():
            prints[json.loads(line)["letter_id"]] += 1
    return prints


@pytest.mark.parametrize("fault, code", [
    ("read_missing_at", "READBACK_MISSING"),
    ("read_foreign_at", "READBACK_FOREIGN"),
    ("read_duplicate_at", "READBACK_DUPLICATE"),
    ("read_stale_at", "READBACK_STALE"),
    ("read_unreadable_at", "READBACK_UNREADABLE"),
    ("hand_pull_at", "READBACK_HAND_PULLED"),
])
async def test_a_spoiled_piece_is_reprinted_once_then_enclosed_and_dispatched_once(tmp_path, fault, code):
    sb, records, rows, handled = await _run(tmp_path, readback_profile(tmp_path, f'"{fault}=2"'))
    reprinted = [lid for lid, r in records.items() if r.get("reprints")]
    assert len(reprinted) == 1, {lid: r["stage"] for lid, r in records.items()}
    lid = reprinted[0]
    rec = records[lid]
    events = [h["event"] for h in rec["history"]]
    assert any(e.startswith("reprint 1/1: lf3000: ") for e in events), events
    assert rec["reprint_reason"].startswith("lf3000: ")
    assert rec["reprint_code"] == code and rec["print_run"] > rec["reprint_of"]
    # the API heard every status of every good letter exactly once, the reprinted one too
    for letter in sb.letters.values():
        if letter.kind == "good":
            assert _statuses(letter) == GOOD_PATH, (letter.id, _statuses(letter))
    prints = _prints(tmp_path / "state")
    assert prints[lid] == 2 and all(n == 1 for l, n in prints.items() if l != lid)
    # the machine handled the letter twice: once spoiled, once good
    assert [o for l, o in handled if l == lid] == (["pulled", "inserted"] if fault == "hand_pull_at"
                                                   else ["inserted", "inserted"])
    good = sum(l.kind == "good" for l in sb.letters.values())
    total = {k: sum(r[k] for r in rows) for k in ("expected", "enclosed", "diverted", "reprinted", "held",
                                                   "outstanding")}
    assert total == {"expected": good + 1, "enclosed": good, "diverted": 1, "reprinted": 1, "held": 0,
                     "outstanding": 0}


async def test_a_letter_spoiled_twice_waits_for_an_operator_with_the_reason(tmp_path):
    sb, records, rows, handled = await _run(tmp_path, readback_profile(tmp_path, '"read_missing_at=2", "read_sticky=true"'))
    held = {lid: r for lid, r in records.items() if r["stage"] == "operator-hold"}
    assert len(held) == 1
    lid, rec = next(iter(held.items()))
    assert rec["reprints"] == 1
    assert "sheet(s)" in rec["hold_reason"] and "failed again after 1 reprint(s)" in rec["hold_reason"]
    assert _statuses(sb.letters[lid]) == ["ACCEPTED", "PRINTED"]  # never ENCLOSED, PRINTED sent once
    assert sum(r["held"] for r in rows) == 1 and sum(r["reprinted"] for r in rows) == 1
    assert sum(r["diverted"] for r in rows) == 2


async def test_tries_zero_holds_at_once(tmp_path):
    sb, records, rows, handled = await _run(tmp_path, readback_profile(tmp_path, '"read_duplicate_at=2"', tries=0))
    held = [r for r in records.values() if r["stage"] == "operator-hold"]
    assert len(held) == 1 and not held[0].get("reprints")
    assert "read 2 times" in held[0]["hold_reason"] and "tries = 0" in held[0]["hold_reason"]
    assert _prints(tmp_path / "state")[held[0]["id"]] == 1


async def test_audit_survives_a_restart_and_exports_csv(tmp_path, capsys):
    sb, records, rows, handled = await _run(tmp_path, readback_profile(tmp_path, '"read_foreign_at=3"'))
    again = AuditLog(tmp_path / "state" / "audit", {"lf3000"}).rows()
    assert again == rows
    text = to_csv(rows)
    lines = text.splitlines()
    assert lines[0] == "device,batch,expected,enclosed,diverted,reprinted,held,outstanding,first,last"
    assert len(lines) == len(rows) + 1
    first = lines[1].split(",")
    assert first[:8] == [str(rows[0][k]) for k in ("device", "batch", "expected", "enclosed", "diverted",
                                                   "reprinted", "held", "outstanding")]
    assert first[8].endswith("Z") and "T" in first[8]
    # the CLI reads the same facts from a stopped appliance's state directory
    from appliance.cli.main import main as cli_main
    capsys.readouterr()
    assert cli_main(["audit", "--state", str(tmp_path / "state"), "--csv", "-"]) == 0
    assert capsys.readouterr().out == text
