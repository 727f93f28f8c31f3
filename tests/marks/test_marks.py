"""Sheet marks: what is printed decodes back to the right letter, sheet and run, and
nothing outside the clear zone changes.  Codes are read back the way a floor would: the
page rendered (pdftoppm) and scanned (zbarimg)."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject, NumberObject, RectangleObject

import tests.fixtures.floor as floor_module
from appliance.config.profile import load_profile
from appliance.core.errors import ConfigError
from appliance.core.markcode import encode
from appliance.core.packs import load_packs
from appliance.marks.overlay import ClearZone, MarkError, mark_pdf
from appliance.runtime.demo import demo_profile_path
from appliance.sandbox.pdfgen import make_corrupt, make_pdf
from tests.fixtures.floor import Floor, new_sandbox

needs_tools = pytest.mark.skipif(
    not (shutil.which("pdftoppm") and shutil.which("zbarimg")),
    reason="needs pdftoppm (poppler-utils) and zbarimg (zbar-tools): ./setup.sh --test installs them")

LETTER = "0123456789abcdef0123456789abcdef"
ZONE = ClearZone(x_mm=5, y_mm=250, size_mm=14)
LOW_ZONE = ClearZone(x_mm=5, y_mm=180, size_mm=14)  # on an A4 page upright or turned
DPI = 200


def render(pdf: Path, dpi: int, gray: bool = False) -> list[Path]:
    """One image per page, in page order."""
    out = Path(tempfile.mkdtemp(dir=pdf.parent))
    args = ["pdftoppm", "-r", str(dpi)] + (["-gray"] if gray else ["-png"])
    subprocess.run([*args, str(pdf), str(out / "p")], check=True, capture_output=True)
    return sorted(out.iterdir())


def read_codes(pdf: Path) -> list[str | None]:
    """The code read from each page (None: no code on that page)."""
    texts = []
    for image in render(pdf, DPI):
        r = subprocess.run(["zbarimg", "--raw", "-q", str(image)], capture_output=True, text=True)
        lines = r.stdout.split()
        assert len(lines) <= 1, f"{image.name}: more than one code: {lines}"
        texts.append(lines[0] if lines else None)
    return texts


def expected_codes(letter_id: str, pages: int, duplex: bool, run: int) -> list[str | None]:
    sheets = -(-pages // 2) if duplex else pages
    if duplex:
        return [encode(letter_id, p // 2 + 1, sheets, run) if p % 2 == 0 else None for p in range(pages)]
    return [encode(letter_id, p + 1, sheets, run) for p in range(pages)]


def sandbox_pdf(tmp_path: Path, pages: int, name: str = "letter.pdf", letter_id: str = LETTER) -> Path:
    path = tmp_path / name
    path.write_bytes(make_pdf(letter_id, pages, ("Specification notify-c5",)))
    return path


def awkward_pdf(tmp_path: Path) -> Path:
    """Deflated content streams, a mediabox not at the origin, one page turned 90 degrees."""
    writer = PdfWriter(clone_from=PdfReader(sandbox_pdf(tmp_path, 2, "plain.pdf")))
    for page in writer.pages:
        page.compress_content_streams()
        page[NameObject("/MediaBox")] = RectangleObject([-30, -40, 565, 802])
    writer.pages[1][NameObject("/Rotate")] = NumberObject(90)
    path = tmp_path / "awkward.pdf"
    with open(path, "wb") as f:
        writer.write(f)
    return path


# --- read-back ----------------------------------------------------------------------


@needs_tools
@pytest.mark.parametrize("pages,duplex", [(1, False), (3, False), (1, True), (2, True), (5, True)])
def test_every_sheet_reads_back(tmp_path, pages, duplex):
    src = sandbox_pdf(tmp_path, pages)
    dest = tmp_path / f"{LETTER}.r41.pdf"
    sheets = mark_pdf(src, dest, letter_id=LETTER, run=41, zone=ZONE, duplex=duplex)
    assert sheets == (-(-pages // 2) if duplex else pages)
    assert read_codes(dest) == expected_codes(LETTER, pages, duplex, 41)
    assert read_codes(src) == [None] * pages  # the original is untouched
    assert dest.stat().st_mode & 0o777 == 0o600  # patient data
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".part")]


@needs_tools
def test_rotated_offset_and_deflated_pages_read_back(tmp_path):
    src = awkward_pdf(tmp_path)
    dest = tmp_path / "m.pdf"
    mark_pdf(src, dest, letter_id=LETTER, run=7, zone=LOW_ZONE, duplex=False)
    assert read_codes(dest) == expected_codes(LETTER, 2, False, 7)


# --- nothing outside the clear zone changes ------------------------------------------


def _content_streams(pdf: Path) -> list[list[bytes]]:
    """Each page's content streams as stored (raw, still encoded)."""
    out = []
    for page in PdfReader(pdf).pages:
        contents = page.get_object()["/Contents"].get_object()
        streams = contents if isinstance(contents, list) else [page.get_object()["/Contents"]]
        out.append([s.get_object()._data for s in streams])
    return out


@pytest.mark.parametrize("maker", ["sandbox", "awkward"])
def test_original_content_streams_are_byte_identical(tmp_path, maker):
    src = sandbox_pdf(tmp_path, 3) if maker == "sandbox" else awkward_pdf(tmp_path)
    dest = tmp_path / "m.pdf"
    mark_pdf(src, dest, letter_id=LETTER, run=3, zone=LOW_ZONE, duplex=False)
    before, after = _content_streams(src), _content_streams(dest)
    marked_bytes = dest.read_bytes()
    for page_before, page_after in zip(before, after, strict=True):
        # q-stream, the page's own streams unchanged and in order, then the overlay
        assert page_after[1:-1] == page_before
        assert page_after[0].strip() == b"q"
        for raw in page_before:
            assert raw in marked_bytes  # written out verbatim, not re-encoded


@pytest.mark.parametrize("duplex", [False, True])
def test_text_extraction_unchanged(tmp_path, duplex):
    src = sandbox_pdf(tmp_path, 4)
    dest = tmp_path / "m.pdf"
    mark_pdf(src, dest, letter_id=LETTER, run=3, zone=ZONE, duplex=duplex)
    original = [p.extract_text() for p in PdfReader(src).pages]
    assert [p.extract_text() for p in PdfReader(dest).pages] == original
    assert f"Letter {LETTER}" in original[0]


def _gray(image: Path) -> tuple[int, int, bytes]:
    """A binary PGM (pdftoppm -gray): width, height, one byte per pixel."""
    data = image.read_bytes()
    fields, pos = [], 0
    while len(fields) < 4:  # magic, width, height, maxval
        while data[pos:pos + 1].isspace():
            pos += 1
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    assert fields[0] == b"P5" and fields[3] == b"255"
    w, h = int(fields[1]), int(fields[2])
    return w, h, data[pos + 1:]


@needs_tools
@pytest.mark.parametrize("maker", ["sandbox", "awkward"])
def test_no_pixel_changes_outside_the_zone(tmp_path, maker):
    src = sandbox_pdf(tmp_path, 2) if maker == "sandbox" else awkward_pdf(tmp_path)
    dest = tmp_path / "m.pdf"
    zone = ZONE if maker == "sandbox" else LOW_ZONE
    mark_pdf(src, dest, letter_id=LETTER, run=3, zone=zone, duplex=False)
    dpi = 100
    px = dpi / 25.4
    # the zone as seen, in pixels, grown by 1 px for anti-aliasing at its edges
    x0, y0 = int(zone.x_mm * px) - 1, int(zone.y_mm * px) - 1
    x1, y1 = int((zone.x_mm + zone.size_mm) * px) + 2, int((zone.y_mm + zone.size_mm) * px) + 2
    for before, after in zip(render(src, dpi, gray=True), render(dest, dpi, gray=True), strict=True):
        w, h, a = _gray(before)
        w2, h2, b = _gray(after)
        assert (w, h) == (w2, h2)
        outside = [(x, y) for y in range(h) for x in range(w)
                   if a[y * w + x] != b[y * w + x] and not (x0 <= x < x1 and y0 <= y < y1)]
        assert not outside, f"{after.name}: {len(outside)} pixels changed outside the zone, e.g. {outside[:5]}"
        inside = sum(a[y * w + x] != b[y * w + x] for y in range(y0, y1) for x in range(x0, x1))
        assert inside > 100  # and the code really is there
        assert any(a[i] < 128 for i in range(len(a)))  # the page has content that had to survive


# --- refusals: one line, nothing written ----------------------------------------------


@pytest.mark.parametrize("zone,words", [
    (ClearZone(200, 250, 14), "outside"),
    (ClearZone(5, 290, 14), "outside"),
    (ClearZone(5, 250, 8), "too small"),
])
def test_a_zone_that_cannot_work_is_refused_in_one_line(tmp_path, zone, words):
    src = sandbox_pdf(tmp_path, 2)
    dest = tmp_path / "m.pdf"
    with pytest.raises(ConfigError) as e:
        mark_pdf(src, dest, letter_id=LETTER, run=1, zone=zone, duplex=True)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert not dest.exists() and not [f for f in tmp_path.iterdir() if f.name.endswith(".part")]


def test_a_long_id_needs_a_bigger_zone(tmp_path):
    long_id = "L" * 120
    src = sandbox_pdf(tmp_path, 1, letter_id=long_id)
    with pytest.raises(ConfigError, match="size_mm at least"):
        mark_pdf(src, tmp_path / "m.pdf", letter_id=long_id, run=1, zone=ZONE, duplex=False)
    assert mark_pdf(src, tmp_path / "m.pdf", letter_id=long_id, run=1, zone=ClearZone(5, 250, 22),
                    duplex=False) == 1


def test_corrupt_pdf_is_one_line(tmp_path):
    src = tmp_path / "bad.pdf"
    src.write_bytes(make_corrupt(LETTER))
    with pytest.raises(MarkError) as e:
        mark_pdf(src, tmp_path / "m.pdf", letter_id=LETTER, run=1, zone=ZONE, duplex=False)
    assert "not a readable PDF" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "m.pdf").exists()


# --- the profile ----------------------------------------------------------------------

DEMO = demo_profile_path().read_text()


def profile_with(tmp_path: Path, marks: str, printer_marks: str = "true") -> Path:
    """The demo floor with ``marks = ...`` on every printer and ``marks`` as its [marks] table;
    the printers keep their printed copies (``keep_seconds``) so the tests can read the marks."""
    text = DEMO.split("[marks]")[0] + DEMO.split("[marks]")[1].split("\n", 2)[2]  # drop the demo's zone
    text = text.replace('driver = "file"\n', f'driver = "file"\nmarks = {printer_marks}\nkeep_seconds = 3600\n')
    path = tmp_path / "floor.toml"
    path.write_text(text + "\n" + marks)
    return path


def test_profile_zones(tmp_path):
    prof = load_profile(profile_with(tmp_path, '[marks]\ndefault = { x_mm = 5, y_mm = 250, size_mm = 14 }\n'
                                               '[marks.zone."notify-c5"]\nx_mm = 190\ny_mm = 5\nsize_mm = 15\n'))
    assert all(p.marks for p in prof.printers)
    assert prof.marks.zone_for("notify-c5") == ClearZone(190, 5, 15)
    assert prof.marks.zone_for("notify-c4") == ClearZone(5, 250, 14)
    demo = load_profile(demo_profile_path())
    assert not any(p.marks for p in demo.printers)  # off unless a printer asks
    assert demo.marks.zone_for("anything") == ClearZone(5, 250, 14)


@pytest.mark.parametrize("marks,printer_marks,words", [
    ("[marks]\ndefault = { x_mm = 200, y_mm = 250, size_mm = 14 }", "true", "outside the 210 x 297 mm page"),
    ('[marks.zone."notify-c5"]\nx_mm = 5\ny_mm = 290\nsize_mm = 14', "true", "outside"),
    ("[marks]\ndefault = { x_mm = 5, y_mm = 250, size_mm = 9 }", "true", "too small"),
    ("[marks]\ndefault = { x_mm = 5, y_mm = 250, size_mm = 14, colour = 1 }", "true", "colour: unknown key"),
    ("[marks]\ndefault = { x_mm = 5, y_mm = 250 }", "true", "size_mm: missing"),
    ("[marks]\ndefault = { x_mm = -1, y_mm = 250, size_mm = 14 }", "true", "x_mm: must be at least 0"),
    ("[marks]\ndefault = { x_mm = \"5\", y_mm = 250, size_mm = 14 }", "true", "expected a number"),
    ("[marks]\nplace = 1", "true", "place: unknown key"),
    ("", "true", "no zone"),
    ('[marks.zone."notify-c5"]\nx_mm = 5\ny_mm = 250\nsize_mm = 14', "true", "no clear zone for pack"),
    ("", '"yes"', "marks: expected true or false"),
])
def test_profile_mistakes_are_one_line(tmp_path, marks, printer_marks, words):
    with pytest.raises(ConfigError) as e:
        load_profile(profile_with(tmp_path, marks, printer_marks))
    assert words in str(e.value), str(e.value)
    assert "\n" not in str(e.value) and "floor.toml" in str(e.value)


# --- in the pipeline ------------------------------------------------------------------

GOOD_PATH = ["ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED"]


@needs_tools
async def test_the_printer_gets_marked_sheets(tmp_path, monkeypatch):
    profile = profile_with(tmp_path, "[marks]\ndefault = { x_mm = 5, y_mm = 250, size_mm = 14 }\n")
    monkeypatch.setattr(floor_module, "demo_profile_path", lambda: profile)
    sb = await new_sandbox(good=3)
    long_id = "x" * 120  # a safe id whose mark cannot fit the 14 mm zone: held, nothing else disturbed
    sb.add_letter(letter_id=long_id, pages=1)
    good = [i for i in sb.letters if i != long_id]
    try:
        async with Floor(sb, tmp_path) as f:
            await f.wait_final(good)
            await f.wait(lambda: f.store.get(long_id)["stage"] == "operator-hold")
            sandbox_pdfs = {i: sb.letters[i].pdf for i in good}
            records = {i: f.store.get(i) for i in good + [long_id]}
            f.pipe.sweep_spool()
            spool_left = sorted(p.name for p in f.spool.iterdir())
    finally:
        await sb.stop()

    packs = load_packs()
    for lid in good:
        assert [s for s, _ in sb.letters[lid].history if s != "PENDING"] == GOOD_PATH
        rec = records[lid]
        run = rec["print_run"]
        # the record keeps the original as the letter's identity
        assert Path(rec["pdf"]).name == f"{lid}.pdf" and Path(rec["marked_pdf"]).name == f"{lid}.r{run}.pdf"
        assert rec["sha256"] == sb.letters[lid].sha256
        assert any(h.get("event") == f"marked run {run}" for h in rec["history"])
        printed = next((tmp_path / "state" / "output").glob(f"*/{lid}.pdf"))
        assert printed.read_bytes() != sandbox_pdfs[lid]
        pages = len(PdfReader(io.BytesIO(sandbox_pdfs[lid])).pages)
        assert read_codes(printed) == expected_codes(lid, pages, packs[rec["specification_id"]].duplex, run)
    held = records[long_id]
    assert "cannot print sheet marks" in held["hold_reason"] and "too small" in held["hold_reason"]
    assert [s for s, _ in sb.letters[long_id].history if s != "PENDING"] == ["ACCEPTED"]
    assert not any((tmp_path / "state" / "output").glob(f"*/{long_id}.pdf"))
    # final letters leave nothing in the spool; the held one keeps only its original
    assert spool_left == [f"{long_id}.pdf"]


async def test_spool_sweeper_knows_marked_copies(tmp_path):
    sb = await new_sandbox(good=1)
    try:
        async with Floor(sb, tmp_path) as f:
            await f.wait_final(list(sb.letters))
            done = next(iter(sb.letters))
            stray = f.spool / f"{done}.r99.pdf"  # a copy left by a crash between mark and submit
            stray.write_bytes(b"%PDF")
            f.store.add_letter("inflight1", "notify-c5", "g", "0" * 64)
            kept = f.spool / "inflight1.r5.pdf"
            kept.write_bytes(b"%PDF")
            f.pipe.sweep_spool()
            assert not stray.exists() and kept.exists()
    finally:
        await sb.stop()


@needs_tools
async def test_a_reroute_prints_a_new_run(tmp_path, monkeypatch):
    """A job aborted on one printer is printed on another under a new print run: the sheets
    carry the new run and the first copy is gone."""
    profile = profile_with(tmp_path, "[marks]\ndefault = { x_mm = 5, y_mm = 250, size_mm = 14 }\n")
    text = profile.read_text().replace('name = "mono-duplex"\n', 'name = "mono-duplex"\nfail_every = 1\n')
    profile.write_text(text)
    monkeypatch.setattr(floor_module, "demo_profile_path", lambda: profile)
    sb = await new_sandbox(good=3)
    try:
        async with Floor(sb, tmp_path) as f:
            await f.wait_final(list(sb.letters))
            records = {i: f.store.get(i) for i in sb.letters}
            spool_left = list(f.spool.iterdir())
    finally:
        await sb.stop()
    rerouted = [r for r in records.values() if r.get("attempts")]
    assert rerouted, "no letter went to mono-duplex first; the test proves nothing"
    for rec in rerouted:
        runs = [h["event"] for h in rec["history"] if str(h.get("event", "")).startswith("marked run")]
        assert len(runs) == 2 and runs[-1] == f"marked run {rec['print_run']}" and runs[0] != runs[-1]
        printed = next((tmp_path / "state" / "output").glob(f"*/{rec['id']}.pdf"))
        assert printed.parent.name != "mono-duplex"
        codes = read_codes(printed)
        assert codes[0] == encode(rec["id"], 1, rec["sheets"], rec["print_run"])
    for lid in sb.letters:
        assert [s for s, _ in sb.letters[lid].history if s != "PENDING"] == GOOD_PATH
    assert spool_left == []
