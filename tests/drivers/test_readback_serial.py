"""Read-backs on the wire: the LF-3000 simulator's camera reports every sheet over a real pty
and the serial inserter decides each envelope from those bytes."""

import pytest

from appliance.core.errors import ConfigError
from drivers.base import Work
from drivers.sim.serial_devices import Faults
from tests.fixtures.serial_rig import PACK, Rig


async def _run(rig: Rig, n: int = 4, sheets: int = 2, run: int = 7) -> list[str]:
    await rig.driver.start()
    ids = [f"L{i}" for i in range(1, n + 1)]
    for lid in ids:
        await rig.driver.submit(Work(lid, None, PACK, sheets * 2, sheets, run))
    await rig.settled(ids)
    return ids


def _fates(rig: Rig) -> dict[str, tuple[str, str | None]]:
    return {e.letter_id: (e.kind, e.detail.get("reason_code")) for e in rig.events
            if e.letter_id and e.kind.startswith("piece.")}


@pytest.mark.parametrize("fault, code", [
    ("read_missing_at", "READBACK_MISSING"),
    ("read_foreign_at", "READBACK_FOREIGN"),
    ("read_duplicate_at", "READBACK_DUPLICATE"),
    ("read_unreadable_at", "READBACK_UNREADABLE"),
    ("read_stale_at", "READBACK_STALE"),
    ("hand_pull_at", "READBACK_HAND_PULLED"),
])
async def test_each_anomaly_makes_that_piece_suspect_and_only_that_one(tmp_path, rigs, fault, code):
    rig = rigs(tmp_path, "inserter", Faults(heartbeat=0.2, reader=True, **{fault: 2}), readback=True)
    ids = await _run(rig)
    fates = _fates(rig)
    assert fates["L2"] == ("piece.suspect", code), rig.events
    assert all(fates[i] == ("piece.inserted", None) for i in ids if i != "L2")
    suspect = rig.kinds("piece.suspect")[0]
    assert suspect.detail["run"] == 7 and suspect.detail["reason"].startswith("inserter: ")
    assert any(a.startswith("pull envelope 0001/0002") for a in rig.alerts())
    told = [c for c in rig.sim.received if c.startswith("PIECE")]
    assert told[1] == "PIECE 0001 0002 L2 SHEETS=2 RUN=7"
    if fault == "hand_pull_at":
        assert not [s for s in rig.sim.sent if s.startswith("READ 0001 0002")]
        assert ("L2", "pulled") in rig.sim.handled


async def test_complete_envelopes_are_inserted_with_the_verdict(tmp_path, rigs):
    rig = rigs(tmp_path, "inserter", Faults(heartbeat=0.2, reader=True), readback=True)
    ids = await _run(rig, n=3, sheets=3)
    assert [e.letter_id for e in rig.kinds("piece.inserted")] == ids
    assert all(e.detail["readback"] == "all 3 sheet(s) read" for e in rig.kinds("piece.inserted"))
    reads = [s for s in rig.sim.sent if s.startswith("READ")]
    assert reads[:3] == [f"READ 0001 0001 NL1:L1:{k}:3:7" for k in (1, 2, 3)]
    assert rig.driver.health().counters["reads"] == 9


async def test_reader_off_means_nothing_read_and_divert_becomes_reprintable(tmp_path, rigs):
    rig = rigs(tmp_path, "inserter", Faults(heartbeat=0.2, divert_every=3), readback=True)
    await _run(rig, n=3)
    fates = _fates(rig)
    assert fates["L1"] == ("piece.suspect", "READBACK_NOTHING")
    div = rig.kinds("piece.diverted")[0]
    assert div.letter_id == "L3" and div.detail["reprintable"] is True


async def test_without_readback_reads_change_nothing(tmp_path, rigs):
    rig = rigs(tmp_path, "inserter", Faults(heartbeat=0.2, reader=True, read_missing_at=1, divert_every=3))
    await _run(rig, n=3)
    assert _fates(rig) == {"L1": ("piece.inserted", None), "L2": ("piece.inserted", None),
                           "L3": ("piece.diverted", None)}
    assert "reprintable" not in rig.kinds("piece.diverted")[0].detail


async def test_sticky_fault_hits_the_same_letter_again(tmp_path, rigs):
    rig = rigs(tmp_path, "inserter", Faults(heartbeat=0.2, reader=True, read_duplicate_at=1, read_sticky=True),
               readback=True)
    await _run(rig, n=2)
    await rig.driver.submit(Work("L1", None, PACK, 4, 2, 8))  # the reprint, new run
    await rig.until(lambda: len(rig.kinds("piece.suspect")) == 2)
    assert [e.detail["run"] for e in rig.kinds("piece.suspect")] == [7, 8]


def test_readback_needs_a_read_rule(tmp_path):
    proto = tmp_path / "noread.toml"
    from tests.fixtures.serial_rig import PROTOCOLS
    text = (PROTOCOLS / "lf3000-ascii.toml").read_text()
    start = text.index('[[event]]\non = "read"')
    end = text.index("[[event]]", start + 5)
    proto.write_text(text[:start] + text[end:])
    from drivers.serial.finisher import SerialInserter
    with pytest.raises(ConfigError, match='readback: .* has no \\[\\[event\\]\\] on = "read"'):
        SerialInserter("ins", {"port": "/dev/null", "protocol": str(proto), "readback": True}, print,
                       state_dir=tmp_path)
