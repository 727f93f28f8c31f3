"""A catalogue of crafted PDFs for the verifier: good letters, wrong geometry, active
content and resource bombs, each generated here as bytes (no binary fixtures in git).

Every generator is a pure, deterministic function returning the bytes of one PDF, written
by hand (standard library only) with an exact classic ``xref`` table -- or, for
``objstm_bomb``, the cross-reference stream that object streams require.

``CATALOGUE`` maps a case name to a zero-argument callable building its test-sized
variant (the bombs are parameterised: benchmarks call them with their larger defaults) and
``EXPECTED`` maps the same name to what a strict verifier should decide: ``"ok"`` or the
reason code it should reject the letter with.

Object numbering.  Files built by ``page_pdf`` are numbered: 1 catalog, 2 page tree root,
3 the Helvetica font, then page k (from 1) is object ``2 + 2k`` and its content stream
``3 + 2k``; with ``count_indirect`` the /Count integer comes next; ``extra_objects``
follow, the first being object ``first_extra_number(pages, count_indirect)``.  A
one-page file is therefore 4 page, 5 content, 6 first extra object.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence
from functools import lru_cache, partial

#: An object body (dictionary, array, number...) or a stream as (dictionary, data).
Item = bytes | tuple[bytes, bytes]

A4 = (595, 842)
LETTER_TEXT = b"BT /F1 12 Tf 72 720 Td (letter) Tj ET"
#: High-bit bytes in a comment after the header mark the file as binary (PDF 32000 7.5.2).
_BINARY_MARK = b"\n%\xe2\xe3\xcf\xd3\n"
_MIB = 1 << 20
_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
_FONT_RESOURCES = b"/Font << /F1 3 0 R >>"
_JS_ACTION = b"<< /S /JavaScript /JS (app.alert(1)) >>"


# -- writing --------------------------------------------------------------------------------

def _nums(*values: float) -> bytes:
    return " ".join(str(v) for v in values).encode()


def _dict(*entries: bytes) -> bytes:
    """A dictionary of the non-empty entries (each ``/Key value`` bytes)."""
    return b"<< " + b" ".join(e for e in entries if e) + b" >>"


def _obj(number: int, item: Item) -> bytes:
    if isinstance(item, tuple):
        head, data = item
        if not head.startswith(b"<<"):
            raise ValueError("a stream's dictionary must start with <<")
        body = b"<< /Length %d %s\nstream\n%s\nendstream" % (len(data), head[2:].lstrip(), data)
    else:
        body = item
    return b"%d 0 obj\n%s\nendobj\n" % (number, body)


def _body(objects: Sequence[Item], header: bytes) -> tuple[bytearray, list[int]]:
    """The header and objects 1..N, with the offset of each object."""
    out = bytearray(header + _BINARY_MARK)
    offsets = []
    for number, item in enumerate(objects, start=1):
        offsets.append(len(out))
        out += _obj(number, item)
    return out, offsets


def _with_xref_table(out: bytearray, offsets: Sequence[int], root: int) -> bytes:
    """``out`` followed by a classic xref table giving object k + 1 at ``offsets[k]``."""
    xref_at = len(out)
    size = len(offsets) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        size, root, xref_at)
    return bytes(out)


def build(objects: Sequence[Item], root: int = 1, *, header: bytes = b"%PDF-1.7") -> bytes:
    """A PDF of ``objects``, numbered from 1 in order, with a classic xref table.

    A stream is ``(dictionary, data)``; the builder inserts its /Length, so the dictionary
    must not carry one.
    """
    return _with_xref_table(*_body(objects, header), root)


def _zlib_repeat(head: bytes, block: bytes, times: int) -> bytes:
    """A zlib stream that inflates to ``head + block * times``, compressing ``block`` once.

    A full flush resets the compressor, so the deflate bytes that follow one depend on
    nothing before them, and the same bytes can be repeated.  Only the Adler-32 trailer has
    to see all the data (2 GiB: ~0.7 s, against ~8 s to deflate it).
    """
    compressor = zlib.compressobj(9)
    start = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    once = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    final_block = compressor.flush(zlib.Z_FINISH)[:-4]  # minus the compressor's own checksum
    adler = zlib.adler32(head)
    for _ in range(times):
        adler = zlib.adler32(block, adler)
    return b"".join((start, once * times, final_block, struct.pack(">I", adler)))


# -- well-formed letters --------------------------------------------------------------------

def first_extra_number(pages: int = 2, count_indirect: bool = False) -> int:
    """The object number ``page_pdf`` gives its first ``extra_objects`` item."""
    return 4 + 2 * pages + int(count_indirect)


def _page(contents: int, *, boxes: bytes = b"", resources: bytes = _FONT_RESOURCES,
          extra: bytes = b"") -> bytes:
    return _dict(b"/Type /Page /Parent 2 0 R", boxes, b"/Resources << %s >>" % resources,
                 b"/Contents %d 0 R" % contents, extra)


def _refs(numbers: range) -> bytes:
    return b"[" + b" ".join(b"%d 0 R" % n for n in numbers) + b"]"


def page_pdf(pages: int = 2, *, media: tuple[float, float] = A4,
             crop: tuple[float, float, float, float] | None = None,
             rotate: int | None = None, user_unit: float | None = None,
             pages_extra: bytes = b"", page_extra: bytes = b"", catalog_extra: bytes = b"",
             extra_objects: Sequence[Item] = (), count_indirect: bool = False,
             media_on_parent: bool = False, content: bytes = LETTER_TEXT) -> bytes:
    """A valid PDF of ``pages`` pages (numbering: see the module docstring).

    The ``*_extra`` bytes are spliced into the catalog, page tree root and every page.
    """
    media_box = b"/MediaBox [0 0 %s]" % _nums(*media)
    boxes = b" ".join(e for e in (
        b"" if media_on_parent else media_box,
        b"/CropBox [%s]" % _nums(*crop) if crop else b"",
        b"/Rotate %d" % rotate if rotate is not None else b"",
        b"/UserUnit %s" % _nums(user_unit) if user_unit is not None else b"",
    ) if e)
    count = b"%d 0 R" % first_extra_number(pages) if count_indirect else b"%d" % pages
    objects: list[Item] = [
        _dict(b"/Type /Catalog /Pages 2 0 R", catalog_extra),
        _dict(b"/Type /Pages /Kids %s /Count %s" % (_refs(range(4, 4 + 2 * pages, 2)), count),
              media_box if media_on_parent else b"", pages_extra),
        _FONT,
    ]
    for k in range(1, pages + 1):
        objects += [_page(3 + 2 * k, boxes=boxes, extra=page_extra), (b"<< >>", content)]
    if count_indirect:
        objects.append(b"%d" % pages)
    return build([*objects, *extra_objects])


def _single_page(content: Item, *, count: int = 1, resources: bytes = _FONT_RESOURCES,
                 page_extra: bytes = b"", extra_objects: Sequence[Item] = ()) -> list[Item]:
    """Objects of a one-page A4 file laid out as ``page_pdf(1)`` lays it out, for the cases
    that need what ``page_pdf`` does not offer (a filtered content stream, more resources,
    a lying /Count, their own xref)."""
    return [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [4 0 R] /Count %d >>" % count,
        _FONT,
        _page(5, boxes=b"/MediaBox [0 0 %s]" % _nums(*A4), resources=resources,
              extra=page_extra),
        content,
        *extra_objects,
    ]


def a4(pages: int = 2) -> bytes:
    """A4 portrait letter: ok."""
    return page_pdf(pages)


def a4_landscape() -> bytes:
    """A4 landscape MediaBox (842 x 595): ok, the same sheet turned."""
    return page_pdf(media=(842, 595))


def a4_rotated_90() -> bytes:
    """A4 pages with /Rotate 90: ok."""
    return page_pdf(rotate=90)


def a4_inherited_media() -> bytes:
    """A4 MediaBox on the /Pages node only, inherited by the pages: ok."""
    return page_pdf(media_on_parent=True)


def a4_indirect_count() -> bytes:
    """A4 letter whose /Count is an indirect integer object: ok."""
    return page_pdf(count_indirect=True)


# -- wrong geometry -------------------------------------------------------------------------

def us_letter() -> bytes:
    """US Letter (612 x 792): PAGE_SIZE_MISMATCH."""
    return page_pdf(media=(612, 792))


def a3() -> bytes:
    """A3 (842 x 1191): PAGE_SIZE_MISMATCH."""
    return page_pdf(media=(842, 1191))


def zero_size() -> bytes:
    """MediaBox [0 0 0 0]: PAGE_SIZE_MISMATCH."""
    return page_pdf(media=(0, 0))


def rotated_45() -> bytes:
    """A4 pages with /Rotate 45 (not a multiple of 90): BAD_ROTATION."""
    return page_pdf(rotate=45)


def user_unit_2() -> bytes:
    """A4 MediaBox with /UserUnit 2, so the page is really A2: PAGE_SIZE_MISMATCH."""
    return page_pdf(user_unit=2)


def cropbox_a5() -> bytes:
    """A4 MediaBox cropped to [0 0 420 595], so the visible page is A5: PAGE_SIZE_MISMATCH."""
    return page_pdf(crop=(0, 0, 420, 595))


# -- active content (each otherwise a valid one-page A4 letter) -----------------------------

def _filespec(number: int, name: bytes, data: bytes) -> list[Item]:
    """A /Filespec (object ``number``) and the /EmbeddedFile stream it holds (``number + 1``)."""
    return [
        b"<< /Type /Filespec /F (%s) /UF (%s) /EF << /F %d 0 R >> >>" % (name, name, number + 1),
        (b"<< /Type /EmbeddedFile /Params << /Size %d >> >>" % len(data), data),
    ]


def js_open_action() -> bytes:
    """Catalog /OpenAction running JavaScript: ACTIVE_CONTENT."""
    return page_pdf(1, catalog_extra=b"/OpenAction " + _JS_ACTION)


def js_names() -> bytes:
    """Document-level JavaScript in the catalog's /Names /JavaScript tree: ACTIVE_CONTENT."""
    n = first_extra_number(1)
    return page_pdf(1, catalog_extra=b"/Names << /JavaScript << /Names [(x) %d 0 R] >> >>" % n,
                    extra_objects=[_JS_ACTION])


def js_page_aa() -> bytes:
    """Page additional action (/AA /O, on open) running JavaScript: ACTIVE_CONTENT."""
    return page_pdf(1, page_extra=b"/AA << /O " + _JS_ACTION + b" >>")


def js_link_annotation() -> bytes:
    """A /Link annotation whose action is JavaScript: ACTIVE_CONTENT."""
    n = first_extra_number(1)
    link = b"<< /Type /Annot /Subtype /Link /Rect [72 700 200 730] /Border [0 0 0] /A %s >>"
    return page_pdf(1, page_extra=b"/Annots [%d 0 R]" % n, extra_objects=[link % _JS_ACTION])


def js_stream() -> bytes:
    """/OpenAction JavaScript whose /JS is a stream, not a string: ACTIVE_CONTENT."""
    n = first_extra_number(1)
    return page_pdf(1, catalog_extra=b"/OpenAction << /S /JavaScript /JS %d 0 R >>" % n,
                    extra_objects=[(b"<< >>", b"app.alert(1);")])


def launch_action() -> bytes:
    """Catalog /OpenAction launching a program: ACTIVE_CONTENT."""
    return page_pdf(1, catalog_extra=b"/OpenAction << /S /Launch /F (cmd.exe) >>")


def embedded_file() -> bytes:
    """An embedded file in the catalog's /Names /EmbeddedFiles tree: ACTIVE_CONTENT."""
    n = first_extra_number(1)
    return page_pdf(1, catalog_extra=b"/Names << /EmbeddedFiles << /Names [(payload.txt) "
                                     b"%d 0 R] >> >>" % n,
                    extra_objects=_filespec(n, b"payload.txt", b"not a letter\n"))


def file_attachment_annotation() -> bytes:
    """A /FileAttachment annotation carrying an embedded file: ACTIVE_CONTENT."""
    n = first_extra_number(1)
    annotation = (b"<< /Type /Annot /Subtype /FileAttachment /Rect [72 600 92 620] "
                  b"/Name /PushPin /Contents (attachment) /FS %d 0 R >>" % (n + 1))
    return page_pdf(1, page_extra=b"/Annots [%d 0 R]" % n, extra_objects=[
        annotation, *_filespec(n + 1, b"payload.txt", b"not a letter\n")])


def rich_media() -> bytes:
    """A /RichMedia (Flash) annotation: ACTIVE_CONTENT."""
    n = first_extra_number(1)
    asset = n + 1
    annotation = (
        b"<< /Type /Annot /Subtype /RichMedia /Rect [72 400 372 600] "
        b"/RichMediaSettings << /Type /RichMediaSettings "
        b"/Activation << /Type /RichMediaActivation /Condition /PO >> >> "
        b"/RichMediaContent << /Type /RichMediaContent /Assets << /Names [(clip.swf) %d 0 R] >> "
        b"/Configurations [<< /Type /RichMediaConfiguration /Subtype /Flash /Instances "
        b"[<< /Type /RichMediaInstance /Subtype /Flash /Asset %d 0 R >>] >>] >> >>"
        % (asset, asset))
    swf_stub = b"FWS\x0a" + bytes(12)  # an SWF signature, not a playable movie
    return page_pdf(1, catalog_extra=b"/Extensions << /ADBE << /BaseVersion /1.7 "
                                     b"/ExtensionLevel 3 >> >>",
                    page_extra=b"/Annots [%d 0 R]" % n,
                    extra_objects=[annotation, *_filespec(asset, b"clip.swf", swf_stub)])


def xfa_form() -> bytes:
    """An AcroForm carrying an XFA form (scriptable): ACTIVE_CONTENT."""
    n = first_extra_number(1)
    xdp = (b'<xdp:xdp xmlns:xdp="http://ns.adobe.com/xdp/">'
           b'<template xmlns="http://www.xfa.org/schema/xfa-template/3.3/"/></xdp:xdp>')
    return page_pdf(1, catalog_extra=b"/AcroForm << /Fields [] /XFA %d 0 R >>" % n,
                    extra_objects=[(b"<< >>", xdp)])


# -- bombs and complexity -------------------------------------------------------------------

@lru_cache(maxsize=4)
def content_bomb(decoded_mb: int = 2048) -> bytes:
    """One page whose Flate content stream inflates to ``decoded_mb`` MiB of ``q Q``
    operators (~1 KB of file per MiB): PDF_TOO_COMPLEX."""
    # Period 4 keeps every deflate match at distance 4, which needs no extra bits:
    # ~1030:1, close to deflate's limit.
    block = b"q Q\n" * (_MIB // 4)
    stream = (b"<< /Filter /FlateDecode >>", _zlib_repeat(b"", block, decoded_mb))
    return build(_single_page(stream))


def _object_stream(objects: Sequence[tuple[int, bytes]], inflated_mb: int) -> Item:
    """An /ObjStm holding ``objects`` (number, body), padded with spaces after the last one
    so that it inflates to exactly ``inflated_mb`` MiB."""
    index, bodies = [], bytearray()
    for number, body in objects:
        index.append(b"%d %d" % (number, len(bodies)))
        bodies += body + b"\n"
    header = b" ".join(index) + b"\n"
    first_mib = (header + bodies).ljust(_MIB, b" ")
    data = _zlib_repeat(first_mib, b" " * _MIB, inflated_mb - 1)
    return (b"<< /Type /ObjStm /N %d /First %d /Filter /FlateDecode >>"
            % (len(objects), len(header)), data)


@lru_cache(maxsize=4)
def objstm_bomb(streams: int = 10, inflated_mb: int = 70) -> bytes:
    """PDF 1.5 whose catalog, page tree, page and font sit in object streams, each inflating
    to ``inflated_mb`` MiB (~1 KB of file per MiB): PDF_TOO_COMPLEX.

    Objects 1-4 (catalog, pages, font, page) fill the first stream; each other stream holds
    one /ExtGState (objects 5...) named in the page's /Resources and used by its content,
    so a reader must open every stream.  Then come the content stream, the object streams
    and the cross-reference stream.
    """
    if streams < 1 or inflated_mb < 1:
        raise ValueError("need at least one object stream of at least 1 MiB")
    states = range(5, 4 + streams)
    content_number = 4 + streams
    first_stream = content_number + 1
    xref_number = first_stream + streams

    graphics_states = b" ".join(b"/G%d %d 0 R" % (n, n) for n in states)
    page = _page(content_number, boxes=b"/MediaBox [0 0 %s]" % _nums(*A4),
                 resources=_FONT_RESOURCES + (b" /ExtGState << %s >>" % graphics_states
                                              if streams > 1 else b""))
    packed = [[(1, b"<< /Type /Catalog /Pages 2 0 R >>"),
               (2, b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>"),
               (3, _FONT),
               (4, page)]]
    packed += [[(n, b"<< /Type /ExtGState /CA 1 >>")] for n in states]
    content = b"".join(b"/G%d gs\n" % n for n in states) + LETTER_TEXT

    out = bytearray(b"%PDF-1.5" + _BINARY_MARK)
    entries = {0: (0, 0, 65535)}
    top_level = [(content_number, (b"<< >>", content))]
    top_level += [(first_stream + k, _object_stream(objs, inflated_mb))
                  for k, objs in enumerate(packed)]
    for number, item in top_level:
        entries[number] = (1, len(out), 0)
        out += _obj(number, item)
    for k, objs in enumerate(packed):
        for index, (number, _) in enumerate(objs):
            entries[number] = (2, first_stream + k, index)

    xref_at = len(out)
    entries[xref_number] = (1, xref_at, 0)
    size = xref_number + 1
    rows = b"".join(struct.pack(">BIH", *entries[n]) for n in range(size))
    out += _obj(xref_number, (b"<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R >>" % size, rows))
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


def image_bomb(width: int = 60000, height: int = 60000) -> bytes:
    """A page drawing a ``width`` x ``height`` RGB image whose Flate data inflates to one
    scan line only (a reader trusting the dimensions allocates width*height*3 bytes):
    PDF_TOO_COMPLEX."""
    image = (b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
             b"/BitsPerComponent 8 /Filter /FlateDecode >>" % (width, height),
             zlib.compress(bytes(width * 3), 9))
    draw = b"q %d 0 0 %d 0 0 cm /Im0 Do Q" % A4
    return build(_single_page((b"<< >>", draw),
                              resources=_FONT_RESOURCES + b" /XObject << /Im0 6 0 R >>",
                              extra_objects=[image]))


def shared_offset_xref(entries: int = 20000, object_kb: int = 512) -> bytes:
    """``entries`` xref entries (objects 6...) all at the offset of one ~``object_kb`` KiB
    annotation, each listed in the page's /Annots, so a reader resolving them parses the big
    object once per entry: PDF_UNREADABLE (a damaged cross-reference table)."""
    head = b"<< /Type /Annot /Subtype /Text /Rect [0 0 0 0] /Pad ["
    tail = b"] >>"
    big = head + b"0 " * max(0, (object_kb * 1024 - len(head) - len(tail)) // 2) + tail
    annots = b"/Annots " + _refs(range(6, 6 + entries))
    out, offsets = _body(_single_page((b"<< >>", LETTER_TEXT), page_extra=annots,
                                      extra_objects=[big]), b"%PDF-1.7")
    return _with_xref_table(out, offsets + [offsets[-1]] * (entries - 1), root=1)


def deep_nesting(depth: int = 100000) -> bytes:
    """A page dictionary holding an array nested ``depth`` levels deep: PDF_TOO_COMPLEX."""
    return page_pdf(1, page_extra=b"/Nest " + b"[" * depth + b"]" * depth)


def many_pages(pages: int = 5000) -> bytes:
    """A valid flat page tree of ``pages`` A4 pages sharing one content stream:
    TOO_MANY_SIDES."""
    page = _page(4, boxes=b"/MediaBox [0 0 %s]" % _nums(*A4))
    return build([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids %s /Count %d >>" % (_refs(range(5, 5 + pages)), pages),
        _FONT,
        (b"<< >>", LETTER_TEXT),
        *[page] * pages,
    ])


def huge_page_tree_count() -> bytes:
    """A page tree whose /Count claims 1,000,000,000 pages over one real kid: TOO_MANY_SIDES."""
    return build(_single_page((b"<< >>", LETTER_TEXT), count=1_000_000_000))


# -- the catalogue --------------------------------------------------------------------------

_CASES: list[tuple[str, Callable[[], bytes], str]] = [
    ("a4", a4, "ok"),
    ("a4_landscape", a4_landscape, "ok"),
    ("a4_rotated_90", a4_rotated_90, "ok"),
    ("a4_inherited_media", a4_inherited_media, "ok"),
    ("a4_indirect_count", a4_indirect_count, "ok"),
    ("us_letter", us_letter, "PAGE_SIZE_MISMATCH"),
    ("a3", a3, "PAGE_SIZE_MISMATCH"),
    ("zero_size", zero_size, "PAGE_SIZE_MISMATCH"),
    ("rotated_45", rotated_45, "BAD_ROTATION"),
    ("user_unit_2", user_unit_2, "PAGE_SIZE_MISMATCH"),
    ("cropbox_a5", cropbox_a5, "PAGE_SIZE_MISMATCH"),
    ("js_open_action", js_open_action, "ACTIVE_CONTENT"),
    ("js_names", js_names, "ACTIVE_CONTENT"),
    ("js_page_aa", js_page_aa, "ACTIVE_CONTENT"),
    ("js_link_annotation", js_link_annotation, "ACTIVE_CONTENT"),
    ("js_stream", js_stream, "ACTIVE_CONTENT"),
    ("launch_action", launch_action, "ACTIVE_CONTENT"),
    ("embedded_file", embedded_file, "ACTIVE_CONTENT"),
    ("file_attachment_annotation", file_attachment_annotation, "ACTIVE_CONTENT"),
    ("rich_media", rich_media, "ACTIVE_CONTENT"),
    ("xfa_form", xfa_form, "ACTIVE_CONTENT"),
    ("content_bomb", partial(content_bomb, decoded_mb=300), "PDF_TOO_COMPLEX"),
    ("objstm_bomb", partial(objstm_bomb, streams=4, inflated_mb=30), "PDF_TOO_COMPLEX"),
    ("image_bomb", image_bomb, "PDF_TOO_COMPLEX"),
    ("shared_offset_xref", partial(shared_offset_xref, entries=5000, object_kb=256),
     "PDF_UNREADABLE"),
    ("deep_nesting", partial(deep_nesting, depth=50000), "PDF_TOO_COMPLEX"),
    ("many_pages", partial(many_pages, pages=3000), "TOO_MANY_SIDES"),
    ("huge_page_tree_count", huge_page_tree_count, "TOO_MANY_SIDES"),
]

#: Case name -> zero-argument callable building the test-sized PDF.
CATALOGUE: dict[str, Callable[[], bytes]] = {name: make for name, make, _ in _CASES}
#: Case name -> "ok" or the reason code a strict verifier should reject it with.
EXPECTED: dict[str, str] = {name: expected for name, _, expected in _CASES}
