"""Serial drivers against the simulated machines over real ptys and pyserial.

Every event a letter can get here comes from bytes the simulator wrote to the pty; the
tests assert on what the driver emitted and on what the machine was told.
"""

import asyncio
import time
from collections import Counter

import pytest

from appliance.core.errors import ConfigError
from drivers.base import Work
from drivers.serial.finisher import SerialFranker, SerialInserter
from drivers.sim.serial_devices import Faults, start_simulator
from tests.fixtures.serial_rig import FAST, PACK, PROTOCOLS

# --- the ASCII line inserter -----------------------------------------------------------


async def test_inserter_reports_each_piece_in_print_order_and_completes_the_tray(tmp_path, rigs):
    rig = rigs(tmp_path, "inserter", Faults(heartbeat=0.2))
    await rig.driver.start()
    ids = await rig.submit(5)
    await rig.settled(ids)
    await rig.until(lambda: rig.kinds("tray.complete"))
    inserted = rig.kinds("piece.inserted")
    assert [e.letter_id for e in inserted] == ids
    assert [e.detail["seq"] for e in inserted] == [1, 2, 3, 4, 5]
    # the machine was told of every piece, in print order, inside one batch
    told = [c for c in rig.sim.received if c.startswith(("BATCH", "PIECE"))]
    assert told == ["BATCH 0001 START"] + [f"PIECE 0001 {i:04d} L{i} SHEETS=1 RUN=0" for i in range(1, 6)] + ["BATCH 0001 END"]
    assert rig.kinds("tray.complete")[0].detail["count"] == 5
    assert "idle" in rig.states() and "busy" in rig.states()
    h = rig.driver.health()
    assert h.counters["inserted"] == 5 and h.counters["device_count"] >= 0 and h.queue_depth == 0


async def test_inserter_batches_never_mix_envelopes_or_tariffs(tmp_path, rigs):
    """Letters of two tariffs, interleaved: each batch the machine is told of holds one
    (envelope, postage); the second batch opens only after the first has ended."""
    from appliance.core.packs import load_packs

    first = next(p for p in load_packs().values() if p.postage_id == "first-class")
    rig = rigs(tmp_path, "inserter", Faults(heartbeat=0.2))
    await rig.driver.start()
    ids = [f"L{i}" for i in range(1, 7)]
    for i, lid in enumerate(ids):
        await rig.driver.submit(Work(lid, None, PACK if i % 2 else first, 2, 1))
    await rig.settled(ids)
    batches: dict[str, set] = {}
    for c in rig.sim.received:
        if c.startswith("PIECE"):
            batches.setdefault(c.split()[1], set()).add(c.split()[3])
    tariff = {lid: (PACK if i % 2 else first).postage_id for i, lid in enumerate(ids)}
    assert len(batches) >= 2 and all(len({tariff[lid] for lid in b}) == 1 for b in batches.values()), batches
    told = [c for c in rig.sim.received if c.startswith("BATCH")]
    assert told[:3] == ["BATCH 0001 START", "BATCH 0001 END", "BATCH 0002 START"], told
    assert sorted(e.letter_id for e in rig.kinds("piece.inserted")) == sorted(ids)


async def test_inserter_divert_carries_the_reason_from_the_protocol_file(tmp_path, rigs):
    rig = rigs(tmp_path, "inserter", Faults(divert_every=2))
    await rig.driver.start()
    ids = await rig.submit(4)
    await rig.settled(ids)
    assert rig.fate() == {"L1": "piece.inserted", "L2": "piece.diverted", "L3": "piece.inserted",
                          "L4": "piece.diverted"}
    reason = rig.kinds("piece.diverted")[0].detail["reason"]
    assert "double feed detected" in reason and "E12" in reason


async def test_inserter_identifies_pieces_by_scanned_letter_id(tmp_path, rigs):
    rig = rigs(tmp_path, "inserter", Faults(scan_ids=True), identify="letter_id")
    await rig.driver.start()
    ids = await rig.submit(3, prefix="scan-")
    await rig.settled(ids)
    assert set(rig.fate().values()) == {"piece.inserted"}


async def test_identify_letter_id_needs_an_id_group(tmp_path):
    proto = tmp_path / "noid.toml"
    text = (PROTOCOLS / "lf3000-ascii.toml").read_text()
    proto.write_text(text.replace("(?: ID=(?P<id>[A-Za-z0-9_-]+))?", ""))
    with pytest.raises(ConfigError, match="identify: letter_id needs a \\(\\?P<id>...\\) group"):
        SerialInserter("i", {"port": "/dev/null", "protocol": str(proto), "identify": "letter_id"},
                       lambda e: None, state_dir=tmp_path)


async def test_jam_pauses_then_the_jammed_piece_is_diverted_and_work_resumes(tmp_path, rigs):
    rig = rigs(tmp_path, "inserter", Faults(jam_at=2, jam_seconds=0.3))
    await rig.driver.start()
    ids = await rig.submit(4)
    await rig.settled(ids)
    assert any("jam at 2" in a for a in rig.alerts())
    states = rig.states()
    assert "paused" in states and states.index("paused") < len(states) - 1  # and back again
    assert rig.fate()["L2"] == "piece.diverted"
    assert "jam" in rig.kinds("piece.diverted")[0].detail["reason"]
    assert [rig.fate()[i] for i in ("L1", "L3", "L4")] == ["piece.inserted"] * 3
    assert rig.driver.health().counters["jams"] == 1


async def test_stock_low_then_out_stops_until_refilled(tmp_path, rigs):
    rig = rigs(tmp_path, "inserter", Faults(stock=3, stock_low=2), stock_low=2)
    await rig.driver.start()
    ids = await rig.submit(5)
    await rig.until(lambda: "stopped" in rig.states())
    assert any("envelopes low: 2 left" in a for a in rig.alerts())
    assert any("out of envelopes" in a for a in rig.alerts())
    assert set(rig.fate()) == {"L1", "L2", "L3"}  # nothing moves while the hopper is empty
    assert rig.driver.stock["envelopes"] == 0
    rig.sim.refill(100)
    await rig.settled(ids)
    assert set(rig.fate().values()) == {"piece.inserted"}
    assert rig.states()[-1] in ("idle", "busy")


async def test_error_codes_known_and_unknown_are_alerts_not_statuses(tmp_path, rigs):
    rig = rigs(tmp_path, "inserter", Faults(error_at=1, unknown_code_at=2))
    await rig.driver.start()
    ids = await rig.submit(3)
    await rig.settled(ids)
    await rig.until(lambda: rig.driver.health().counters.get("errors", 0) == 2)
    assert any("error E42: sealer water low" in a for a in rig.alerts())
    assert any("error Z99: unknown error code" in a for a in rig.alerts())
    assert rig.driver.health().counters["unknown_codes"] == 1
    assert set(rig.fate().values()) == {"piece.inserted"}


async def test_garbage_split_and_merged_lines_are_counted_and_change_nothing(tmp_path, rigs):
    rig = rigs(tmp_path, "inserter", Faults(garbage=0.6, split=True, heartbeat=0.1, seed=3))
    await rig.driver.start()
    ids = await rig.submit(10)
    await rig.settled(ids)
    assert [e.letter_id for e in rig.kinds("piece.inserted")] == ids
    assert rig.driver.health().counters["garbage_bytes"] > 0
    assert not rig.kinds("piece.unknown")
    rig2 = rigs(tmp_path / "m", "inserter", Faults(merge=True, heartbeat=0.05))
    await rig2.driver.start()
    ids = await rig2.submit(6)
    await rig2.settled(ids)
    assert [e.letter_id for e in rig2.kinds("piece.inserted")] == ids


async def test_lost_report_makes_that_piece_unknown_never_inserted(tmp_path, rigs):
    rig = rigs(tmp_path, "inserter", Faults(mute_at=2),
               piece_timeout=0.5)
    await rig.driver.start()
    ids = await rig.submit(3)
    await rig.settled(ids)
    assert rig.fate() == {"L1": "piece.inserted", "L2": "piece.unknown", "L3": "piece.inserted"}
    # the last piece's report lost: nothing later reveals it, the piece timeout does
    rig3 = rigs(tmp_path / "t", "inserter", Faults(mute_at=1), piece_timeout=0.4)
    await rig3.driver.start()
    await rig3.submit(1)
    await rig3.settled(["L1"])
    assert rig3.fate() == {"L1": "piece.unknown"}
    assert "no report within" in rig3.kinds("piece.unknown")[0].detail["reason"]


async def test_silence_goes_offline_then_resyncs_without_losing_pieces(tmp_path, rigs):
    rig = rigs(tmp_path, "inserter", Faults(heartbeat=0.1, silence_after=2, silence_seconds=1.0, piece_seconds=0.02),
               heartbeat_timeout=0.3, reply_timeout=0.2)
    await rig.driver.start()
    ids = await rig.submit(5)
    await rig.settled(ids)
    states = rig.states()
    assert "offline" in states[1:] and states[-1] in ("idle", "busy")
    assert any("treating the machine as offline" in a for a in rig.alerts())
    # the machine was hung, not working: nothing happened unheard, nothing is unknown
    assert set(rig.fate().values()) == {"piece.inserted"}
    assert rig.driver.health().counters["silences"] >= 1


async def test_disconnect_mid_batch_counters_prove_pieces_handled_unheard(tmp_path, rigs):
    rig = rigs(tmp_path, "inserter", Faults(unplug_after=3, unplug_lost=2, unplug_seconds=0.3, piece_seconds=0.02))
    await rig.driver.start()
    ids = await rig.submit(8)
    await rig.settled(ids)
    fate = rig.fate()
    # STATUS says 5 done in this batch and no diverts; we heard 3 inserted: 4 and 5 were inserted
    assert [fate[i] for i in ids] == ["piece.inserted"] * 8, [(e.kind, e.letter_id, e.detail) for e in rig.events]
    proved = [e.letter_id for e in rig.kinds("piece.inserted") if e.detail.get("proved")]
    assert proved == ids[3:5]
    assert any("link lost" in a for a in rig.alerts())
    assert "offline" in rig.states()
    h = rig.driver.health()
    assert h.counters["link_opens"] == 2 and h.counters["proved_by_counters"] == 2
    assert "unknown" not in h.counters
    # after a restart the journal proves every piece, including the two proved by counters
    await rig.driver.stop()
    again = rig._driver()
    found = await again.reconcile(ids + ["never-sent"])
    assert found == {**{i: "piece.inserted" for i in ids}, "never-sent": "absent"}


async def test_disconnect_with_a_divert_unheard_leaves_those_pieces_unknown(tmp_path, rigs):
    # pieces 4 and 5 are handled unheard and piece 5 is diverted: the DIV count moved,
    # and the machine cannot say which piece it was, so both go to the operator
    rig = rigs(tmp_path, "inserter", Faults(unplug_after=3, unplug_lost=2, unplug_seconds=0.3, piece_seconds=0.02,
                                            divert_every=5))
    await rig.driver.start()
    ids = await rig.submit(7)
    await rig.settled(ids)
    fate = rig.fate()
    assert [fate[i] for i in ids] == ["piece.inserted"] * 3 + ["piece.unknown"] * 2 + ["piece.inserted"] * 2
    assert all("diverted some of them" in e.detail["reason"] for e in rig.kinds("piece.unknown"))
    assert "proved_by_counters" not in rig.driver.health().counters


async def test_port_missing_at_start_then_plugged_in(tmp_path, rigs):
    link = tmp_path / "late.tty"
    events = []
    drv = SerialInserter("late", {"port": str(link), "protocol": "lf3000-ascii", **FAST, "reply_timeout": 0.2},
                         events.append, state_dir=tmp_path / "state")
    await drv.start()
    assert drv.public_state() == "offline"
    assert any("no such port" in e.detail.get("message", "") for e in events)
    sim = start_simulator("lf3000-ascii", link, Faults())
    try:
        await drv.submit(Work("P1", None, PACK, 2, 1))
        deadline = time.monotonic() + 5
        while not any(e.kind == "piece.inserted" for e in events) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert [e.letter_id for e in events if e.kind == "piece.inserted"] == ["P1"]
    finally:
        await drv.stop()
        sim.stop()


async def test_reconcile_without_the_machine_leaves_unreported_pieces_for_the_operator(tmp_path, rigs):
    rig = rigs(tmp_path, "inserter", Faults(piece_seconds=0.3))
    await rig.driver.start()
    ids = await rig.submit(3)
    await rig.settled(ids[:1])
    await rig.driver.stop()  # the appliance stops while pieces 2 and 3 are in the machine
    again = rig._driver()  # never connected: nothing but the journal to go on
    found = await again.reconcile(ids + ["X"])
    assert found == {"L1": "piece.inserted", "X": "absent"}  # L2, L3: fate unknown -> hold


async def _restart_while_machine_works(rig, n: int, handled: int) -> tuple[list[str], dict]:
    """Announce n pieces, 'kill' the driver after the first report, let the machine handle
    ``handled`` pieces unheard, then start a fresh driver on the same journal."""
    await rig.driver.start()
    ids = await rig.submit(n)
    await rig.announced(ids)
    await rig.settled(ids[:1])
    await rig.driver.stop()  # as after kill -9: the journal stays, nobody listens
    deadline = time.monotonic() + 10
    while rig.sim.total < handled and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    rig.sim.f.piece_seconds = 0.3  # the rest wait in the machine until after the restart
    rig.events.clear()
    rig.driver = rig._driver()
    await rig.driver.start()
    return ids, await rig.driver.reconcile(ids + ["never-sent"])


async def test_restart_counters_prove_unheard_pieces_and_the_rest_stay_expected(tmp_path, rigs):
    rig = rigs(tmp_path, "inserter", Faults(piece_seconds=0.15))
    ids, found = await _restart_while_machine_works(rig, 6, handled=3)
    # the status answer after restart: batch 1, DONE >= 3, DIV = 0 -> pieces 2..DONE inserted
    proved = [e.letter_id for e in rig.kinds("piece.inserted") if e.detail.get("proved")]
    assert ids[1] in proved or found[ids[1]] == "piece.inserted"
    assert found["never-sent"] == "absent"
    assert found[ids[0]] == "piece.inserted"
    assert set(found[i] for i in ids) <= {"piece.inserted", "job.queued"}
    assert "job.queued" in found.values()  # pieces not reached yet are expected, not held
    await rig.settled([i for i in ids if found[i] == "job.queued"])
    fate = rig.fate()
    assert all(fate.get(i, found[i]) == "piece.inserted" for i in ids), fate
    assert not rig.kinds("piece.unknown")
    assert rig.driver.health().counters["adopted"] == 5
    # the new pieces after the restart continue the same batch with the next numbers
    rig.sim.f.piece_seconds = 0.005
    more = await rig.submit(2, prefix="M")
    await rig.settled(more)
    assert [e.detail["seq"] for e in rig.kinds("piece.inserted") if e.letter_id in more] == [7, 8]


async def test_restart_with_a_divert_unheard_puts_the_unheard_pieces_before_the_operator(tmp_path, rigs):
    rig = rigs(tmp_path, "inserter", Faults(piece_seconds=0.15, divert_every=3))
    ids, found = await _restart_while_machine_works(rig, 6, handled=3)
    unknown = {e.letter_id for e in rig.kinds("piece.unknown")}
    assert {ids[1], ids[2]} <= unknown  # piece 3 was diverted unheard: 2 and 3 cannot be told apart
    assert not any(e.detail.get("proved") for e in rig.kinds("piece.inserted"))
    assert all(i not in found for i in unknown)  # reconcile leaves them out: operator hold
    assert found[ids[0]] == "piece.inserted"


async def test_restart_after_the_machine_lost_its_batch_holds_every_unheard_piece(tmp_path, rigs):
    rig = rigs(tmp_path, "inserter", Faults(piece_seconds=0.15))
    await rig.driver.start()
    ids = await rig.submit(4)
    await rig.announced(ids)
    await rig.settled(ids[:1])
    await rig.driver.stop()
    rig.sim.stop()  # power cycle: the machine comes back knowing no batch
    rig.sim = start_simulator("lf3000-ascii", rig.sim.link, Faults())
    rig.events.clear()
    rig.driver = rig._driver()
    await rig.driver.start()
    found = await rig.driver.reconcile(ids)
    assert found == {ids[0]: "piece.inserted"}
    assert {e.letter_id for e in rig.kinds("piece.unknown")} == set(ids[1:])


async def test_franker_restart_counters_prove_franked(tmp_path, rigs):
    rig = rigs(tmp_path, "franker", Faults(piece_seconds=0.1))
    ids, found = await _restart_while_machine_works(rig, 4, handled=2)
    await rig.settled([i for i in ids if found.get(i) == "job.queued"])
    fate = {**{i: k for i, k in found.items() if k != "job.queued"}, **rig.fate()}
    assert all(fate[i] == "piece.franked" for i in ids), fate
    assert not rig.kinds("piece.unknown")


# --- the framed, checksummed franking machine -------------------------------------------


async def test_franker_reports_postage_and_acks_every_frame(tmp_path, rigs):
    rig = rigs(tmp_path, "franker", Faults(heartbeat=0.3))
    await rig.driver.start()
    ids = await rig.submit(4)
    await rig.settled(ids)
    franked = rig.kinds("piece.franked")
    assert [e.letter_id for e in franked] == ids
    assert {e.detail["postage_value"] for e in franked} == {85}
    assert [c for c in rig.sim.received if c.startswith("P|")][0] == "P|0001|0001|L1|economy"
    await rig.until(lambda: rig.kinds("tray.complete"))
    assert rig.sim.naks == 0


async def test_bad_checksums_are_refused_and_the_machine_repeats_the_frame(tmp_path, rigs):
    rig = rigs(tmp_path, "franker", Faults(bad_checksum_every=2, heartbeat=0.2))
    await rig.driver.start()
    ids = await rig.submit(6)
    await rig.settled(ids)
    assert Counter(e.letter_id for e in rig.kinds("piece.franked")) == Counter(ids)  # exactly once each
    assert rig.driver.health().counters["bad_checksum"] >= 3
    assert rig.sim.naks >= 3


async def test_franker_garbage_split_and_merged_frames(tmp_path, rigs):
    rig = rigs(tmp_path, "franker", Faults(garbage=0.7, split=True, seed=5))
    await rig.driver.start()
    ids = await rig.submit(6)
    await rig.settled(ids)
    assert [e.letter_id for e in rig.kinds("piece.franked")] == ids
    assert rig.driver.health().counters["garbage_bytes"] > 0


async def test_franker_lrc_hex_variant_from_a_profile_local_protocol_file(tmp_path, rigs):
    proto = tmp_path / "fm200-lrc.toml"
    proto.write_text((PROTOCOLS / "fm200-stx.toml").read_text()
                     .replace('checksum = "crc16-ccitt"', 'checksum = "xor8"')
                     .replace('checksum_encoding = "binary-be"', 'checksum_encoding = "hex"'))
    framing = {"kind": "stx-etx", "checksum": "xor8", "checksum_encoding": "hex"}
    rig = rigs(tmp_path, "franker", Faults(), protocol=str(proto), _framing=framing)
    assert rig.driver.protocol.framing["checksum"] == "xor8"
    await rig.driver.start()
    ids = await rig.submit(3)
    await rig.settled(ids)
    assert set(rig.fate().values()) == {"piece.franked"}


async def test_franker_jam_stock_and_unknown_reject_code(tmp_path, rigs):
    proto = tmp_path / "fm200-noreasons.toml"
    proto.write_text((PROTOCOLS / "fm200-stx.toml").read_text().replace('"07" = ', '"97" = '))
    rig = rigs(tmp_path, "franker", Faults(divert_every=3, jam_at=5, jam_seconds=0.2, stock=7, stock_low=5),
               protocol=str(proto))
    await rig.driver.start()
    ids = await rig.submit(6)
    await rig.settled(ids)
    fate = rig.fate()
    # R|..|07 is not in this protocol file's [reasons]: the piece goes to an operator
    assert fate["L3"] == fate["L6"] == "piece.unknown"
    assert "code 07" in rig.kinds("piece.unknown")[0].detail["reason"]
    assert fate["L5"] == "piece.diverted" and "jam" in rig.kinds("piece.diverted")[0].detail["reason"]
    assert [fate[i] for i in ("L1", "L2", "L4")] == ["piece.franked"] * 3
    assert any("INK low: 5 left" in a for a in rig.alerts()) and any("jam at 02" in a for a in rig.alerts())
    assert rig.driver.health().counters["unknown_codes"] == 2 and rig.driver.stock["INK"] <= 5


async def test_franker_dispatch_on_tray(tmp_path, rigs):
    rig = rigs(tmp_path, "franker", Faults(), dispatch_on="tray")
    await rig.driver.start()
    ids = await rig.submit(3)
    await rig.settled(ids)
    assert not rig.kinds("piece.franked")
    trays = rig.kinds("tray.complete")
    assert [e.letter_id for e in trays] == ids and trays[0].detail["postage_value"] == 85
    assert await rig._driver().reconcile(ids) == {i: "tray.complete" for i in ids}


async def test_franker_disconnect_mid_batch(tmp_path, rigs):
    rig = rigs(tmp_path, "franker", Faults(unplug_after=2, unplug_lost=1, unplug_seconds=0.3, piece_seconds=0.02))
    await rig.driver.start()
    ids = await rig.submit(5)
    await rig.settled(ids)
    fate = rig.fate()
    # S|...|count=3|...|DIV=0000: the piece franked unheard is proved by the meter's counters
    assert [fate[i] for i in ids] == ["piece.franked"] * 5
    assert [e.letter_id for e in rig.kinds("piece.franked") if e.detail.get("proved")] == [ids[2]]


async def test_sim_port_starts_the_built_in_simulator(tmp_path):
    events = []
    drv = SerialFranker("fr", {"port": "sim:", "protocol": "fm200-stx", "sim_options": ["piece_seconds=0.001"],
                               **FAST}, events.append, state_dir=tmp_path)
    await drv.start()
    try:
        assert drv.public_state() == "idle" and (tmp_path / "devices" / "fr" / "tty").is_symlink()
        await drv.submit(Work("S1", None, PACK, 2, 1))
        deadline = time.monotonic() + 5
        while not any(e.kind == "piece.franked" for e in events) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert [e.letter_id for e in events if e.kind == "piece.franked"] == ["S1"]
    finally:
        await drv.stop()
    with pytest.raises(ConfigError, match="sim_options"):
        bad = SerialFranker("fr2", {"port": "sim:", "protocol": "fm200-stx", "sim_options": ["warp=9"]},
                            events.append, state_dir=tmp_path)
        await bad.start()
