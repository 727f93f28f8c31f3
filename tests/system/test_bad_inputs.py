"""The bad-input catalogue: every hostile or broken input gets a clear one-line error, the
letter REJECTED with a reason the API received, or left untouched for a person -- and the
good letters in the same run still reach DISPATCHED.

Inputs come from a real server (the sandbox's hostile modes and made-to-order letters),
never from mocks.  Config and profile mistakes extend tests/test_config.py (which already
covers unknown keys/sections, wrong types, ranges, missing keys, bad URLs, jwt fields, TOML
syntax, verify_tls against production, and the profile's driver/type/duplicate/event
mistakes); serial bytes extend tests/test_serial_protocol.py.
"""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from appliance.api.auth import TokenError
from appliance.api.client import ApiError, ResponseTooLarge, ServerError, SupplierClient
from appliance.config.profile import load_profile
from appliance.config.settings import ApiConfig, load_config, sandbox_api
from appliance.core.errors import ConfigError
from appliance.intake.faults import RetryPolicy
from appliance.intake.settings import IntakeSettings
from appliance.sandbox.pdfgen import make_pdf
from drivers.serial.protocol import load_protocol
from tests.fixtures import ROOT
from tests.fixtures.floor import Floor, new_sandbox, statuses

GOOD_PATH = ["ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED"]
PROTOCOLS = ROOT / "hardware-profiles" / "protocols"


def one_line(msg: str) -> str:
    assert "\n" not in msg and "Traceback" not in msg and len(msg) < 500, msg
    return msg


def fast_client(sb, **api) -> SupplierClient:
    return SupplierClient(replace(sandbox_api(sb.base_url), max_retries=1, **api),
                          backoff_base=0.01, backoff_cap=0.02)


@pytest.fixture
async def sb():
    sandbox = await new_sandbox(good=3)
    yield sandbox
    await sandbox.stop()


# --- crafted PDFs ------------------------------------------------------------------------

def pdf_pages(n: int) -> bytes:
    return make_pdf("crafted", n)


def pdf_zero_pages() -> bytes:
    pdf = make_pdf("zero", 1)
    return pdf.replace(b"/Kids [4 0 R] /Count 1", b"/Kids [] /Count 0")


def pdf_truncated() -> bytes:
    pdf = make_pdf("cut", 5)
    return pdf[: len(pdf) // 2]


def pdf_truncated_then_repaired() -> bytes:
    """Cut after page 3 and given a fresh trailer: a lenient reader finds 3 of 5 pages."""
    pdf = make_pdf("cut", 5)
    return pdf[: pdf.index(b"10 0 obj")] + b"trailer\n<< /Root 1 0 R >>\nstartxref\n0\n%%EOF\n"


def pdf_encrypted() -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf("secret", 2))))
    writer.encrypt(user_password="", owner_password="owner")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_lying_count() -> bytes:
    return make_pdf("liar", 2).replace(b"/Count 2", b"/Count 5000")


# --- PDFs: each REJECTED with its reason, the good letters DISPATCHED ----------------------

PDF_CASES = {
    # name: (add_letter kwargs, reasonCode, words in reasonText)
    "wrong hash": (dict(sha256="0" * 64), "HASH_MISMATCH", "sha256"),
    "hash not hex": (dict(sha256="../../etc/passwd"), "HASH_MISMATCH", "sha256"),
    "truncated": (dict(pdf=pdf_truncated()), "PDF_UNREADABLE", "truncated"),
    "truncated, repaired trailer": (dict(pdf=pdf_truncated_then_repaired()), "PDF_UNREADABLE",
                                    "/Count says 5 pages, 3 can be read"),
    "encrypted": (dict(pdf=pdf_encrypted()), "PDF_UNREADABLE", "encrypted"),
    "not a PDF (html)": (dict(pdf=b"<html><body>502 Bad Gateway</body></html>"),
                         "PDF_UNREADABLE", "not a PDF"),
    "empty file": (dict(pdf=b""), "PDF_UNREADABLE", "not a PDF"),
    "500 pages": (dict(pdf=pdf_pages(500)), "TOO_MANY_SIDES", "500"),
    "page count lies (5000)": (dict(pdf=pdf_lying_count()), "TOO_MANY_SIDES", "5000"),
    "zero pages": (dict(pdf=pdf_zero_pages()), "PDF_EMPTY", "no pages"),
    "too many sheets for the pack": (dict(pdf=pdf_pages(9), specification_id="notify-c5"),
                                     "TOO_MANY_SHEETS", "5 sheets, at most 4"),
    "too many sides for the pack": (dict(pdf=pdf_pages(12), specification_id="notify-c5"),
                                    "TOO_MANY_SIDES", "12 sides, at most 9"),
    "unknown specification": (dict(specification_id="no-such-pack"), "UNKNOWN_SPECIFICATION",
                              "specificationId"),
    "over the size cap": (dict(pdf=b"%PDF-1.4\n" + b"0" * 250_000), "TOO_LARGE", "size cap"),
}


@pytest.mark.parametrize("case", PDF_CASES)
async def test_bad_pdf_is_rejected_with_reason_and_good_letters_dispatched(sb, tmp_path, case):
    kwargs, code, words = PDF_CASES[case]
    bad = sb.add_letter(**kwargs)
    good = [lid for lid in sb.letters if lid != bad]
    async with Floor(sb, tmp_path, max_pdf_bytes=200_000) as floor:
        await floor.wait_final(sb.letters)
    letter = sb.letters[bad]
    assert statuses(sb, bad) == ["REJECTED"]
    assert letter.reason_code == code, letter.reason_text
    assert words in letter.reason_text
    for lid in good:
        assert statuses(sb, lid) == GOOD_PATH
    assert not (tmp_path / "state" / "output" / "mono-duplex" / f"{bad}.pdf").exists()
    assert not list((tmp_path / "state" / "spool").iterdir())  # nothing of it left behind


# --- list items that break the contract: skipped, never touched, the rest printed ------------

def item(lid="x", **attrs):
    base = {"specificationId": "notify-c5", "groupId": "g", "status": "PENDING",
            "sha256Hash": "ab" * 32}
    base.update(attrs)
    return {"id": lid, "type": "Letter", "attributes": {k: v for k, v in base.items() if v is not None}}


LONG = "A" * 10_240
LIST_ITEM_CASES = {
    # name: (letter id, listing or None for the standard one, words in the warning)
    "id ../x": ("../x", None, "not a plain id"),
    "id with slash": ("a/b", None, "not a plain id"),
    "id 10 kB": (LONG, None, "not a plain id"),
    "id with newline": ("abc\n", None, "not a plain id"),
    "id with NUL": ("abc\x00", None, "not a plain id"),
    "id unicode lookalike": ("\u0430bc", None, "not a plain id"),
    "id empty": ("", None, "missing id"),
    "id a number": ("n1", item(12345), "missing id"),
    "missing sha256Hash": ("m1", item("m1", sha256Hash=None), "missing sha256Hash"),
    "missing specificationId": ("m2", item("m2", specificationId=None), "missing specificationId"),
    "attributes a list": ("m3", {"id": "m3", "type": "Letter", "attributes": []}, "without attributes"),
    "item a string": ("m4", "letter m4", "without attributes"),
    "status unknown": ("s1", item("s1", status="EXPLODED"), "unknown status 'EXPLODED'"),
    "status not PENDING": ("s2", item("s2", status="CANCELLED"), "listed as CANCELLED"),
    "specificationId a number": ("t1", item("t1", specificationId=7), "missing specificationId"),
    "groupId a list": ("t2", item("t2", groupId=["g"]), "bad groupId"),
    "specificationId 10 kB": ("t3", item("t3", specificationId=LONG), "bad specificationId"),
}


@pytest.mark.parametrize("case", LIST_ITEM_CASES)
async def test_malformed_list_item_is_skipped_with_one_line_warning(sb, case):
    lid, listing, words = LIST_ITEM_CASES[case]
    sb.add_letter(letter_id=lid, listing=listing)
    seen = []
    async with fast_client(sb) as c:
        c.on_malformed = seen.append
        refs = await c.list_letters()
    assert sorted(r.id for r in refs) == sorted(l for l in sb.letters if l != lid)
    assert len(seen) == 1 and words in one_line(seen[0]), seen
    assert c.stats["malformed"] == 1


async def test_every_malformed_item_at_once_in_a_real_run(sb, tmp_path):
    """All the hostile items in one list: none is downloaded or reported on, and the good
    letters around them are printed and DISPATCHED."""
    bad = [sb.add_letter(letter_id=lid, listing=listing)
           for lid, listing, _ in LIST_ITEM_CASES.values()]
    good = [lid for lid in sb.letters if lid not in bad]
    async with Floor(sb, tmp_path) as floor:
        await floor.wait_final(good)
        # each seen and ignored (the listing then hides them for its visibility timeout)
        await floor.wait(lambda: floor.client.stats["malformed"] >= len(bad))
    for lid in good:
        assert statuses(sb, lid) == GOOD_PATH
    for lid in bad:
        assert sb.letters[lid].status == "PENDING"  # the API still holds it for a person
    touched = [r.path for r in sb.log if r.kind not in ("list", "post_letters")]
    assert all(any(g in p for g in good) for p in touched), touched
    sent = b"".join(r.body for r in sb.log if r.kind == "post_letters")
    assert b"../x" not in sent and LONG.encode() not in sent


# --- whole answers that are broken: one-line error, the next poll carries on -------------

LIST_MODES = {
    # mode: words in the error
    "invalid_json": "not valid JSON",
    "not_object": "not a JSON object",
    "errors_200": "answer carries errors: hostile",
    "huge_body": "over the 20971520-byte size cap",
    "html": "not valid JSON",
    "redirect": "HTTP 307",
}


@pytest.mark.parametrize("mode", LIST_MODES)
async def test_broken_list_answer_is_one_line_error(sb, mode):
    other = await new_sandbox(good=1)
    sb.faults.hostile, sb.faults.redirect_to = mode, other.base_url
    try:
        async with fast_client(sb) as c:
            with pytest.raises(ApiError) as e:
                await c.list_letters()
    finally:
        await other.stop()
    assert LIST_MODES[mode] in one_line(str(e.value))
    assert other.log == []  # a redirect is never followed, to any host


@pytest.mark.parametrize("mode", ["invalid_json", "huge_body", "redirect"])
async def test_pipeline_rides_out_broken_list_answers(sb, tmp_path, mode):
    sb.faults.hostile, sb.faults.hostile_count = mode, 2
    sb.faults.redirect_to = "http://127.0.0.1:9"
    async with Floor(sb, tmp_path) as floor:
        await floor.wait_final(sb.letters)
    assert all(statuses(sb, lid) == GOOD_PATH for lid in sb.letters)
    refused = [a for a in floor.alerts() if a.startswith("cannot list letters")]
    assert len(refused) >= 2 and all(one_line(a) for a in refused)


@pytest.mark.parametrize("kind, mode, error, words", [
    ("get", "huge_body", ResponseTooLarge, "over the 1048576-byte size cap"),
    ("get", "not_object", ApiError, "not a JSON object"),
    ("get", "errors_200", ApiError, "carries errors"),
    ("get", "huge_error", ServerError, "HTTP 500"),
])
async def test_broken_single_letter_answers(sb, kind, mode, error, words):
    sb.faults.hostile, sb.faults.hostile_scope = mode, {kind}
    sb.faults.huge_bytes = 2 * 1024 * 1024
    async with fast_client(sb) as c:
        with pytest.raises(error) as e:
            await c.get_letter(next(iter(sb.letters)))
    assert words in one_line(str(e.value))  # a 2 MB error body is cut to a short message


async def test_get_letter_answering_for_another_letter(sb):
    first, second = list(sb.letters)[:2]
    sb.letters[first].listing = sb.letters[second].resource()
    async with fast_client(sb) as c:
        with pytest.raises(ApiError, match=f"answered with letter {second}"):
            await c.get_letter(first)


@pytest.mark.parametrize("mode, words", [("invalid_json", "unusable answer"),
                                         ("missing_token", "access_token"),
                                         ("huge_body", "size cap"),
                                         ("redirect", "HTTP 307")])
async def test_broken_token_answers_are_one_line_token_errors(tmp_path, mode, words):
    from tests.fixtures.keys import jwt_sandbox, write_key  # one key pair for both files

    async with jwt_sandbox() as (asb, keys):
        asb.faults.hostile, asb.faults.hostile_scope = mode, {"token"}
        asb.faults.redirect_to = "http://127.0.0.1:9"
        api = ApiConfig(base_url=asb.base_url, auth="jwt", api_key="k", kid=keys.kid,
                        private_key=write_key(tmp_path, keys.pem), token_url=asb.token_url,
                        max_retries=1)
        async with SupplierClient(api, backoff_base=0.01) as c:
            with pytest.raises(TokenError) as e:
                await c.list_letters()
    assert words in one_line(str(e.value))
    assert [r.kind for r in asb.log] == ["token"]  # no API call without a token


@pytest.mark.parametrize("location, words", [("", "without a Location"),
                                             ("file:///etc/passwd", "not an http(s) URL"),
                                             ("gopher://127.0.0.1:9/x", "not an http(s) URL")])
async def test_bad_303_location_holds_that_letter_only(sb, tmp_path, location, words):
    """A broken /data answer is the service's fault, not the letter's: retried, then held for
    a person, never REJECTED (it was REJECTED DOWNLOAD_FAILED before)."""
    bad = sb.add_letter(location=location)
    quick = IntakeSettings(workers=1, retry=RetryPolicy(first=0.1, cap=0.3, budget=1.5))
    async with Floor(sb, tmp_path, intake=quick) as floor:
        await floor.wait_final([lid for lid in sb.letters if lid != bad])
        await floor.wait(lambda: floor.store.get(bad)["stage"] == "intake-hold")
        held = floor.store.get(bad)
    assert statuses(sb, bad) == [] and sb.letters[bad].status == "PENDING"
    assert words in one_line(held["hold_reason"]) and held["intake_attempts"] >= 2
    assert all(statuses(sb, lid) == GOOD_PATH for lid in sb.letters if lid != bad)
    assert not [r for r in sb.log if r.kind == "presigned" and bad in r.path]


async def test_client_refuses_unsafe_ids_before_sending(sb):
    async with fast_client(sb) as c:
        for call in (c.get_letter, lambda i: c.patch_letter(i, "ACCEPTED"), c.get_mi,
                     lambda i: c.download(i, Path("/nonexistent/x.pdf"))):
            for lid in ("../x", "a/b", "abc\n", LONG, ""):
                with pytest.raises(ApiError, match="not a plain id"):
                    await call(lid)
    assert sb.log == []


# --- config and profile mistakes not already in tests/test_config.py ------------------------

CONFIG = """
[api]
base_url = "http://127.0.0.1:9000"
auth = "none"
[paths]
state_dir = "state"
profile = "floor.toml"
"""

CONFIG_CASES = [
    (CONFIG.replace('auth = "none"', 'auth = "none"\nmax_pdf_mb = 0'), r"max_pdf_mb: must be greater than 0"),
    (CONFIG.replace('auth = "none"', 'auth = "none"\ntimeout = "30s"'), r"timeout: expected a number"),
    (CONFIG.replace('auth = "none"', 'auth = "none"\nverify_tls = "no"'), r"verify_tls: expected true or false"),
    (CONFIG.replace('auth = "none"', 'auth = "none"\nmax_retries = 2.5'), r"max_retries: expected a whole number"),
    (CONFIG + 'spool = "/tmp"\n', r"\[paths\] spool: unknown key"),
    (CONFIG.replace('state_dir = "state"', "state_dir = 5"), r"state_dir: expected a string"),
    (CONFIG.replace("[api]", "[[api]]"), r"api must be a \[api\] table"),
    (CONFIG + "[poll]\ninterval = 0\n", r"\[poll\] interval: must be greater than 0"),
    (CONFIG.replace('base_url = "http://127.0.0.1:9000"', 'base_url = "http://"'), r"base_url: must be an http"),
    (CONFIG.replace('base_url = "http://127.0.0.1:9000"', "base_url = 9000"), r"base_url: expected a string"),
    ("\x00\x01garbage", r"not valid TOML"),
]


@pytest.mark.parametrize("text, expect", CONFIG_CASES)
def test_more_config_mistakes_are_one_line(tmp_path, text, expect):
    path = tmp_path / "appliance.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expect) as e:
        load_config(path)
    assert str(path) in one_line(str(e.value))


PROFILE = """
[profile]
name = "floor"
[[printer]]
name = "p1"
driver = "file"
[[inserter]]
name = "i1"
driver = "sim"
"""

PROFILE_CASES = [
    (PROFILE.replace('name = "floor"', 'name = "floor"\nprint_attempts = 0'), r"print_attempts: must be at least 1"),
    (PROFILE.replace('name = "floor"', 'name = "floor"\nprint_features = "BRAILLE"'), r"print_features: expected a list"),
    (PROFILE + 'envelopes = "C5"\n', r"'i1' envelopes: expected a list"),
    (PROFILE + "envelopes = [1, 2]\n", r"'i1' envelopes: expected a list of strings"),
    ("printer = [1, 2]\n", r"\[\[printer\]\] #1: must be a table"),
    ("events = 3\n" + PROFILE, r"events must be a table"),
    (PROFILE.replace('driver = "sim"', 'driver = 7'), r"\[\[inserter\]\] #1 driver: expected a string"),
    (PROFILE.replace('[[inserter]]\nname = "i1"\n', '[[inserter]]\n'), r"\[\[inserter\]\] #1 name: missing"),
    (PROFILE.replace('driver = "sim"', 'driver = "cups"'), r"unknown inserter driver 'cups'"),
    (PROFILE + '[events]\n"job.completed" = 3\n', r"3 is not a status or action"),
    ("[profile\n", r"not valid TOML"),
]


@pytest.mark.parametrize("text, expect", PROFILE_CASES)
def test_more_profile_mistakes_are_one_line(tmp_path, text, expect):
    path = tmp_path / "floor.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expect) as e:
        load_profile(path)
    assert str(path) in one_line(str(e.value))


# Mistakes that once escaped as tracebacks or were accepted: each is now one ConfigError.


@pytest.mark.parametrize("raw, loader", [
    (b'[api]\nbase_url = "\xff\xfe"\n', "config"),  # not UTF-8: UnicodeDecodeError escapes
    (b'[profile]\nname = "\xff"\n', "profile"),
    (b'profile = "x"\n[[printer]]\nname = "p"\ndriver = "file"\n', "profile"),  # AttributeError
    (b'[[printer]]\nname = "../../../tmp/x"\ndriver = "file"\n', "profile"),  # path in a name
    (b'[[printer]]\nname = ""\ndriver = "file"\n', "profile"),
    (CONFIG.replace('auth = "none"', 'auth = "none"\nmax_retries = -3').encode(), "config"),
    (CONFIG.replace('profile = "floor.toml"', 'profile = ""').encode(), "config"),
])
def test_config_gaps(tmp_path, raw, loader):
    path = tmp_path / "file.toml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as e:
        (load_config if loader == "config" else load_profile)(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_config_that_is_a_directory_is_a_config_error(tmp_path):
    (tmp_path / "appliance.toml").mkdir()
    with pytest.raises(ConfigError):
        load_config(tmp_path / "appliance.toml")


def test_appliance_run_with_broken_config_prints_one_line(tmp_path):
    path = tmp_path / "appliance.toml"
    path.write_text(CONFIG.replace("[api]", "[api]\ncolour = true"))
    proc = subprocess.run([sys.executable, "-m", "appliance", "run", "--config", str(path),
                           "--socket", str(tmp_path / "ctl.sock")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == "" and proc.stderr.count("\n") == 1
    assert "[api] colour: unknown key" in proc.stderr and "Traceback" not in proc.stderr


# --- serial bytes (engine in drivers/serial_protocol.py) --------------------------------

SERIAL_LINE = [
    # bytes from the device -> (good lines, errors)
    (b"\x00\xff\x1b[2J\x07", 0, []),  # pure noise: dropped and counted, nothing decoded
    (b"A" * 5000 + b"\r\n", 0, ["line too long"]),
    (b"\r\n\r\n\n\r", 0, []),
]
SERIAL_STX = [
    (b"\x02PIECE 1\x03ZZ", ["bad checksum"]),
    (b"\x02" + b"B" * 5000, ["frame too long"]),
    (b"\x02half a frame\x02", []),  # restarted: partial frame dropped
    (b"junk before\x03\x03\x03", []),
]


@pytest.mark.parametrize("data, good, errors", SERIAL_LINE)
def test_serial_line_noise_never_becomes_an_event(data, good, errors):
    proto = load_protocol(PROTOCOLS / "lf3000-ascii.toml")
    frames = proto.framer().feed(data)
    assert sum(f.ok for f in frames) == good
    assert [f.error for f in frames if not f.ok] == errors
    assert not any(f.ok and proto.match(f.text) for f in frames)


@pytest.mark.parametrize("data, errors", SERIAL_STX)
def test_serial_stx_frames_with_bad_bytes_are_refused(data, errors):
    proto = load_protocol(PROTOCOLS / "fm200-stx.toml")
    framer = proto.framer()
    frames = framer.feed(data)
    assert [f.error for f in frames] == errors
    good = framer.feed(framer.encode("OK"))  # and the framer is still in step afterwards
    assert [f.text for f in good] == ["OK"]
