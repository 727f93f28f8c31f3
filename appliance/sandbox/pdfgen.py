"""A tiny hand-rolled PDF writer for sandbox letters.

Why hand-rolled: the sandbox must mint thousands of small, valid, deterministic PDFs in
well under a second, without a PDF library.  Each page is A4 with Helvetica text naming
the letter and "page k of n", so a reader (pypdf ``extract_text``) can prove which letter
it holds.  A page may also carry a filled rectangle covering a known share of its area
(``fills``), so its ink coverage is known: full page width, from the bottom edge up.
"""

from __future__ import annotations

A4_WIDTH, A4_HEIGHT = 595, 842


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


#: (share of the page area 0..1, (r, g, b) 0..1): a rectangle of that colour and area.
Fill = tuple[float, tuple[float, float, float]]
BLACK = (0.0, 0.0, 0.0)


def _fill_ops(fill: Fill | None) -> list[str]:
    if not fill or fill[0] <= 0:
        return []
    share, (r, g, b) = fill
    return [f"{r:g} {g:g} {b:g} rg", f"0 0 {A4_WIDTH} {A4_HEIGHT * min(1.0, share):.4f} re f", "0 g"]


def _page_content(lines: list[str], fill: Fill | None = None) -> bytes:
    ops = [*_fill_ops(fill), "BT", "/F1 12 Tf", "14 TL", "72 770 Td"]
    for line in lines:
        ops.append(f"({_escape(line)}) Tj T*")
    ops.append("ET")
    return "\n".join(ops).encode("latin-1", "replace")


def make_pdf(letter_id: str, pages: int, extra_lines: tuple[str, ...] = (),
             fills: tuple[Fill | None, ...] = (), text: bool = True) -> bytes:
    """A valid PDF with ``pages`` A4 pages, each naming ``letter_id`` and its page number
    (``text`` False: no text, a reference page whose coverage is its fill alone); page k
    carries ``fills[k - 1]`` if given."""
    if pages < 1:
        raise ValueError("a PDF needs at least one page")
    # Object numbers: 1 catalog, 2 page tree, 3 font, then (page, content) pairs.
    objects: list[bytes] = [b"", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
                                       b"/Encoding /WinAnsiEncoding >>"]
    kids = []
    for k in range(1, pages + 1):
        page_no, content_no = 4 + 2 * (k - 1), 5 + 2 * (k - 1)
        kids.append(f"{page_no} 0 R")
        lines = [f"Letter {letter_id}", f"page {k} of {pages}", *extra_lines] if text else []
        stream = _page_content(lines, fills[k - 1] if k <= len(fills) else None)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {A4_WIDTH} {A4_HEIGHT}] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content_no} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {pages} >>".encode()

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref_at)
    return bytes(out)


def make_corrupt(letter_id: str, size: int = 2048) -> bytes:
    """Bytes that look like the start of a PDF but cannot be parsed (no objects, no trailer)."""
    seed = letter_id.encode() or b"x"
    filler = (seed * (size // len(seed) + 1))[:size]
    return b"%PDF-1.4\n% truncated upload\n" + bytes(b ^ 0x5A for b in filler)
