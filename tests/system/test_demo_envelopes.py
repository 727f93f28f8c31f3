"""``appliance demo --scenario envelopes``: the envelope most letters need is not loaded at
the start; its letters are held before printing, the demo's operator loads it, the hold is released and every letter finishes; the report
says so."""

from __future__ import annotations

import json

from tests.system.test_demo_day import demo


def test_demo_envelope_scenario_holds_then_releases(tmp_path):
    state, summary = tmp_path / "state", tmp_path / "s.json"
    run = demo("--letters", "30", "--bad-ratio", "0", "--scenario", "envelopes", "--state-dir", str(state),
               "--quiet", "--summary-json", str(summary))
    assert run.returncode == 0, run.stderr[-3000:]
    s = json.loads(summary.read_text())
    assert s["finished"] and s["letters_finished"] == 30 and s["final_statuses"] == {"DISPATCHED": 30}
    sc = s["scenario"]
    assert sc["envelope"] and sc["held_before_print"] > 0 and sc["released"], sc
    # the timeline of reloads: unloaded by the scenario, loaded by the operator
    changes = [json.loads(x) for x in (state / "envelopes.jsonl").read_text().splitlines()]
    assert [(c["action"], c["envelope"], c["by"]) for c in changes] == [
        ("remove", sc["envelope"], "demo scenario"), ("add", sc["envelope"], "demo operator")]
    loaded = json.loads((state / "envelopes.json").read_text())["inserters"][sc["inserter"]]
    assert loaded.count(sc["envelope"]) == 1
    assert f"envelope {sc['envelope']} was not loaded at the start: {sc['held_before_print']} letters held " \
           "before printing" in run.stdout and "hold released, every letter finished" in run.stdout
