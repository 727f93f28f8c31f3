"""Read a spooled PDF for what verification needs, inside an intake worker process.

Everything here assumes the file is hostile.  The worker's own limits (address space,
CPU, wall clock) are the last line; this module stops earlier and says why:

* a cross-reference table whose entries share offsets (a reader "repairs" each one by
  searching the whole file: the 15 MB file that took 3 GB) is refused before any object
  is resolved;
* object streams are measured before pypdf unpacks them, and every stream reachable from
  the document (content, images, fonts, forms, embedded files) is decoded *counting*,
  output discarded, against one budget per letter; an image counts at least the size its
  dimensions declare, because that is what a press's RIP will allocate;
* the object graph is walked iteratively with caps on objects, nodes and nesting depth,
  looking for active content (JavaScript anywhere, /Launch, embedded files, rich media,
  XFA forms);
* every page's effective size (CropBox within MediaBox, times /UserUnit) and /Rotate.

The answer is ``appliance.core.verify.PdfFacts``: plain data the pure ``judge`` decides on.
"""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from dataclasses import dataclass, replace

from appliance.core.errors import PdfTooComplex, PdfUnreadable
from appliance.core.verify import PdfFacts

#: A complete PDF ends with %%EOF; writers may add a little whitespace or junk after it.
EOF_WINDOW = 1024
POINT_MM = 25.4 / 72
INFLATE_STEP = 1 << 20

FLATE = {"/FlateDecode", "/Fl"}
ASCII_FILTERS = {"/ASCIIHexDecode", "/AHx", "/ASCII85Decode", "/A85"}
BOUNDED_BY_PYPDF = {"/LZWDecode", "/LZW", "/RunLengthDecode", "/RL"}
IMAGE_CODECS = {"/DCTDecode", "/DCT", "/JPXDecode", "/JBIG2Decode", "/CCITTFaxDecode", "/CCF"}
COMPONENTS = {"/DeviceGray": 1, "/CalGray": 1, "/G": 1, "/DeviceRGB": 3, "/CalRGB": 3, "/RGB": 3,
              "/Lab": 3, "/DeviceCMYK": 4, "/CMYK": 4, "/Indexed": 1, "/I": 1, "/Separation": 1,
              "/Pattern": 1}


@dataclass(frozen=True)
class CheckLimits:
    max_decoded: int = 200 * 1024 * 1024  # every stream of the letter, decoded, together
    max_pages: int = 1000  # beyond this /Count, the letter is too long without walking it
    max_objects: int = 20_000  # indirect objects visited
    max_nodes: int = 500_000  # values visited (dictionary entries, array items)
    max_depth: int = 64  # direct nesting of arrays and dictionaries
    max_shared_offsets: int = 8  # xref entries allowed to point at one offset
    # Object streams hold only dictionaries and arrays (real ones are kilobytes), and pypdf
    # reads them a byte at a time (~0.5 s of CPU per MB of padding): one, and all together.
    max_object_stream: int = 1024 * 1024
    max_object_streams: int = 8 * 1024 * 1024


class _WarningCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def check_pdf(path, limits: CheckLimits = CheckLimits()) -> PdfFacts:
    """What ``judge`` needs to know about the PDF at ``path``, never an exception for a bad
    file (MemoryError is left to the worker, which knows its own limit)."""
    import pypdf

    counter = _WarningCounter()
    log = logging.getLogger("pypdf")
    log.addHandler(counter)
    log.propagate = False  # counted, not logged one line each
    per_stream = min(75_000_000, limits.max_decoded + 1)
    try:
        with pypdf.apply_configuration(
                zlib_maximum_output_length=per_stream, lzw_maximum_output_length=per_stream,
                run_length_maximum_output_length=per_stream, jbig2_maximum_output_length=per_stream,
                page_tree_maximum_entries=2 * limits.max_pages + 10):
            facts = _check(path, limits)
    except PdfTooComplex as e:
        facts = PdfFacts(None, str(e), "PDF_TOO_COMPLEX")
    except RecursionError:
        facts = PdfFacts(None, "objects nested too deeply to read", "PDF_TOO_COMPLEX")
    except PdfUnreadable as e:
        facts = PdfFacts(None, str(e), "PDF_UNREADABLE")
    except (MemoryError, FileNotFoundError):  # the worker knows its limit; a vanished spool file is no verdict
        raise
    except Exception as e:  # pypdf's own errors and anything a broken file provokes in it
        if _caused_by(e, RecursionError):
            facts = PdfFacts(None, "objects nested too deeply to read", "PDF_TOO_COMPLEX")
        elif type(e).__name__ == "LimitReachedError":
            facts = PdfFacts(None, f"over a parser limit ({str(e)[:100]})", "PDF_TOO_COMPLEX")
        else:
            facts = PdfFacts(None, f"{type(e).__name__}: {str(e)[:120]}", "PDF_UNREADABLE")
    finally:
        log.removeHandler(counter)
    return _with_warnings(facts, counter.count)


def _caused_by(e: BaseException, kind: type) -> bool:
    seen: BaseException | None = e
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _with_warnings(facts: PdfFacts, n: int) -> PdfFacts:
    return replace(facts, warnings=n)


def _check(path, limits: CheckLimits) -> PdfFacts:
    from pypdf import PdfReader

    with open(path, "rb") as f:
        if f.read(5) != b"%PDF-":
            raise PdfUnreadable("not a PDF (no %PDF- header)")
        f.seek(0, 2)
        f.seek(max(0, f.tell() - EOF_WINDOW))
        if b"%%EOF" not in f.read():
            raise PdfUnreadable("truncated PDF (no %%EOF at the end)")
        f.seek(0)
        reader = PdfReader(f, strict=False)
        if reader.is_encrypted:
            raise PdfUnreadable("PDF is encrypted")
        _check_xref(reader, limits)
        budget = _Budget(limits.max_decoded)
        counted: set[tuple[int, int]] = set()
        streams = _Budget(limits.max_object_streams, "object streams decode")
        for stmnum in sorted({entry[0] for entry in reader.xref_objStm.values()}):
            stream = reader.get_object(stmnum)  # parses the stream's dictionary, not its data
            counted.add((stmnum, 0))
            one = _Budget(min(limits.max_object_stream, budget.left), f"object stream {stmnum} decodes")
            cost = _stream_cost(stream, one)  # stops decoding once over the one-stream cap
            streams.spend(cost, f"object stream {stmnum}")
            budget.spend(cost, f"object stream {stmnum}")
        root = _resolve(reader.trailer.get("/Root"))
        pages_node = _resolve(root.get("/Pages")) if hasattr(root, "get") else None
        if not hasattr(pages_node, "get"):
            raise PdfUnreadable("no page tree")
        declared = _resolve(pages_node.get("/Count"))
        if not isinstance(declared, int) or declared < 0:
            raise PdfUnreadable(f"page tree has no usable /Count ({str(declared)[:20]})")
        if declared > limits.max_pages:
            return PdfFacts(declared)  # judged too long without walking the tree
        found = len(reader.pages)
        if found != declared:
            raise PdfUnreadable(f"damaged page tree: /Count says {declared} pages, {found} can be read")
        sizes, rotations = [], []
        for page in reader.pages:
            sizes.append(_page_size(page))
            rotate = _resolve(page.get("/Rotate", 0))
            rotations.append(int(rotate) if isinstance(rotate, (int, float)) else -1)
        active = _walk(root, limits, budget, counted)
        return PdfFacts(found, page_sizes=tuple(sizes), rotations=tuple(rotations),
                        active=tuple(sorted(active)), decoded_bytes=budget.spent)


def _check_xref(reader, limits: CheckLimits) -> None:
    offsets: Counter[int] = Counter()
    for table in reader.xref.values():
        offsets.update(table.values())
    if offsets:
        offset, n = offsets.most_common(1)[0]
        if n > limits.max_shared_offsets:
            raise PdfUnreadable(f"damaged cross-reference table: {n} objects point at byte {offset}")


def _resolve(value):
    from pypdf.generic import IndirectObject

    seen = 0
    while isinstance(value, IndirectObject):
        seen += 1
        if seen > 32:
            raise PdfUnreadable("reference chain loops")
        value = value.get_object()
    return value


def _page_size(page) -> tuple[float, float]:
    """Effective size in mm: the CropBox (or MediaBox) clipped to the MediaBox, times /UserUnit."""
    media, crop = page.mediabox, page.cropbox
    x0, x1 = max(min(media.left, media.right), min(crop.left, crop.right)), \
        min(max(media.left, media.right), max(crop.left, crop.right))
    y0, y1 = max(min(media.bottom, media.top), min(crop.bottom, crop.top)), \
        min(max(media.bottom, media.top), max(crop.bottom, crop.top))
    unit = _resolve(page.get("/UserUnit", 1))
    unit = float(unit) if isinstance(unit, (int, float)) and 0 < float(unit) < 1000 else 1.0
    w, h = max(0.0, float(x1 - x0)), max(0.0, float(y1 - y0))
    return round(w * unit * POINT_MM, 1), round(h * unit * POINT_MM, 1)


# --- streams -------------------------------------------------------------------------

class _Budget:
    def __init__(self, total: int, what: str = "streams decode"):
        self.total = total
        self.what = what
        self.spent = 0

    @property
    def left(self) -> int:
        return self.total - self.spent

    def over(self, where: str = "") -> PdfTooComplex:
        return PdfTooComplex(f"{self.what} to more than {_mb(self.total)}" + (f" (at {where})" if where else ""))

    def spend(self, n: int, where: str) -> None:
        self.spent += n
        if self.spent > self.total:
            raise self.over(where)


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB"


def _names(value) -> list[str]:
    value = _resolve(value)
    if value is None:
        return []
    if isinstance(value, str):
        return [str(value)]
    try:
        return [str(_resolve(v)) for v in value]
    except TypeError:
        return [str(value)]


def _stream_cost(stream, budget: _Budget) -> int:
    """Bytes the stream decodes to, computed within ``budget.left`` (PdfTooComplex beyond it)."""
    from pypdf import filters as pf

    if not hasattr(stream, "get") or not hasattr(stream, "_data"):
        raise PdfUnreadable("an object stream reference does not point at a stream")
    data = stream._data
    chain = _names(stream.get("/Filter"))
    if len(chain) > 8:
        raise PdfTooComplex(f"a stream has {len(chain)} filters")
    produced = len(data)
    for i, name in enumerate(chain):
        keep = i < len(chain) - 1
        if name in IMAGE_CODECS:
            produced = _image_bytes(stream) or len(data)
            break
        if name in FLATE:
            data, produced = _inflate(data, budget, keep)
        elif name in ASCII_FILTERS:
            codec = pf.ASCIIHexDecode if "Hex" in name or name == "/AHx" else pf.ASCII85Decode
            data = codec.decode(data)
            produced = len(data)
        elif name in BOUNDED_BY_PYPDF:
            codec = pf.LZWDecode if "LZW" in name else pf.RunLengthDecode
            data = codec.decode(data)  # pypdf caps the output (configured in check_pdf)
            produced = len(data)
        else:
            raise PdfUnreadable(f"a stream uses filter {name[:30]}, which this appliance does not know")
        if produced > budget.left:
            raise budget.over()
    if str(_resolve(stream.get("/Subtype"))) == "/Image":
        produced = max(produced, _image_bytes(stream))
    return produced


def _inflate(data: bytes, budget: _Budget, keep: bool) -> tuple[bytes, int]:
    room = budget.left
    d = zlib.decompressobj()
    parts, total, buf = [], 0, data
    while True:
        try:
            out = d.decompress(buf, INFLATE_STEP)
        except zlib.error as e:
            raise PdfUnreadable(f"a stream does not decode ({e})") from None
        total += len(out)
        if total > room:
            raise budget.over()
        if keep:
            parts.append(out)
        buf = d.unconsumed_tail
        if not buf and len(out) < INFLATE_STEP:
            break
    return b"".join(parts), total


def _image_bytes(stream) -> int:
    """What a RIP allocates for an image: its declared dimensions, not its file size."""
    w, h = _resolve(stream.get("/Width")), _resolve(stream.get("/Height"))
    if not isinstance(w, int) or not isinstance(h, int) or w < 0 or h < 0:
        return 0
    mask = _resolve(stream.get("/ImageMask"))
    bpc = _resolve(stream.get("/BitsPerComponent", 1 if mask else 8))
    bpc = bpc if isinstance(bpc, int) and 0 < bpc <= 16 else 8
    comps = 1 if mask else _components(stream.get("/ColorSpace"))
    return (w * bpc * comps + 7) // 8 * h


def _components(space) -> int:
    space = _resolve(space)
    if space is None:
        return 3
    if isinstance(space, str):
        return COMPONENTS.get(str(space), 3)
    try:
        kind = str(_resolve(space[0]))
        if kind == "/ICCBased":
            n = _resolve(_resolve(space[1]).get("/N"))
            return n if isinstance(n, int) and 0 < n <= 32 else 3
        if kind == "/DeviceN":
            return max(1, min(32, len(_resolve(space[1]))))
        return COMPONENTS.get(kind, 3)
    except (IndexError, TypeError, AttributeError):
        return 3


# --- the object graph ----------------------------------------------------------------

def _findings(d) -> set[str]:
    found = set()
    keys = d.keys()
    subtype = str(_resolve(d.get("/Subtype"))) if "/Subtype" in keys else ""
    action = str(_resolve(d.get("/S"))) if "/S" in keys else ""
    if "/JS" in keys or action == "/JavaScript" or "/JavaScript" in keys:
        found.add("JavaScript")
    if action == "/Launch":
        found.add("a /Launch action")
    if action in ("/SubmitForm", "/ImportData"):
        found.add(f"a {action} action")
    if "/EmbeddedFiles" in keys or "/EF" in keys or str(_resolve(d.get("/Type"))) == "/EmbeddedFile":
        found.add("an embedded file")
    if subtype == "/FileAttachment":
        found.add("a file attachment")
    if subtype == "/RichMedia" or "/RichMediaContent" in keys:
        found.add("rich media")
    if "/XFA" in keys:
        found.add("an XFA form")
    return found


def _walk(root, limits: CheckLimits, budget: _Budget, counted: set[tuple[int, int]]) -> set[str]:
    """Every object reachable from the catalog: active content found, streams measured."""
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, StreamObject

    active: set[str] = set()
    stack = [(root, 0)]
    seen: set[tuple[int, int]] = set()
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > limits.max_nodes:
            raise PdfTooComplex(f"more than {limits.max_nodes} values in the document")
        if isinstance(value, IndirectObject):
            key = (value.idnum, value.generation)
            if key in seen:
                continue
            seen.add(key)
            if len(seen) > limits.max_objects:
                raise PdfTooComplex(f"more than {limits.max_objects} objects")
            value = value.get_object()
            depth = 0
            if isinstance(value, StreamObject) and key not in counted:
                counted.add(key)
                budget.spend(_stream_cost(value, budget), f"object {key[0]}")
        if depth > limits.max_depth:
            raise PdfTooComplex(f"objects nested more than {limits.max_depth} deep")
        if isinstance(value, DictionaryObject):
            active |= _findings(value)
            stack.extend((v, depth + 1) for k, v in value.items() if k != "/Parent")
        elif isinstance(value, ArrayObject):
            stack.extend((v, depth + 1) for v in value)
    return active


__all__ = ["CheckLimits", "check_pdf"]
