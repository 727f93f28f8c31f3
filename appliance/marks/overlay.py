"""Sheet marks: a copy of a letter's PDF with a small QR code on the front of each sheet.

Each code carries ``appliance.core.markcode.encode(letter id, sheet k, sheets n, print run)``
so a reader on the inserter (or a person with a phone) can tell which letter, which sheet
and which print run a sheet belongs to.  The code is drawn as filled vector rectangles in a
NEW content stream appended to the page; the page's own content streams are kept as they
are, byte for byte, and wrapped in ``q`` ... ``Q`` so whatever graphics state they leave
cannot move or recolour the code.  Nothing outside the clear zone changes.

The marked copy is what goes to the printer; the original (and its sha256) stays the
letter's identity.  Only this module reads and writes the two files; geometry and the
profile's zones are in ``appliance.marks.zones`` (pure).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pypdf import PdfReader, PdfWriter
from pypdf.errors import PyPdfError
from pypdf.generic import ArrayObject, DecodedStreamObject, IndirectObject, NameObject

from appliance.core import markcode
from appliance.core.errors import ConfigError, MarkError
from appliance.marks.zones import ClearZone, fit_problem, overlay_ops, qr_matrix, zone_in_user_space

__all__ = ["ClearZone", "MarkError", "mark_pdf", "marked_path", "sheets_of"]


def marked_path(spool_dir: Path, letter_id: str, run: int) -> Path:
    """``<spool>/<id>.r<run>.pdf``: named so the spool sweeper knows its letter."""
    return spool_dir / f"{letter_id}.r{run}.pdf"


def sheets_of(pages: int, duplex: bool) -> int:
    return -(-pages // 2) if duplex else pages


def _stream(writer: PdfWriter, data: bytes, *, compress: bool = False) -> IndirectObject:
    s = DecodedStreamObject()
    s.set_data(data)
    obj = s.flate_encode() if compress else s  # a code is a few hundred rectangles: ~8 kB raw, ~1.5 kB deflated
    return writer._add_object(obj)  # pypdf has no public "add object"; this is what its own helpers use


def _content_refs(page) -> list:
    """The page's content streams as they are (references, never rewritten)."""
    contents = page.get(NameObject("/Contents"))
    if contents is None:
        return []
    resolved = contents.get_object()
    if isinstance(resolved, ArrayObject):
        return list(resolved)
    return [contents]


def _user_unit(page) -> float:
    unit = page.get(NameObject("/UserUnit"))
    return float(unit) if unit is not None else 1.0


def mark_pdf(src: Path, dest: Path, *, letter_id: str, run: int, zone: ClearZone, duplex: bool) -> int:
    """Write ``dest``: ``src`` with a sheet mark on the front page of every sheet (duplex:
    pages 1, 3, 5...; simplex: every page).  Returns the number of sheets marked.

    Raises ConfigError if the zone is too small for the code or lies outside a page, and
    MarkError if ``src`` cannot be read as a PDF.  ``dest`` appears whole or not at all.
    """
    try:
        reader = PdfReader(src)
        writer = PdfWriter(clone_from=reader)
        pages = list(writer.pages)
    except (PyPdfError, OSError, ValueError, KeyError, TypeError) as e:
        raise MarkError(f"cannot mark {src.name}: not a readable PDF ({e})") from None
    if not pages:
        raise MarkError(f"cannot mark {src.name}: the PDF has no pages")
    step = 2 if duplex else 1
    sheets = sheets_of(len(pages), duplex)
    texts = [markcode.encode(letter_id, k, sheets, run) for k in range(1, sheets + 1)]
    codes = [qr_matrix(text) for text in texts]  # most of the cost: segno tries all 8 masks
    problem = fit_problem(zone, max(texts, key=len), max(len(c) for c in codes))
    if problem:
        raise ConfigError(f"letter {letter_id}: {problem}")
    opener = None  # one shared "q" stream: isolates each page's own graphics state
    for k, code in enumerate(codes, start=1):
        page = pages[(k - 1) * step]
        try:
            box = tuple(float(v) for v in page.mediabox)
            x, y, side = zone_in_user_space(zone, box, int(page.rotation), _user_unit(page))
        except ConfigError as e:
            raise ConfigError(f"letter {letter_id} page {(k - 1) * step + 1}: {e}") from None
        except (PyPdfError, ValueError, TypeError) as e:
            raise MarkError(f"cannot mark {src.name} page {(k - 1) * step + 1}: {e}") from None
        opener = opener or _stream(writer, b"q\n")
        overlay = _stream(writer, b"Q\n" + overlay_ops(code, x, y, side), compress=True)
        page[NameObject("/Contents")] = ArrayObject([opener, *_content_refs(page), overlay])
    writer.pdf_header = reader.pdf_header  # keep the PDF version the letter was made for
    _write_atomically(writer, dest)
    return sheets


def _write_atomically(writer: PdfWriter, dest: Path) -> None:
    # mkstemp makes the file 0600 (patient data); the name starts with "." and ends with
    # ".part" so the spool sweeper treats a leftover as a partial file of this letter.
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            writer.write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
