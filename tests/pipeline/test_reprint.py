"""Automatic reprint: the policy (pure), the profile's [reprint] table, and the pipeline's
guards that keep a spoiled print's late reports from proving or spoiling its reprint."""

from pathlib import Path

import pytest

from appliance.api.client import SupplierClient
from appliance.config.profile import load_profile
from appliance.config.settings import sandbox_api
from appliance.core.errors import ConfigError
from appliance.core.packs import load_packs
from appliance.core.reprint import ReprintPolicy, decide, stale_run, wants_reprint
from appliance.core.status import Status
from appliance.pipeline.pipeline import Pipeline, PipelineSettings
from appliance.store.store import Store
from drivers.base import DeviceEvent
from tests.fixtures import ROOT

FLOOR = ROOT / "hardware-profiles" / "serial-floor.toml"


@pytest.mark.parametrize("done, tries, reprint, words", [
    (0, 1, True, "reprint 1/1: why"),
    (1, 2, True, "reprint 2/2: why"),
    (1, 1, False, "why; failed again after 1 reprint(s)"),
    (0, 0, False, "why; automatic reprint is off ([reprint] tries = 0)"),
])
def test_decide(done, tries, reprint, words):
    d = decide(done, ReprintPolicy(tries), "why")
    assert (d.reprint, d.timeline) == (reprint, words)


def test_wants_reprint_and_stale_run():
    assert wants_reprint("reprint", {})
    assert wants_reprint("FAILED", {"reprintable": True}) and not wants_reprint("FAILED", {})
    assert not wants_reprint("ENCLOSED", {"reprintable": True})
    assert stale_run({"run": 4}, {"print_run": 5}) and not stale_run({"run": 5}, {"print_run": 5})
    assert not stale_run({}, {"print_run": 5}) and not stale_run({"run": 4}, {})


def _with(tmp_path, extra: str) -> Path:
    p = tmp_path / "floor.toml"
    p.write_text(FLOOR.read_text() + "\n" + extra + "\n")
    return p


def test_profile_reprint_table(tmp_path):
    assert load_profile(FLOOR).reprint == ReprintPolicy(1, "")
    got = load_profile(_with(tmp_path, '[reprint]\ntries = 2\nprinter = "colour-press"')).reprint
    assert got == ReprintPolicy(2, "colour-press")
    assert load_profile(_with(tmp_path, '[events]\n"piece.diverted" = "reprint"')).events == {
        "piece.diverted": "reprint"}


@pytest.mark.parametrize("extra, words", [
    ("[reprint]\ntries = -1", "[reprint] tries: expected a whole number 0-10"),
    ('[reprint]\ntries = "one"', "[reprint] tries: expected a whole number"),
    ('[reprint]\nprinter = "nope"', "[reprint] printer: 'nope' is not a [[printer]] of this profile"),
    ("[reprint]\ncount = 1", "[reprint] count: unknown key; expected tries or printer"),
])
def test_profile_reprint_mistakes_are_one_line(tmp_path, extra, words):
    with pytest.raises(ConfigError) as e:
        load_profile(_with(tmp_path, extra))
    assert words in str(e.value) and "\n" not in str(e.value)


@pytest.fixture
async def pipe(tmp_path):
    store = Store(tmp_path / "state")
    client = SupplierClient(sandbox_api("http://127.0.0.1:9"))
    p = Pipeline(PipelineSettings(spool_dir=tmp_path / "spool", prove_after=0.2), client, store, load_profile(FLOOR),
                 load_packs(), state_dir=tmp_path / "state")
    yield p
    await client.aclose()
    store.close()


def _at_inserter(p: Pipeline, lid: str, run: int) -> None:
    spec = next(iter(p.packs))
    p.store.add_letter(lid, spec, "g", "0" * 64)
    p.store.set_status(lid, Status.ACCEPTED)
    p.store.set_status(lid, Status.PRINTED)
    p.store.update(lid, stage="enclosing", device="lf3000", print_run=run, sheets=1)


def _ev(kind: str, lid: str, **detail) -> DeviceEvent:
    return DeviceEvent("lf3000", kind, lid, "0001/0001", {"batch": 1, "seq": 1, **detail})


async def test_a_late_insert_of_the_spoiled_run_never_proves_the_reprint(pipe):
    _at_inserter(pipe, "L1", run=5)
    await pipe._on_event(_ev("piece.inserted", "L1", run=4))
    rec = pipe.store.get("L1")
    assert rec["status"] == Status.PRINTED and rec["stage"] == "enclosing"
    assert rec["history"][-1]["event"] == "piece.inserted (ignored)"
    await pipe._on_event(_ev("piece.inserted", "L1", run=5))
    assert pipe.store.get("L1")["status"] == Status.ENCLOSED


async def test_a_late_suspect_of_the_spoiled_run_or_after_enclosed_is_ignored(pipe):
    _at_inserter(pipe, "L1", run=5)
    await pipe._on_event(_ev("piece.suspect", "L1", run=4, reason="old", reason_code="READBACK_MISSING"))
    rec = pipe.store.get("L1")
    assert not rec.get("reprints") and rec["stage"] == "enclosing"
    await pipe._on_event(_ev("piece.inserted", "L1", run=5))
    await pipe._on_event(_ev("piece.suspect", "L1", run=5, reason="late", reason_code="READBACK_MISSING"))
    rec = pipe.store.get("L1")
    assert rec["status"] == Status.ENCLOSED and not rec.get("reprints")
    enclosed = [e for e in pipe.store.outbox_pending() if e["letter_id"] == "L1" and e["status"] == "ENCLOSED"]
    assert len(enclosed) == 1


async def test_a_reprint_with_no_printer_free_is_held_then_routed_when_one_comes_up(pipe):
    _at_inserter(pipe, "L1", run=5)
    pdf = pipe.s.spool_dir / "L1.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    pipe.store.update("L1", pdf=str(pdf))
    await pipe._on_event(_ev("piece.suspect", "L1", run=5, reason="lf3000: read-back: x",
                             reason_code="READBACK_FOREIGN"))
    rec = pipe.store.get("L1")
    assert rec["reprints"] == 1 and rec["stage"] == "held" and rec["status"] == Status.PRINTED
    assert rec["reprint_code"] == "READBACK_FOREIGN"
    for s in pipe.profile.printers:
        pipe.device_state[s.name] = "idle"
    await pipe.retry_held()  # a printer came up: the PRINTED letter is routed, not forgotten
    rec = pipe.store.get("L1")
    assert rec["stage"] == "printing" and rec["print_run"] != 5
