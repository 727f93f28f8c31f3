"""Is this PDF the letter we were sent, and does it fit its pack?

``inspect_pdf`` reads the file (pypdf); ``judge`` is the pure decision, so the rules are
tested with plain values.
"""

from __future__ import annotations

from dataclasses import dataclass

from .packs import Pack
from .status import REJECT_REASONS

#: Refuse to count beyond this many pages: a hostile PDF must not pin the CPU.
MAX_PAGES = 1000
#: A complete PDF ends with %%EOF; writers may add a little whitespace or junk after it.
EOF_WINDOW = 1024


@dataclass(frozen=True)
class PdfFacts:
    pages: int | None  # None: not a readable PDF
    problem: str = ""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    pages: int = 0
    sheets: int = 0
    reason_code: str | None = None
    reason_text: str | None = None


def inspect_pdf(path) -> PdfFacts:
    """Page count of a PDF we would print, or why it must not be printed.

    pypdf is lenient (it repairs what it can); a print floor must not be.  A file cut short
    (no %%EOF at the end) or whose page tree does not add up (/Count says 5, 3 pages can be
    found: a truncated file "repaired" by a reader) would print an incomplete letter.
    """
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        with open(path, "rb") as f:
            head = f.read(5)
            if head != b"%PDF-":
                return PdfFacts(None, "not a PDF (no %PDF- header)")
            f.seek(0, 2)
            f.seek(max(0, f.tell() - EOF_WINDOW))
            if b"%%EOF" not in f.read():
                return PdfFacts(None, "truncated PDF (no %%EOF at the end)")
            f.seek(0)
            reader = PdfReader(f, strict=False)
            if reader.is_encrypted:
                return PdfFacts(None, "PDF is encrypted")
            declared = reader.trailer["/Root"]["/Pages"].get("/Count")
            if not isinstance(declared, int) or declared < 0:
                return PdfFacts(None, f"page tree has no usable /Count ({str(declared)[:20]})")
            if declared > MAX_PAGES:
                return PdfFacts(declared)  # judged too long without walking the tree
            found = len(reader.pages)
            if found != declared:
                return PdfFacts(None, f"damaged page tree: /Count says {declared} pages, "
                                      f"{found} can be read")
            return PdfFacts(found)
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            RecursionError, OSError) as e:
        return PdfFacts(None, f"{type(e).__name__}: {str(e)[:120]}")


def _reject(code: str, detail: str = "") -> Verdict:
    text = REJECT_REASONS[code] + (f" ({detail})" if detail else "")
    return Verdict(False, reason_code=code, reason_text=text)


def judge(expected_sha256: str, actual_sha256: str, facts: PdfFacts, pack: Pack | None) -> Verdict:
    if pack is None:
        return _reject("UNKNOWN_SPECIFICATION")
    if expected_sha256.lower() != actual_sha256.lower():
        return _reject("HASH_MISMATCH")
    if facts.pages is None:
        return _reject("PDF_UNREADABLE", facts.problem)
    if facts.pages == 0:
        return _reject("PDF_EMPTY")
    if facts.pages > MAX_PAGES:
        return _reject("TOO_MANY_SIDES", f"{facts.pages} pages")
    sheets = pack.sheets_for(facts.pages)
    if pack.max_sides is not None and facts.pages > pack.max_sides:
        return _reject("TOO_MANY_SIDES", f"{facts.pages} sides, at most {pack.max_sides}")
    if pack.max_sheets is not None and sheets > pack.max_sheets:
        return _reject("TOO_MANY_SHEETS", f"{sheets} sheets, at most {pack.max_sheets}")
    return Verdict(True, facts.pages, sheets)
