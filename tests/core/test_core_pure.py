"""The pure core: status transitions, reasons, event mapping, routing, verification rules."""

import hashlib

import pytest

from appliance.core.packs import load_packs, pack_from_upstream
from appliance.core.routing import PrinterCaps, PrinterView, choose_printer, waiting_for_room, why_not
from appliance.core.status import (
    RETURN_REASONS,
    Status,
    TransitionError,
    check_transition,
    reached,
    return_reason,
    status_for_event,
    validate_reason,
)
from appliance.core.verify import PdfFacts, judge
from appliance.intake.pdfcheck import check_pdf as inspect_pdf

PACKS = load_packs()
PF = frozenset({"BRAILLE", "AUDIO"})


# --- status model ------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    ["PENDING", "ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED", "DELIVERED", "RETURNED"],
    ["PENDING", "REJECTED"],
    ["PENDING", "ACCEPTED", "FAILED"],
    ["PENDING", "ACCEPTED", "PRINTED", "CANCELLED"],
    ["PENDING", "ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED", "FORWARDED", "DELIVERED"],
])
def test_forward_paths_allowed(path):
    for a, b in zip(path, path[1:]):
        assert check_transition(a, b) is True


@pytest.mark.parametrize("a, b", [
    ("ACCEPTED", "PENDING"), ("PRINTED", "ACCEPTED"), ("DISPATCHED", "PRINTED"),
    ("REJECTED", "ACCEPTED"), ("FAILED", "PRINTED"), ("PENDING", "DISPATCHED"),
    ("RETURNED", "DELIVERED"), ("ENCLOSED", "PRINTED"),
])
def test_backwards_or_skipping_refused(a, b):
    with pytest.raises(TransitionError):
        check_transition(a, b)


def test_same_status_is_noop_and_unknown_refused():
    for s in Status:
        assert check_transition(s, s) is False
    with pytest.raises(TransitionError, match="unknown status"):
        check_transition("PENDING", "SHIPPED")


def test_reached_tells_a_replay_the_api_already_has():
    assert reached("ENCLOSED", "PRINTED") and reached("ENCLOSED", "ENCLOSED")
    assert reached("DISPATCHED", "ACCEPTED") and reached("FAILED", "PRINTED")
    assert not reached("PRINTED", "ENCLOSED") and not reached("PENDING", "ACCEPTED")
    assert not reached("REJECTED", "ACCEPTED")  # a rejected letter was never accepted


def test_returned_reasons_exact():
    validate_reason("RETURNED", "R09", "Deceased")
    validate_reason("RETURNED", "R09", None)
    with pytest.raises(TransitionError, match="R01-R10"):
        validate_reason("RETURNED", "R11", "x")
    with pytest.raises(TransitionError, match="must be 'Deceased'"):
        validate_reason("RETURNED", "R09", "dead")
    with pytest.raises(TransitionError, match="R01-R10"):
        validate_reason("RETURNED", None, None)
    assert return_reason("r05") == ("R05", RETURN_REASONS["R05"])
    with pytest.raises(TransitionError, match="use one of R01"):
        return_reason("R00")
    assert len(RETURN_REASONS) == 10


def test_event_mapping_default_and_override():
    assert status_for_event("job.completed") == "PRINTED"
    assert status_for_event("piece.inserted") == "ENCLOSED"
    assert status_for_event("piece.franked") == "DISPATCHED"
    assert status_for_event("job.aborted") == "reroute"
    assert status_for_event("job.processing") is None
    assert status_for_event("job.aborted", {"job.aborted": "FAILED"}) == "FAILED"
    assert status_for_event("tray.complete", {"tray.complete": None}) is None
    with pytest.raises(KeyError):
        status_for_event("job.exploded")


# --- packs --------------------------------------------------------------------------------

def test_pack_constraints_from_upstream_operators():
    p = PACKS["notify-c5"]
    assert (p.max_sheets, p.max_sides, p.duplex, p.colour) == (4, 9, True, False)
    assert PACKS["notify-c5-colour"].colour
    assert "BRAILLE" in PACKS["notify-braille"].features
    assert p.sheets_for(9) == 5 and p.sheets_for(8) == 4
    simplex = pack_from_upstream({"id": "s", "assembly": {"paper": {"id": "x", "size": "A4"}, "duplex": False},
                                  "constraints": {"sheets": {"operator": "LESS_THAN", "value": 3}}})
    assert simplex.sheets_for(3) == 3 and simplex.max_sheets == 2


# --- routing ------------------------------------------------------------------------------

MONO = PrinterCaps(frozenset({"A4"}), frozenset(), 100, False, True, frozenset())
COLOUR = PrinterCaps(frozenset({"A4"}), frozenset(), 100, True, True, frozenset())
BRAILLE = PrinterCaps(frozenset({"A4"}), frozenset({"paper-braille"}), 160, False, True, frozenset({"BRAILLE"}))


def views(**loads):
    caps = {"mono": MONO, "colour": COLOUR, "braille": BRAILLE}
    return [PrinterView(n, caps[n], "idle", loads.get(n, 0)) for n in ("mono", "colour", "braille")]


def test_routing_by_capability():
    assert choose_printer(views(), PACKS["notify-c5"], PF).name == "mono"
    assert choose_printer(views(), PACKS["notify-c5-colour"], PF).name == "colour"
    assert choose_printer(views(), PACKS["notify-braille"], PF).name == "braille"


def test_routing_least_loaded_and_exclusions():
    assert choose_printer(views(mono=5, colour=1), PACKS["notify-c5"], PF).name == "colour"
    assert choose_printer(views(), PACKS["notify-c5"], PF, frozenset({"mono"})).name == "colour"
    # the only capable printer was tried already: tried again rather than stranding the letter
    assert choose_printer(views(), PACKS["notify-c5-colour"], PF, frozenset({"colour"})).name == "colour"


def test_full_printers_take_nothing_and_the_letter_waits_for_room():
    v = [PrinterView("mono", MONO, "idle", 3, limit=3), PrinterView("colour", COLOUR, "busy", 1, limit=2)]
    assert choose_printer(v, PACKS["notify-c5"], PF).name == "colour"
    assert choose_printer(v, PACKS["notify-c5-colour"], PF).name == "colour"
    v[1] = PrinterView("colour", COLOUR, "busy", 2, limit=2)
    assert choose_printer(v, PACKS["notify-c5"], PF) is None
    assert waiting_for_room(v, PACKS["notify-c5"], PF)
    assert not waiting_for_room(v, PACKS["notify-braille"], PF)  # nobody can print it: hold, not wait
    unlimited = [PrinterView("mono", MONO, "idle", 10_000)]
    assert choose_printer(unlimited, PACKS["notify-c5"], PF).name == "mono"
    stopped_full = [PrinterView("mono", MONO, "stopped", 3, limit=3)]
    assert not waiting_for_room(stopped_full, PACKS["notify-c5"], PF)  # stopped: held with an alert


def test_routing_skips_stopped_and_explains():
    v = [PrinterView("mono", MONO, "stopped", 0), PrinterView("colour", COLOUR, "paused", 0)]
    assert choose_printer(v, PACKS["notify-c5"], PF) is None
    assert why_not(MONO, PACKS["notify-c5-colour"], PF) == "colour needed"
    assert "BRAILLE" in why_not(COLOUR, PACKS["notify-braille"], PF) or "paper" in why_not(
        COLOUR, PACKS["notify-braille"], PF)
    assert why_not(MONO, PACKS["notify-audio"], PF) == "feature AUDIO needed"
    assert why_not(MONO, PACKS["notify-admail"], PF) is None  # ADMAIL is not a print feature


# --- verification -------------------------------------------------------------------------

def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_judge_rules():
    p = PACKS["notify-c5"]
    good = judge("AB" * 32, "ab" * 32, PdfFacts(3), p)
    assert good.ok and good.sheets == 2 and good.pages == 3
    assert judge("a" * 64, "b" * 64, PdfFacts(3), p).reason_code == "HASH_MISMATCH"
    assert judge("a" * 64, "a" * 64, PdfFacts(None, "bad"), p).reason_code == "PDF_UNREADABLE"
    assert judge("a" * 64, "a" * 64, PdfFacts(0), p).reason_code == "PDF_EMPTY"
    assert judge("a" * 64, "a" * 64, PdfFacts(10), p).reason_code == "TOO_MANY_SIDES"
    assert judge("a" * 64, "a" * 64, PdfFacts(9), p).reason_code == "TOO_MANY_SHEETS"
    assert judge("a" * 64, "a" * 64, PdfFacts(3), None).reason_code == "UNKNOWN_SPECIFICATION"
    assert "at most 4" in judge("a" * 64, "a" * 64, PdfFacts(9), p).reason_text


def test_inspect_pdf_real_and_bad(tmp_path):
    from pypdf import PdfWriter

    w = PdfWriter()
    for _ in range(3):
        w.add_blank_page(595, 842)
    good = tmp_path / "good.pdf"
    with open(good, "wb") as f:
        w.write(f)
    assert inspect_pdf(good).pages == 3
    notpdf = tmp_path / "x.pdf"
    notpdf.write_bytes(b"hello world")
    assert inspect_pdf(notpdf).pages is None and "not a PDF" in inspect_pdf(notpdf).problem
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(good.read_bytes()[:60])
    assert inspect_pdf(cut).pages in (None, 0)
    w2 = PdfWriter()
    w2.add_blank_page(595, 842)
    w2.encrypt("secret")
    enc = tmp_path / "enc.pdf"
    with open(enc, "wb") as f:
        w2.write(f)
    assert inspect_pdf(enc).pages is None and "encrypted" in inspect_pdf(enc).problem
