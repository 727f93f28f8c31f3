"""Is this PDF the letter we were sent, and does it fit its pack?  Pure: no I/O.

An intake worker reads the file (``appliance.intake.pdfcheck``) into ``PdfFacts``;
``judge`` decides, so every rule is tested with plain values.  Content faults only:
whatever ``judge`` refuses is REJECTED with a specific reason code.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.core.packs import Pack
from appliance.core.status import REJECT_REASONS

#: Refuse to count beyond this many pages: a hostile PDF must not pin the CPU.
MAX_PAGES = 1000

#: Sheet sizes in mm (portrait) for the pack specifications' ``paper.size``.
PAPER_MM: dict[str, tuple[float, float]] = {
    "A3": (297.0, 420.0), "A4": (210.0, 297.0), "A5": (148.0, 210.0),
    "B4": (250.0, 353.0), "B5": (176.0, 250.0), "LETTER": (215.9, 279.4), "LEGAL": (215.9, 355.6),
}


@dataclass(frozen=True)
class PdfFacts:
    pages: int | None  # None: not a PDF that can be printed as sent (``problem`` says why)
    problem: str = ""
    problem_code: str = ""  # PDF_UNREADABLE (default) or PDF_TOO_COMPLEX
    page_sizes: tuple[tuple[float, float], ...] = ()  # effective (width, height) in mm per page
    rotations: tuple[int, ...] = ()  # /Rotate per page as written (-1: not a number)
    active: tuple[str, ...] = ()  # active content found ("JavaScript", "a /Launch action", ...)
    decoded_bytes: int = 0  # all streams decoded
    warnings: int = 0  # pypdf warnings while reading (repairs it made)
    # Ink coverage per page in percent (``appliance.intake.coverage``); empty: not measured
    # (intake ``coverage = false``, or more pages than are measured).
    black_coverage: tuple[float, ...] = ()
    colour_coverage: tuple[float, ...] = ()


@dataclass(frozen=True)
class VerifyPolicy:
    """What a floor accepts beyond the pack (hardware profile ``[verify]``)."""

    page_tolerance_mm: float = 3.0
    allow_active_content: bool = False


@dataclass(frozen=True)
class Verdict:
    ok: bool
    pages: int = 0
    sheets: int = 0
    reason_code: str | None = None
    reason_text: str | None = None


def _reject(code: str, detail: str = "") -> Verdict:
    text = REJECT_REASONS[code] + (f" ({detail})" if detail else "")
    return Verdict(False, reason_code=code, reason_text=text)


def _size_problem(sizes: tuple[tuple[float, float], ...], paper: str, tol: float) -> str | None:
    want = PAPER_MM.get(paper.upper())
    if want is None:
        return None  # a paper size this table does not know: not checked
    short, long_ = sorted(want)
    for n, (w, h) in enumerate(sizes, 1):
        a, b = sorted((w, h))
        if abs(a - short) > tol or abs(b - long_) > tol:
            return (f"page {n} is {w:g} x {h:g} mm; pack paper {paper} is {want[0]:g} x {want[1]:g} mm "
                    f"(within {tol:g} mm)")
    return None


def judge(expected_sha256: str, actual_sha256: str, facts: PdfFacts, pack: Pack | None,
          policy: VerifyPolicy = VerifyPolicy()) -> Verdict:
    if pack is None:
        return _reject("UNKNOWN_SPECIFICATION")
    if expected_sha256.lower() != actual_sha256.lower():
        return _reject("HASH_MISMATCH")
    if facts.pages is None:
        return _reject(facts.problem_code or "PDF_UNREADABLE", facts.problem)
    if facts.pages == 0:
        return _reject("PDF_EMPTY")
    if facts.pages > MAX_PAGES:
        return _reject("TOO_MANY_SIDES", f"{facts.pages} pages")
    sheets = pack.sheets_for(facts.pages)
    if pack.max_sides is not None and facts.pages > pack.max_sides:
        return _reject("TOO_MANY_SIDES", f"{facts.pages} sides, at most {pack.max_sides}")
    if pack.max_sheets is not None and sheets > pack.max_sheets:
        return _reject("TOO_MANY_SHEETS", f"{sheets} sheets, at most {pack.max_sheets}")
    if facts.active and not policy.allow_active_content:
        return _reject("ACTIVE_CONTENT", ", ".join(facts.active))
    for n, rotate in enumerate(facts.rotations, 1):
        if rotate % 90:
            return _reject("BAD_ROTATION", f"page {n} has /Rotate {rotate}")
    problem = _size_problem(facts.page_sizes, pack.paper_size, policy.page_tolerance_mm)
    if problem:
        return _reject("PAGE_SIZE_MISMATCH", problem)
    problem = _coverage_problem(facts, pack)
    if problem:
        return _reject("COVERAGE_EXCEEDED", problem)
    return Verdict(True, facts.pages, sheets)


def _coverage_problem(facts: PdfFacts, pack: Pack) -> str | None:
    """The first page over the pack's bound, checked on the measured value as it is (the
    renderer's accuracy is stated in ``appliance.intake.coverage``)."""
    for what, bound, values in (("black", pack.black_coverage, facts.black_coverage),
                                ("colour", pack.colour_coverage, facts.colour_coverage)):
        if bound is None:
            continue
        for n, value in enumerate(values, 1):
            if not bound.allows(value):
                return f"page {n} {what} coverage {value:.1f} %; pack {pack.id} allows {bound.describe()} %"
    return None


def coverage_summary(facts: PdfFacts) -> dict:
    """What a verified letter stores: the largest black and colour coverage and their pages."""
    out: dict = {}
    for what, values in (("black", facts.black_coverage), ("colour", facts.colour_coverage)):
        if values:
            top = max(range(len(values)), key=values.__getitem__)
            out[f"coverage_{what}"] = values[top]
            out[f"coverage_{what}_page"] = top + 1
    return out


def describe_coverage(rec: dict) -> str:
    """A letter's stored coverage as one line ("black 12.3 % (page 2), colour 4.0 % (page 1)");
    "" when it was not measured."""
    parts = [f"{what} {rec[f'coverage_{what}']:.1f} % (page {rec.get(f'coverage_{what}_page')})"
             for what in ("black", "colour") if rec.get(f"coverage_{what}") is not None]
    return ", ".join(parts)
