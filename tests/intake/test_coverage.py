"""Ink coverage measured in the real intake workers and judged against the pack.

Reference pages carry one filled rectangle of known area and no text (so their true
coverage is that area); the renderer's stated accuracy at the default 36 dpi is 0.3
percentage points, so 19 % and 21 % are decided the right way round a bound of 20 %.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import time
from dataclasses import asdict

import pytest

from appliance.api.client import SupplierClient
from appliance.config.profile import load_profile
from appliance.config.settings import load_config, sandbox_api
from appliance.core.errors import ConfigError
from appliance.core.packs import load_packs
from appliance.core.verify import PdfFacts, describe_coverage, judge
from appliance.intake.coverage import CoverageFault, CoverageLimits, measure, rgb_coverage
from appliance.intake.pdfcheck import CheckLimits
from appliance.intake.pool import IntakePool
from appliance.intake.settings import IntakeSettings
from appliance.intake.worker import check_task
from appliance.pipeline.pipeline import Pipeline, PipelineSettings
from appliance.runtime.demo import demo_profile_path
from appliance.sandbox import Sandbox, SandboxOptions
from appliance.sandbox.letters import LetterFactory
from appliance.sandbox.pdfgen import BLACK, make_pdf
from appliance.store.store import Store
from tests.fixtures import QUICK
from tui.screens.detail import timeline_text

PACKS = load_packs()
ACCURACY = 0.3  # percentage points at 36 dpi (appliance.intake.coverage)
TASK_SECONDS = 10.0
RED = (1.0, 0.0, 0.0)


@pytest.fixture(scope="module")
def pool():
    p = IntakePool(IntakeSettings(workers=2, memory_mb=384, cpu_seconds=5, task_seconds=TASK_SECONDS))
    p.start()
    yield p
    p.stop()


def _check(pool, tmp_path, pdf: bytes, coverage: CoverageLimits | None = CoverageLimits()) -> dict:
    path = tmp_path / "letter.pdf"
    path.write_bytes(pdf)
    job = {"path": str(path), "check": asdict(CheckLimits()),
           "coverage": asdict(coverage) if coverage else None}
    return asyncio.run(pool.run(check_task, job))


def _verdict(pool, tmp_path, pdf: bytes, pack: str):
    result = _check(pool, tmp_path, pdf)
    assert result["ok"], result
    facts = PdfFacts(**result["facts"])
    return judge("a" * 64, "a" * 64, facts, PACKS[pack]), facts


def test_a_page_at_19_percent_black_is_accepted(pool, tmp_path):
    verdict, facts = _verdict(pool, tmp_path, make_pdf("c19", 2, fills=(None, (0.19, BLACK)), text=False),
                              "notify-c5")
    assert verdict.ok, verdict
    assert facts.black_coverage[1] == pytest.approx(19.0, abs=ACCURACY)


def test_a_page_at_21_percent_black_is_rejected_naming_the_page_and_the_value(pool, tmp_path):
    verdict, facts = _verdict(pool, tmp_path, make_pdf("c21", 2, fills=(None, (0.21, BLACK)), text=False),
                              "notify-c5")
    assert not verdict.ok and verdict.reason_code == "COVERAGE_EXCEEDED"
    assert facts.black_coverage[1] == pytest.approx(21.0, abs=ACCURACY)
    assert f"page 2 black coverage {facts.black_coverage[1]:.1f} %" in verdict.reason_text
    assert "pack notify-c5 allows below 20 %" in verdict.reason_text


def test_colour_over_a_colour_packs_bound_is_rejected(pool, tmp_path):
    pdf = make_pdf("red", 1, fills=((0.15, RED),), text=False)
    verdict, facts = _verdict(pool, tmp_path, pdf, "notify-c5-colour")  # colour below 10 %
    assert facts.black_coverage[0] == pytest.approx(0.0, abs=ACCURACY)
    assert facts.colour_coverage[0] == pytest.approx(15.0, abs=ACCURACY)
    assert verdict.reason_code == "COVERAGE_EXCEEDED"
    assert "page 1 colour coverage 15" in verdict.reason_text and "below 10 %" in verdict.reason_text
    ok, _ = _verdict(pool, tmp_path, make_pdf("red", 1, fills=((0.08, RED),), text=False), "notify-c5-colour")
    assert ok.ok, ok


def test_the_bitmap_arithmetic_matches_the_definition_pixel_by_pixel():
    """K = 1 - max(R, G, B), colour = the largest mean of max - channel, on an RGB bitmap
    with row padding, neutral rows, a coloured band and noise."""
    rng = random.Random(4)
    width, height, stride = 37, 70, 37 * 3 + 1
    rows = []
    for y in range(height):
        if y < 20:
            px = bytes(v for _ in range(width) for v in [rng.randrange(256)] * 3)  # greys
        elif y < 40:
            px = bytes([255] * (3 * width))
        else:
            px = bytes(rng.randrange(256) for _ in range(3 * width))
        rows.append(px + b"\x00")
    buf = b"".join(rows)
    pixels = [row[i:i + 3] for row in rows for i in range(0, 3 * width, 3)]
    k = sum(255 - max(p) for p in pixels)
    c = max(sum(max(p) - p[j] for p in pixels) for j in range(3))
    full = 255 * width * height
    assert rgb_coverage(buf, width, height, stride) == (round(100 * k / full, 2), round(100 * c / full, 2))
    assert rgb_coverage(buf[:20 * stride], width, 20, stride)[1] == 0.0


def test_measuring_switched_off_measures_nothing(pool, tmp_path):
    result = _check(pool, tmp_path, make_pdf("off", 1, fills=((0.5, BLACK),)), coverage=None)
    facts = PdfFacts(**result["facts"])
    assert facts.black_coverage == () and judge("a" * 64, "a" * 64, facts, PACKS["notify-c5"]).ok


@pytest.mark.parametrize("share", [0.10, 0.19, 0.21, 0.50])
def test_pdfium_measures_reference_pages_within_its_stated_accuracy(pool, tmp_path, share):
    result = _check(pool, tmp_path, make_pdf("ref", 1, fills=((share, BLACK),), text=False))
    assert PdfFacts(**result["facts"]).black_coverage[0] == pytest.approx(100 * share, abs=ACCURACY)


@pytest.mark.skipif(shutil.which("gs") is None, reason="Ghostscript (gs) is not installed")
def test_ghostscript_inkcov_agrees_on_the_reference_page(pool, tmp_path):
    path = tmp_path / "ref.pdf"
    path.write_bytes(make_pdf("ref", 1, fills=((0.21, BLACK),), text=False))
    out = subprocess.run(["gs", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-q", "-sDEVICE=inkcov", "-r36",
                          "-o", "-", str(path)], capture_output=True, text=True, timeout=30).stdout
    k = float(out.split()[3]) * 100
    pdfium = PdfFacts(**_check(pool, tmp_path, path.read_bytes())["facts"]).black_coverage[0]
    assert k == pytest.approx(21.0, abs=1.0) and pdfium == pytest.approx(k, abs=1.0)


def test_a_huge_mediabox_gets_a_verdict_within_the_worker_budget(pool, tmp_path):
    """A 14 400 pt square page (/UserUnit would make it larger still) must not allocate a
    bitmap of its size: it is rendered coarser and judged (here: the wrong paper size)."""
    pdf = make_pdf("huge", 1, fills=((0.5, BLACK),)).replace(b"/MediaBox [0 0 595 842]",
                                                               b"/MediaBox [0 0 14400 14400]")
    started = time.monotonic()
    result = _check(pool, tmp_path, pdf, CoverageLimits(dpi=300))  # 60 000 px square at 300 dpi
    assert time.monotonic() - started < TASK_SECONDS
    assert result["ok"], result
    facts = PdfFacts(**result["facts"])
    a4_fill = 100 * 595 * 421 / 14400 ** 2  # the fill is A4-sized
    assert facts.black_coverage[0] == pytest.approx(a4_fill, abs=0.1)
    assert judge("a" * 64, "a" * 64, facts, PACKS["notify-c5"]).reason_code == "PAGE_SIZE_MISMATCH"


def test_a_file_the_renderer_cannot_open_is_a_fault_with_one_clear_line(tmp_path):
    """(pypdf refuses such files first; the worker turns this into PDF_UNREADABLE.)"""
    path = tmp_path / "x.pdf"
    path.write_bytes(b"%PDF-1.4\nnot a pdf at all\n%%EOF\n")
    with pytest.raises(CoverageFault, match=r"^the renderer cannot open it \("):
        measure(path)


def test_the_sandbox_serves_every_pack_and_coverage_both_sides_of_20_percent():
    letters = LetterFactory(3).make(200, bad_ratio=0.1)
    assert {lt.specification_id for lt in letters} == set(PACKS)
    assert {"notify-sameday", "client3-abnormal-results"} <= {lt.specification_id for lt in letters}
    tops = [max(s for s, _ in filter(None, lt.fills())) for lt in letters if lt.kind in ("good", "coverage")]
    assert min(tops) < 0.2 < max(tops)
    assert all(max(s for s, _ in filter(None, lt.fills())) > 0.2
               for lt in letters if lt.kind == "coverage")


async def test_the_measured_coverage_is_stored_with_the_letter_and_over_bound_ones_rejected(tmp_path):
    sb = Sandbox(SandboxOptions(**QUICK, letters=0, seed=5))
    await sb.start(host="127.0.0.1", port=0)
    good = sb.add_letters(4, bad_ratio=0)
    over = sb.letters[sb.add_letters(1, bad_ratio=0)[0]]
    over.kind = "coverage"  # its last page 25 to 45 % black
    store = Store(tmp_path / "state")
    client = SupplierClient(sandbox_api(sb.base_url))
    pipe = Pipeline(PipelineSettings(spool_dir=tmp_path / "state" / "spool", poll_interval=0.1,
                                     prove_after=0.2),
                    client, store, load_profile(demo_profile_path()), PACKS, state_dir=tmp_path / "state")
    try:
        await pipe.start()
        assert await pipe.run_until_idle(timeout=60)
        recs = {i: store.get(i) for i in good}
    finally:
        await pipe.stop()
        await client.aclose()
        store.close()
        await sb.stop()
    for letter_id, rec in recs.items():
        letter = sb.letters[letter_id]
        share, _ = letter.fills()[0]
        measured = rec["coverage_colour"] if letter.colour else rec["coverage_black"]
        assert measured == pytest.approx(100 * share, abs=1.0)  # the page's text adds ~0.2 %
        line = describe_coverage(rec)
        assert line.startswith("black ") and "(page 1)" in line
        assert f"coverage         {line}" in timeline_text(rec).plain  # the console's letter detail
        assert f"mailpiece        {rec['weight_g']:.1f} g" in timeline_text(rec).plain  # and its weight
    assert over.status == "REJECTED" and over.reason_code == "COVERAGE_EXCEEDED"
    assert f"page {over.pages} black coverage" in over.reason_text


def test_the_intake_settings_switch_measuring_and_refuse_a_silly_resolution(tmp_path):
    base = '[api]\nbase_url = "http://127.0.0.1:9000"\nauth = "none"\n[paths]\nprofile = "p.toml"\n[intake]\n'
    (tmp_path / "a.toml").write_text(base + "coverage = false\ncoverage_dpi = 72\n")
    intake = load_config(tmp_path / "a.toml").intake
    assert (intake.coverage, intake.coverage_dpi) == (False, 72)
    assert IntakeSettings().coverage and IntakeSettings().coverage_dpi == 36  # default: measured
    (tmp_path / "b.toml").write_text(base + "coverage_dpi = 5\n")
    with pytest.raises(ConfigError, match=r"\[intake\] coverage_dpi: must be 9 to 300"):
        load_config(tmp_path / "b.toml")


def test_a_spool_file_removed_during_the_check_is_a_transport_fault_not_a_verdict(pool, tmp_path):
    """The daemon deletes a spooled copy when it lets a letter go back to Notify; a check
    that then finds no file must not say PDF_UNREADABLE (REJECTED) nor log a traceback as a
    worker bug (seen in the two-floor test: pdfium's FileNotFoundError)."""
    job = {"path": str(tmp_path / "gone.pdf"), "cpu_seconds": 5, "memory_mb": 384,
           "check": asdict(CheckLimits()), "coverage": asdict(CoverageLimits())}
    result = asyncio.run(pool.run(check_task, job))
    assert result["class"] == "transport" and result["kind"] == "spool" and "trace" not in result
