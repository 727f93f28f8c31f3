"""The pure rules of intake: fault classes and retry schedule, pre-signed host policy,
bounded decoding, JSON limits, and the PDF verdicts on the hostile catalogue."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import zlib

import pytest

from appliance.api.limits import BadJson, parse_json
from appliance.core.decoding import Overflow, UnsupportedEncoding, decode_bounded, decoders_for
from appliance.core.packs import load_packs
from appliance.core.verify import PdfFacts, VerifyPolicy, judge
from appliance.intake import faults
from appliance.intake.faults import FaultClass, RetryPolicy, decide
from appliance.intake.hosts import HostPolicy, HostRefused, parse_rule
from appliance.intake.pdfcheck import CheckLimits, check_pdf
from tests.fixtures.hostile_pdfs import CATALOGUE, EXPECTED

POLICY = RetryPolicy(first=5, factor=3, cap=300, budget=7200, jitter=0.2, deaths=2)


# --- fault classes -------------------------------------------------------------------------

def test_content_fault_is_rejected_at_once_with_its_code():
    d = decide(faults.content("ACTIVE_CONTENT", "JavaScript"), attempts=1, first_fault=None,
               deaths=0, now=100.0, policy=POLICY, rand=0.5)
    assert d.action == "reject" and d.code == "ACTIVE_CONTENT" and "JavaScript" in d.text


@pytest.mark.parametrize("kind", ["stall", "timeout", "short", "reset", "http", "dns", "api",
                                  "policy", "redirect", "tls", "internal"])
def test_transport_faults_are_retried_never_rejected(kind):
    d = decide(faults.transport(kind, "storage answered 503"), attempts=1, first_fault=None,
               deaths=0, now=100.0, policy=POLICY, rand=0.5)
    assert d.action == "retry" and d.at == pytest.approx(105.0)


def test_transport_backoff_grows_to_the_cap_and_then_a_person_is_asked():
    waits = [faults.backoff(n, POLICY, 0.5) for n in range(1, 8)]
    assert waits[:4] == [5, 15, 45, 135] and waits[-1] == 300
    assert 4.0 <= faults.backoff(1, POLICY, 0.0) < faults.backoff(1, POLICY, 0.99) <= 6.0
    late = decide(faults.transport("http", "storage answered 503"), attempts=40, first_fault=0.0,
                  deaths=0, now=7200.0, policy=POLICY, rand=0.5)
    assert late.action == "hold" and "2 h" in late.text and "503" in late.text


def test_a_worker_dying_twice_on_one_letter_rejects_it_naming_the_limit():
    first = decide(faults.worker("cpu", "worker hit its CPU limit (30 s)"), attempts=1,
                   first_fault=None, deaths=0, now=10.0, policy=POLICY)
    assert first.action == "retry"
    second = decide(faults.worker("cpu", "worker hit its CPU limit (30 s)"), attempts=2,
                    first_fault=10.0, deaths=1, now=20.0, policy=POLICY)
    assert second.action == "reject" and second.code == "PDF_TOO_COMPLEX"
    assert "CPU limit (30 s), 2 times" in second.text


def test_every_fault_class_has_a_rule():
    assert {c for c in FaultClass} == {FaultClass.CONTENT, FaultClass.TRANSPORT, FaultClass.WORKER}
    with pytest.raises(ValueError):
        faults.content("NOT_A_CODE")


# --- pre-signed hosts ----------------------------------------------------------------------

def test_default_policy_allows_s3_over_https_only():
    p = HostPolicy.parse(["*.amazonaws.com"])
    assert p.rule_for("https", "bucket.s3.eu-west-2.amazonaws.com", None)
    for scheme, host, port, words in [
            ("http", "bucket.s3.amazonaws.com", None, "plain http"),
            ("https", "amazonaws.com.evil.example", None, r"not in \[api\] presigned_hosts"),
            ("https", "evilamazonaws.com", None, "not in"),
            ("https", "bucket.s3.amazonaws.com", 8443, "not in"),
            ("ftp", "bucket.s3.amazonaws.com", None, "not https")]:
        with pytest.raises(HostRefused, match=words):
            p.rule_for(scheme, host, port)


def test_names_never_reach_private_addresses_unless_the_address_is_listed():
    p = HostPolicy.parse(["*.amazonaws.com", "http://127.0.0.1:9000", "localhost"])
    s3 = p.rule_for("https", "b.s3.amazonaws.com", None)
    p.check_addresses(s3, "b.s3.amazonaws.com", ["52.95.150.10"])
    for bad in ["169.254.169.254", "127.0.0.1", "10.0.0.5", "192.168.1.1", "100.64.0.1", "::1",
                "fd00:ec2::254", "::ffff:169.254.169.254", "0.0.0.0", "224.0.0.1"]:
        with pytest.raises(HostRefused, match="non-public"):
            p.check_addresses(s3, "b.s3.amazonaws.com", ["52.95.150.10", bad])
    sandbox = p.rule_for("http", "127.0.0.1", 9000)
    p.check_addresses(sandbox, "127.0.0.1", ["127.0.0.1"])
    with pytest.raises(HostRefused):  # a listed *name* resolving to loopback is still refused
        p.check_addresses(p.rule_for("https", "localhost", None), "localhost", ["127.0.0.1"])
    with pytest.raises(HostRefused):
        p.rule_for("http", "127.0.0.1", 9001)


@pytest.mark.parametrize("entry", ["", "https://", "*.", "a.*.com", "host/path", "user@host",
                                   "host:99999", "*.10.0.0.1", "[::1"])
def test_bad_presigned_host_entries_are_refused_with_a_reason(entry):
    with pytest.raises(ValueError):
        parse_rule(entry)


# --- bounded decoding, JSON limits -----------------------------------------------------------

def test_two_layer_gzip_bomb_is_stopped_after_the_cap():
    inner = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    layer = b"".join(inner.compress(b" " * (1 << 20)) for _ in range(64)) + inner.flush()
    bomb = gzip.compress(layer)
    with pytest.raises(Overflow):
        decode_bounded(decoders_for("gzip, gzip"), bomb, 1 << 20)
    assert b"".join(decode_bounded(decoders_for("gzip"), gzip.compress(b"x" * 10), 100)) == b"x" * 10
    with pytest.raises(UnsupportedEncoding):
        decoders_for("br")


def test_json_nesting_is_limited_without_recursion():
    with pytest.raises(BadJson, match="nested deeper"):
        parse_json(b"[" * 100_000)
    with pytest.raises(BadJson, match="nested deeper"):
        parse_json(b'{"a":' * 40 + b"1" + b"}" * 40)
    assert parse_json(b'{"data": [{"s": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"["}]}') == {
        "data": [{"s": '[' * 40 + '"['}]}
    with pytest.raises(BadJson, match="not valid JSON"):
        parse_json(b'{"data": [')


# --- verdicts -------------------------------------------------------------------------------

def _unbounded(pack):
    return dataclasses.replace(pack, max_sides=None, max_sheets=None)


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_hostile_catalogue_verdicts(name, tmp_path):
    data = CATALOGUE[name]()
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(data)
    facts = check_pdf(path, CheckLimits(max_decoded=100 * 1024 * 1024))
    sha = hashlib.sha256(data).hexdigest()
    verdict = judge(sha, sha, facts, _unbounded(load_packs()["notify-c5"]))
    assert ("ok" if verdict.ok else verdict.reason_code) == EXPECTED[name], verdict.reason_text


def test_page_size_tolerance_and_policy_for_active_content():
    pack = load_packs()["notify-c5"]
    near = PdfFacts(1, page_sizes=((212.5, 295.0),), rotations=(0,))
    assert judge("a", "a", near, pack).ok
    assert judge("a", "a", near, pack, VerifyPolicy(page_tolerance_mm=1.0)).reason_code == "PAGE_SIZE_MISMATCH"
    js = PdfFacts(1, page_sizes=((210, 297),), rotations=(0,), active=("JavaScript",))
    assert judge("a", "a", js, pack).reason_code == "ACTIVE_CONTENT"
    assert judge("a", "a", js, pack, VerifyPolicy(allow_active_content=True)).ok
    assert "page 2 is 215.9 x 279.4 mm" in judge(
        "a", "a", PdfFacts(2, page_sizes=((210, 297), (215.9, 279.4)), rotations=(0, 0)), pack).reason_text


def test_pdf_warnings_are_counted_not_logged(tmp_path, caplog):
    import re

    data = CATALOGUE["a4"]()
    at = int(re.search(rb"startxref\s+(\d+)", data).group(1))
    broken = re.sub(rb"startxref\s+\d+", b"startxref\n%d" % (at + 7), data)  # pypdf repairs this
    path = tmp_path / "w.pdf"
    path.write_bytes(broken)
    with caplog.at_level("WARNING", logger="pypdf"):
        facts = check_pdf(path)
    assert facts.pages == 2 and facts.warnings >= 1
    assert not [r for r in caplog.records if r.name.startswith("pypdf")]


def test_default_check_slots_are_two_more_than_the_cores():
    """One slot per core left the cores idle while each check's result travelled back to the
    loop (2 cores: 114 letters/s with 2 slots, 151 with 4; BENCHMARKS.md)."""
    import os

    from appliance.intake.settings import IntakeSettings, default_workers

    assert default_workers() == len(os.sched_getaffinity(0)) + 2 == IntakeSettings().workers
