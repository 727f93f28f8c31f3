"""Batch printing without a print server: layout, coverage, manifest, IPP wire format."""

from __future__ import annotations

import struct

import pytest

from appliance.core.errors import ConfigError, UserError
from drivers.cups.batch import Manifest, covered, layout
from drivers.cups.device import ENUM, INTEGER, KEYWORD, NAME, decode, encode, http_url, jobs_of
from drivers.cups.printer import CupsPrinter


def test_layout_counts_sides_and_sheets_cumulatively():
    slots = layout([("a", 2), ("b", 4), ("c", 2)], duplex=True)
    assert [(s.position, s.end_impressions, s.end_sheets) for s in slots] == [(1, 2, 1), (2, 6, 3), (3, 8, 4)]
    simplex = layout([("a", 1), ("b", 3)], duplex=False)
    assert [(s.sheets, s.end_sheets) for s in simplex] == [(1, 1), (3, 4)]


def test_a_letter_is_covered_only_when_all_its_sides_are_out():
    slots = layout([("a", 2), ("b", 4), ("c", 2)], duplex=True)
    assert covered(slots, 0, 0) == 0
    assert covered(slots, 5, 0) == 1  # b's last side not yet printed
    assert covered(slots, 6, 0) == 2
    assert covered(slots, 0, 3) == 2  # sheets prove it too
    assert covered(slots, 99, 0) == 3


def test_manifest_survives_a_reopen_and_a_damaged_one_is_one_clear_line(tmp_path):
    path = tmp_path / "m.json"
    m = Manifest(path)
    seq = m.next_seq()
    m.record(f"batch-a-2-{seq}", layout([("a", 2), ("b", 1)], duplex=True))
    again = Manifest(path)
    assert [s.letter_id for s in again.batches_with(["b"])[f"batch-a-2-{seq}"]] == ["a", "b"]
    assert again.next_seq() == seq + 1
    path.write_text("{not json")
    with pytest.raises(UserError, match="batch manifest .* is damaged"):
        Manifest(path)


def test_bad_batch_settings_are_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="batch_letters must be >= 1"):
        CupsPrinter("p", {"batch_letters": 0}, lambda e: None, state_dir=tmp_path)
    assert CupsPrinter("p", {"batch_letters": 1}, lambda e: None, state_dir=tmp_path).batcher is None


def test_ipp_get_jobs_request_and_response_round_trip():
    body = encode(0x000A, 7, [(KEYWORD, "requested-attributes", ["job-id", "job-name"])])
    assert body[:8] == struct.pack(">BBHI", 1, 1, 0x000A, 7)
    response = bytearray(struct.pack(">BBHI", 1, 1, 0, 7)) + b"\x02"
    for tag, name, value in ((INTEGER, "job-id", 3), (NAME, "job-name", "batch-x-2-1"),
                             (ENUM, "job-state", 5), (INTEGER, "job-impressions-completed", 4)):
        data = struct.pack(">i", value) if isinstance(value, int) else value.encode()
        response += struct.pack(">BH", tag, len(name)) + name.encode() + struct.pack(">H", len(data)) + data
    response += b"\x03"
    status, groups = decode(bytes(response))
    assert status == 0
    (job,) = jobs_of(groups)
    assert (job.job_id, job.name, job.state, job.impressions, job.sheets) == (3, "batch-x-2-1", 5, 4, 0)


def test_only_ipp_devices_can_be_asked():
    assert http_url("ipp://localhost:8631/ipp/print") == "http://localhost:8631/ipp/print"
    assert http_url("ipps://press.local/ipp/print") == "https://press.local:631/ipp/print"
    assert http_url("usb://HP/LaserJet") is None
    assert http_url("dnssd://Press._ipp._tcp.local/") is None
