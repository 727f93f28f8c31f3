"""The small torture run (benchmarks/torture.py): kill -9 the real daemon 10 times while it
prints through real CUPS emulators and serial machines on ptys; nothing lost, nothing twice."""

import importlib.util

import pytest

from drivers.sim.cups_floor import missing_binaries
from tests.fixtures import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.cups]

TORTURE = ROOT / "benchmarks" / "torture.py"


def _torture():
    spec = importlib.util.spec_from_file_location("torture", TORTURE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ten_kills_over_eighty_letters_lose_and_repeat_nothing(tmp_path):
    if missing_binaries():
        pytest.skip(f"CUPS binaries not installed ({', '.join(missing_binaries())})")
    r = _torture().run_torture(tmp_path / "torture", letters=80, kills=10, seed=3, kill_after=(0.8, 2.5),
                               deadline=150)
    assert r["problems"] == [], r
    assert r["lost"] == 0 and r["duplicates"] == 0 and r["out_of_order"] == 0, r
    assert r["final"].get("DISPATCHED", 0) + r["final"].get("REJECTED", 0) == 80 - r["final"].get("FAILED", 0), r
    assert r["store_ok"] and r["in_flight_left"] == 0 and r["outbox_left"] == 0, r
    assert r["daemon_exit"] == 0
    assert r["kills_mid_run"] >= 5, r  # the kills really hit a run in progress
    # every good letter reached a printer; a held piece resolved by reprint may add one job
    good = r["final"].get("DISPATCHED", 0)
    assert good <= r["jobs_received"] <= good + r["holds_by_outcome"].get("reprint", 0), r
