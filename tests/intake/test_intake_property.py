"""Property: whatever bytes a PDF is mutated into, the real worker pool returns a verdict
within its budget -- never an exception, never a hang, never a dead pool."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.core.verify import PdfFacts
from appliance.intake.coverage import CoverageLimits
from appliance.intake.pdfcheck import CheckLimits
from appliance.intake.pool import IntakePool, WorkerDied
from appliance.intake.settings import IntakeSettings
from appliance.intake.worker import check_task
from appliance.sandbox.pdfgen import make_pdf
from tests.fixtures import hostile_pdfs

TASK_SECONDS = 10.0
SEEDS = [make_pdf("prop", 3), hostile_pdfs.a4(2), hostile_pdfs.objstm_bomb(streams=2, inflated_mb=1),
         hostile_pdfs.js_open_action(), hostile_pdfs.a4_indirect_count()]


@pytest.fixture(scope="module")
def pool():
    p = IntakePool(IntakeSettings(workers=2, memory_mb=384, cpu_seconds=5, task_seconds=TASK_SECONDS))
    p.start()
    yield p
    p.stop()


def _mutate(data: bytes, ops) -> bytes:
    out = bytearray(data)
    for kind, where, value in ops:
        if not out:
            break
        i = where % len(out)
        if kind == "flip":
            out[i] ^= 1 << (value % 8)
        elif kind == "cut":
            del out[i:]
        elif kind == "insert":
            out[i:i] = bytes([value % 256]) * (1 + value % 64)
        elif kind == "digit":  # numbers steer offsets, lengths and counts
            j = out.find(b"0123456789"[value % 10:value % 10 + 1], i)
            if j >= 0:
                out[j] = ord("0") + (value * 7) % 10
        elif kind == "repeat":
            out[i:i] = out[i:i + 1 + value % 200] * (2 + value % 5)
    return bytes(out)


ops = st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert", "digit", "repeat"]),
                         st.integers(0, 1 << 20), st.integers(0, 10_000)), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.sampled_from(range(len(SEEDS))), ops=ops)
def test_mutated_pdfs_always_get_a_verdict_within_budget(pool, tmp_path_factory, seed, ops):
    path = tmp_path_factory.mktemp("m") / "m.pdf"
    path.write_bytes(_mutate(SEEDS[seed], ops))
    job = {"path": str(path), "check": asdict(CheckLimits(max_decoded=50 * 1024 * 1024)),
           "coverage": asdict(CoverageLimits())}  # what pypdf lets through, pdfium renders
    started = time.monotonic()
    try:
        result = asyncio.run(pool.run(check_task, job))
    except WorkerDied as e:  # a limit was hit: also a verdict (PDF_TOO_COMPLEX on the second)
        assert e.kind in ("timeout", "cpu", "killed", "crashed")
        return
    assert time.monotonic() - started < TASK_SECONDS + 5
    assert result["ok"] or result.get("class") == "content", result
    if result["ok"]:
        facts = PdfFacts(**result["facts"])
        assert facts.pages is not None or facts.problem_code in ("PDF_UNREADABLE", "PDF_TOO_COMPLEX")
        assert facts.pages is None or facts.pages >= 0
