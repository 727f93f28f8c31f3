"""`appliance demo --cups`: the demo floor printing through a real private cupsd."""

import json
import subprocess
import sys

import pytest

from appliance.config.profile import load_profile
from appliance.runtime.cups_demo import cups_profile_text
from appliance.runtime.demo import demo_profile_path
from drivers.sim.cups_floor import missing_binaries


def test_cups_profile_keeps_every_printer_capability(tmp_path):
    base = load_profile(demo_profile_path())
    path = tmp_path / "p.toml"
    path.write_text(cups_profile_text(base, "127.0.0.1:6310"))
    cups = load_profile(path)
    assert [p.name for p in cups.printers] == [p.name for p in base.printers]
    for a, b in zip(base.printers, cups.printers):
        assert b.driver == "cups" and b.settings["queue"] == a.name and b.settings["server"] == "127.0.0.1:6310"
        assert a.caps == b.caps
    assert [d.name for d in cups.inserters + cups.frankers] == [d.name for d in base.inserters + base.frankers]


@pytest.mark.cups
@pytest.mark.skipif(bool(missing_binaries()), reason="CUPS binaries not installed (./setup.sh --test)")
def test_demo_cups_runs_letters_through_real_cups(tmp_path):
    out = tmp_path / "s.json"
    r = subprocess.run([sys.executable, "-m", "appliance", "demo", "--cups", "--letters", "12", "--quiet",
                        "--seed", "4", "--summary-json", str(out)], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(out.read_text())
    final = summary["final_statuses"]
    assert summary["finished"] and final.get("DISPATCHED", 0) + final.get("REJECTED", 0) == 12
    assert final.get("DISPATCHED", 0) >= 9
