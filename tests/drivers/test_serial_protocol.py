"""The serial protocol engine and piece tracker, without any I/O."""

from pathlib import Path

import pytest

from appliance.core.errors import ConfigError
from drivers.serial.protocol import CHECKSUMS, LineFramer, StxEtxFramer, load_protocol, serial_kwargs
from drivers.serial.tracker import PieceTracker
from tests.fixtures import ROOT

PROTOCOLS = ROOT / "hardware-profiles" / "protocols"
INSERTER = PROTOCOLS / "lf3000-ascii.toml"
FRANKER = PROTOCOLS / "fm200-stx.toml"


@pytest.mark.parametrize("name,value", [("crc16-ccitt", 0x29B1), ("crc16-xmodem", 0x31C3),
                                        ("crc16-modbus", 0x4B37), ("crc16-arc", 0xBB3D)])
def test_crc16_check_values(name, value):
    # The published check value of each CRC over ASCII "123456789".
    assert CHECKSUMS[name][1](b"123456789") == value


def test_xor8_and_lrc8():
    assert CHECKSUMS["xor8"][1](bytes([0x01, 0x02, 0x04])) == 0x07
    assert CHECKSUMS["lrc8"][1](bytes([0x01, 0x02, 0x04])) == 0xF9  # -(7) mod 256
    assert (sum(b"ABC") + CHECKSUMS["lrc8"][1](b"ABC")) & 0xFF == 0


def test_line_framer_split_merged_garbage_and_overlong():
    f = LineFramer(b"\r\n", "ascii", 10)
    data = b"\xffIN" + b"S 1\r\nHB\r\n\r\n\x00\x9cOK\n"
    frames = [fr for b in data for fr in f.feed(bytes([b]))]  # one byte at a time
    assert [fr.text for fr in frames] == ["INS 1", "HB", "OK"]
    assert f.garbage_bytes == 3
    frames = f.feed(b"0123456789ABCDEF\r\nHB\r\n")
    assert [(fr.text, fr.error) for fr in frames] == [(None, "line too long"), ("HB", None)]
    assert f.encode("STATUS?") == b"STATUS?\r\n"


def test_stx_etx_framer_checksums_garbage_and_restart():
    f = StxEtxFramer(0x02, 0x03, "crc16-ccitt", "body+etx", "ascii", "binary-be", 64, {0x06: "ack", 0x15: "nak"})
    good = f.encode("F|0001|0002|000085")
    assert good[0] == 0x02 and good[-3] == 0x03 and len(good) == len("F|0001|0002|000085") + 4
    bad = bytearray(good)
    bad[5] ^= 0x01  # one flipped bit in the body
    stream = b"noise" + good + bytes(bad) + b"\x02half" + good + b"\x06" + good[:7]
    frames = f.feed(stream)
    assert [(fr.text, fr.error) for fr in frames] == [
        ("F|0001|0002|000085", None), (None, "bad checksum"), ("F|0001|0002|000085", None), (None, "ack")]
    assert f.garbage_bytes == len("noise") + len("\x02half")
    assert [fr.text for fr in f.feed(good[7:])] == ["F|0001|0002|000085"]  # split frame completes


def test_hex_checksum_accepts_lower_case():
    f = StxEtxFramer(0x02, 0x03, "xor8", "body", "ascii", "hex", 64)
    frame = f.encode("Q")
    assert frame == b"\x02Q\x03" + f"{ord('Q'):02X}".encode()
    assert f.feed(frame.lower().replace(b"q", b"Q"))[0].text == "Q"


def test_example_protocols_load_and_render():
    ins = load_protocol(INSERTER)
    assert (ins.family, ins.framing["kind"], ins.identify) == ("inserter", "line", "sequence")
    assert ins.render("expect_piece", batch=3, seq=4, letter_id="L-1", sheets=2) == "PIECE 0003 0004 L-1 SHEETS=2 RUN=0"
    assert ins.render("nonexistent") is None
    m = ins.match("INS 0003 0004 OK ID=abc")
    assert (m.on, m.groups) == ("inserted", {"batch": "0003", "seq": "0004", "id": "abc"})
    assert ins.match("ENV OUT").groups == {"item": "envelopes", "count": "0"}
    assert ins.match("INS 0003 0004 MAYBE") is None
    fr = load_protocol(FRANKER)
    assert fr.framing["checksum"] == "crc16-ccitt" and fr.framing["ack"] == 0x06
    assert fr.match("F|0003|0004|000085").groups["value"] == "000085"
    assert fr.match("S|RUN|0003|0012|INK=080|CREDIT=004500").groups["credit"] == "004500"
    kw = serial_kwargs(fr.serial)
    assert kw["baudrate"] == 19200 and kw["parity"] == "E" and kw["stopbits"] == 1


def _write(tmp_path, text) -> Path:
    p = tmp_path / "proto.toml"
    p.write_text(text)
    return p


BASE = """
[protocol]
family = "inserter"
[framing]
kind = "line"
[commands]
expect_piece = "PIECE {seq}"
[[event]]
on = "inserted"
match = '^INS (?P<seq>\\d+)$'
"""


@pytest.mark.parametrize("change,needle", [
    (("[protocol]", "[protocol]\ncolour = 1"), "[protocol] colour: unknown key"),
    (('family = "inserter"', 'family = "stapler"'), "family: 'stapler' is not one of"),
    (('kind = "line"', 'kind = "morse"'), "[framing] kind"),
    (('"PIECE {seq}"', '"PIECE {piece}"'), "unknown field {piece}"),
    (('"PIECE {seq}"', '"PIECE {seq:zz}"'), "bad template"),
    (("(?P<seq>\\d+)$", "(?P<seq>\\d+$"), "not a valid regular expression"),
    (("(?P<seq>\\d+)$", "(?P<value>\\d+)$"), "mean nothing for 'inserted'"),
    (('on = "inserted"', 'on = "teleported"'), "on: 'teleported' is not one of"),
    (('expect_piece = "PIECE {seq}"', 'hello = "HI"'), "expect_piece: missing"),
    (("on = \"inserted\"\nmatch = '^INS (?P<seq>\\d+)$'", "on = \"heartbeat\"\nmatch = '^HB$'"),
     "no [[event]] with on = 'inserted'"),
    (('kind = "line"', 'kind = "stx-etx"\nchecksum = "md5"'), "checksum: 'md5' is not one of"),
    (('kind = "line"', 'kind = "stx-etx"\nstx = 300'), "expected a byte value"),
])
def test_protocol_mistakes_are_one_line_config_errors(tmp_path, change, needle):
    old, new = change
    assert old in BASE
    path = _write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_protocol(path)
    msg = str(err.value)
    assert needle in msg and str(path) in msg and "\n" not in msg


def test_piece_pattern_must_say_which_piece(tmp_path):
    path = _write(tmp_path, BASE.replace("(?P<seq>\\d+)", "\\d+"))
    with pytest.raises(ConfigError, match="needs a \\(\\?P<seq>...\\) or \\(\\?P<id>...\\) group"):
        load_protocol(path)


def test_missing_protocol_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="protocol file not found"):
        load_protocol(tmp_path / "nope.toml")


# --- piece tracker ---------------------------------------------------------------------


def _tracker(n=4, identify="sequence"):
    t = PieceTracker(identify)
    t.open_batch(7)
    for i in range(1, n + 1):
        t.announce(f"L{i}", now=100.0)
    return t


def test_tracker_sequence_resolves_in_order_and_refuses_repeats_and_other_batches():
    t = _tracker()
    r = t.resolve({"batch": "0007", "seq": "0001"})
    assert r.piece.letter_id == "L1" and not r.skipped and r.problem is None
    assert t.resolve({"batch": "0007", "seq": "1"}).piece is None  # repeated report
    assert "batch 6" in t.resolve({"batch": "0006", "seq": "2"}).problem
    assert t.resolve({"seq": "x"}).piece is None
    assert len(t.outstanding) == 3


def test_tracker_gap_makes_skipped_pieces_unknown():
    t = _tracker()
    r = t.resolve({"seq": "3"})
    assert r.piece.letter_id == "L3"
    assert [p.letter_id for p in r.skipped] == ["L1", "L2"]
    assert list(t.outstanding) == [4]


def test_tracker_scanned_id_mismatch_and_letter_id_mode():
    t = _tracker()
    r = t.resolve({"seq": "1", "id": "L2"})
    assert r.mismatch and r.piece.letter_id == "L1"
    t = _tracker(identify="letter_id")
    assert t.resolve({"seq": "1", "id": "L3"}).piece.letter_id == "L3"
    assert t.resolve({"id": "L9"}).piece is None
    assert t.resolve({"seq": "1"}).problem == "report without a scanned id"


def test_tracker_resync_rules():
    t = _tracker()
    t.resolve({"seq": "1"})
    lost = t.resync(7, 3)  # device handled 3; we heard 1
    assert [p.letter_id for p in lost] == ["L2", "L3"] and list(t.outstanding) == [4] and t.open
    lost = t.resync(8, 0)  # device is on another batch: all in flight are unknown
    assert [p.letter_id for p in lost] == ["L4"] and not t.open
    t = _tracker(2)
    assert [p.letter_id for p in t.resync(None, None)] == ["L1", "L2"]


def test_tracker_overdue_and_clock_restart():
    t = _tracker(2)
    t.restart_clocks(200.0)
    assert t.overdue(205.0, 10.0) == []
    assert [p.letter_id for p in t.overdue(211.0, 10.0)] == ["L1", "L2"]


def test_prove_unheard_only_when_the_divert_count_did_not_move():
    from drivers.serial.tracker import prove_unheard
    t = _tracker()
    lost = t.resync(7, 2)
    assert prove_unheard(lost, 0, 0) == (lost, [])  # no unheard divert: both inserted
    assert prove_unheard(lost, 1, 0) == ([], lost)  # one of them was diverted: which?
    assert prove_unheard(lost, None, 0) == ([], lost)  # the machine gives no divert count
    assert prove_unheard([], 0, 0) == ([], [])


def test_tracker_adopts_a_batch_and_defers_skips_while_resyncing():
    from drivers.serial.tracker import Piece
    t = PieceTracker()
    t.adopt(5, [Piece("L3", 5, 3, 0.0), Piece("L2", 5, 2, 0.0)], next_seq=4, heard_diverted=1)
    assert t.open and t.batch == 5 and list(t.outstanding) == [2, 3] and t.heard_diverted == 1
    assert t.announce("L4", 0.0).seq == 4
    r = t.resolve({"batch": "0005", "seq": "0003"}, settle_skipped=False)
    assert r.piece.letter_id == "L3" and not r.skipped and list(t.outstanding) == [2, 4]
