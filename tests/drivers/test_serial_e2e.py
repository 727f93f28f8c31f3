"""The pipeline on the serial demo floor against the local sandbox: ENCLOSED and
DISPATCHED reach the API only because the simulated machines said so over a pty."""

import asyncio
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from appliance.api.client import SupplierClient
from appliance.config.profile import load_profile
from appliance.config.settings import sandbox_api
from appliance.core.packs import load_packs
from appliance.pipeline.pipeline import Pipeline, PipelineSettings
from appliance.sandbox import Sandbox, SandboxOptions
from appliance.store.store import Store
from tests.fixtures import QUICK, ROOT
from tests.fixtures.floor import check_sandbox_outcome

FLOOR = ROOT / "hardware-profiles" / "serial-floor.toml"


async def _run(tmp_path: Path, profile_path: Path, letters: int, done, timeout: float = 60):
    sb = Sandbox(SandboxOptions(**QUICK, letters=letters, bad_ratio=0.1, seed=21))
    await sb.start(host="127.0.0.1", port=0)
    state = tmp_path / "state"
    store = Store(state)
    client = SupplierClient(sandbox_api(sb.base_url))
    pipe = Pipeline(PipelineSettings(spool_dir=state / "spool", poll_interval=0.1, prove_after=0.2), client, store,
                    load_profile(profile_path), load_packs(), state_dir=state)
    try:
        await pipe.start()
        deadline = time.monotonic() + timeout
        while not done(sb, pipe) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # let the last status updates reach the sandbox
        sims = {name: pipe.devices[name].sim for name in ("lf3000", "fm200")}
        sent = {name: list(sim.sent) for name, sim in sims.items()}
        received = {name: list(sim.received) for name, sim in sims.items()}
        held = {r["id"]: r.get("hold_reason") for r in store.letters(stage="operator-hold")}
    finally:
        await pipe.stop()
        await client.aclose()
        store.close()
        await sb.stop()
    return sb, sent, received, held


def _announced(received: list[str], pattern: str) -> dict[tuple[int, int], str]:
    """(batch, seq) -> letter id, from the commands the machine received."""
    out = {}
    for cmd in received:
        m = re.match(pattern, cmd)
        if m:
            out[(int(m["batch"]), int(m["seq"]))] = m["id"]
    return out


def _reported(sent: list[str], pattern: str) -> list[tuple[int, int]]:
    return [(int(m["batch"]), int(m["seq"])) for m in (re.match(pattern, s) for s in sent) if m]


INS_CMD = r"^PIECE (?P<batch>\d+) (?P<seq>\d+) (?P<id>\S+)"
INS_OK = r"^INS (?P<batch>\d+) (?P<seq>\d+) OK"
FRANK_CMD = r"^P\|(?P<batch>\d+)\|(?P<seq>\d+)\|(?P<id>[^|]+)\|"
FRANK_OK = r"^F\|(?P<batch>\d+)\|(?P<seq>\d+)\|"


def all_final(sb, pipe) -> bool:
    return all(l.status in ("DISPATCHED", "REJECTED", "FAILED") for l in sb.letters.values())


async def test_serial_floor_end_to_end_statuses_come_from_device_bytes(tmp_path):
    sb, sent, received, held = await _run(tmp_path, FLOOR, 30, all_final)
    check_sandbox_outcome(sb, tmp_path / "state" / "output")
    enclosed_by_bytes = {_announced(received["lf3000"], INS_CMD)[k] for k in _reported(sent["lf3000"], INS_OK)}
    franked_by_bytes = {_announced(received["fm200"], FRANK_CMD)[k] for k in _reported(sent["fm200"], FRANK_OK)}
    good = {l.id for l in sb.letters.values() if l.kind == "good"}
    assert good and enclosed_by_bytes == good and franked_by_bytes == good
    # each piece was reported exactly once by each machine
    assert len(_reported(sent["lf3000"], INS_OK)) == len(good) == len(_reported(sent["fm200"], FRANK_OK))
    assert not held


def _unplug_profile(tmp_path):
    text = FLOOR.read_text().replace(
        'sim_options = ["piece_seconds=0.002", "heartbeat=0.5"]\nreconnect_max = 2.0',
        'sim_options = ["piece_seconds=0.01", "unplug_after=4", "unplug_lost=2", "unplug_seconds=0.3"]\n'
        'reconnect_max = 0.2', 1)
    assert "unplug_after=4" in text
    profile = tmp_path / "floor.toml"
    profile.write_text(text)
    return profile


def _settled(sb, pipe):
    held = {r["id"] for r in pipe.store.letters(stage="operator-hold")}
    return all(l.status in ("DISPATCHED", "REJECTED", "FAILED") or l.id in held for l in sb.letters.values())


async def test_serial_floor_unplug_mid_batch_never_advances_on_a_guess(tmp_path):
    """Whatever the timing of the unplug: a held piece was never reported past PRINTED, and
    every other good letter reached DISPATCHED from the machine's bytes or counters."""
    sb, sent, received, held = await _run(tmp_path, _unplug_profile(tmp_path), 20, _settled)
    for lid in held:
        assert sb.letters[lid].supplier_statuses() == ["ACCEPTED", "PRINTED"]
    statuses = Counter(l.status for l in sb.letters.values())
    good = sum(l.kind == "good" for l in sb.letters.values())
    assert statuses["DISPATCHED"] == good - len(held)
    announced = set(_announced(received["lf3000"], INS_CMD).values())
    assert all(sb.letters[lid].status != "DISPATCHED" or lid in announced
               for lid in sb.letters)  # nothing dispatched that the inserter never got


@pytest.mark.xfail(strict=False, reason="race, about 1 run in 3: a report read just before the unplug, "
                   "or a later piece reported before the resync, leaves fewer unheard pieces or holds one "
                   "the counters could have proved (safe side: held, never advanced); see the issue 7 note")
async def test_serial_floor_unplug_mid_batch_counters_prove_unheard_pieces(tmp_path):
    """Pieces the machine handled while unplugged are proved by its DONE/DIV counters;
    pieces whose announcement was lost with the cable go before an operator."""
    text = FLOOR.read_text().replace(
        'sim_options = ["piece_seconds=0.002", "heartbeat=0.5"]\nreconnect_max = 2.0',
        'sim_options = ["piece_seconds=0.01", "unplug_after=4", "unplug_lost=2", "unplug_seconds=0.3"]\n'
        'reconnect_max = 0.2', 1)
    assert "unplug_after=4" in text
    profile = tmp_path / "floor.toml"
    profile.write_text(text)

    def settled(sb, pipe):
        held = {r["id"] for r in pipe.store.letters(stage="operator-hold")}
        return all(l.status in ("DISPATCHED", "REJECTED", "FAILED") or l.id in held for l in sb.letters.values())

    sb, sent, received, held = await _run(tmp_path, profile, 20, settled)
    announced = _announced(received["lf3000"], INS_CMD)
    reported = {announced[k] for k in _reported(sent["lf3000"], INS_OK)}
    unheard = set(announced.values()) - reported
    # pieces the machine handled while unplugged (it got their announcement, its report was
    # lost) are DISPATCHED on the strength of its counters; only pieces the machine never
    # received (announcement lost with the cable; it went on past them) wait for a person
    assert len(unheard) >= 2 and not unheard & set(held), (held, unheard)
    assert all(sb.letters[lid].status == "DISPATCHED" for lid in unheard)
    assert not set(held) & set(announced.values()), (held, announced)
    assert all(why.startswith("lf3000: piece ") for why in held.values())
    for lid in held:  # the API heard PRINTED, never ENCLOSED: nothing advanced on a guess
        assert sb.letters[lid].supplier_statuses() == ["ACCEPTED", "PRINTED"]
    statuses = Counter(l.status for l in sb.letters.values())
    good = sum(l.kind == "good" for l in sb.letters.values())
    assert statuses["DISPATCHED"] == good - len(held)
