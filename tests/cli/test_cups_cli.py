"""``appliance printers`` and ``appliance doctor`` against the private cupsd."""

from __future__ import annotations

import argparse
import json

import pytest

from appliance.cli import doctor
from appliance.cli import printers as printers_cli
from appliance.config.profile import load_profile

pytestmark = pytest.mark.cups


def profile_file(tmp_path, server: str, queues: list[str]):
    text = ['[profile]\nname = "cli"\n']
    for q in queues:
        text.append(f'[[printer]]\nname = "{q}"\ndriver = "cups"\nqueue = "{q}"\nserver = "{server}"\n'
                    'colour = true\nduplex = true\n')
    text.append('[[printer]]\nname = "folder"\ndriver = "file"\n')
    path = tmp_path / "p.toml"
    path.write_text("\n".join(text))
    return path


def run_cli(module, argv):
    parser = argparse.ArgumentParser()
    module.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_printers_lists_live_state_depth_and_capabilities(cups_fleet, tmp_path, capsys):
    cups_fleet.run("cupsdisable", "press-colour")
    path = profile_file(tmp_path, cups_fleet.server, ["press-mono", "press-colour", "missing-q"])
    assert run_cli(printers_cli, ["printers", "--profile", str(path), "--json"]) == 0
    rows = {r["name"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["press-mono"]["state"] == "idle" and rows["press-mono"]["queued"] == 0
    assert rows["press-colour"]["state"] == "stopped"
    assert rows["missing-q"]["state"] == "offline" and "not found" in rows["missing-q"]["detail"]
    assert rows["folder"]["driver"] == "file"
    assert "colour duplex" in rows["press-mono"]["capabilities"]
    assert run_cli(printers_cli, ["printers", "--profile", str(path)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:3] == ["NAME", "DRIVER", "STATE"]
    assert "press-colour" in table


def test_doctor_reports_each_queue_problem_with_the_fix(cups_fleet, tmp_path, capsys):
    cups_fleet.run("cupsdisable", "press-colour")
    cups_fleet.run("cupsreject", "embosser")
    path = profile_file(tmp_path, cups_fleet.server, ["press-mono", "press-colour", "embosser", "missing-q"])
    checks = doctor.run_checks(load_profile(path))
    by = {}
    for c in checks:
        by.setdefault(c.subject, []).append(c)
    assert all(c.ok for c in by["printer press-mono"])
    assert any(not c.ok and "cupsenable press-colour" in c.message for c in by["printer press-colour"])
    assert any(not c.ok and "cupsaccept embosser" in c.message for c in by["printer embosser"])
    (missing,) = by["printer missing-q"]
    assert not missing.ok and f"queue missing-q not found on {cups_fleet.server}" in missing.message
    assert "lpadmin -p missing-q -E -v" in missing.message
    assert run_cli(doctor, ["doctor", "--profile", str(path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  printer missing-q" in out and "3 problem(s)" in out


def test_doctor_unreachable_cups_is_one_line(tmp_path):
    from drivers.sim.cups_floor import free_port

    path = profile_file(tmp_path, f"127.0.0.1:{free_port()}", ["press-mono"])
    checks = [c for c in doctor.run_checks(load_profile(path)) if not c.ok]
    assert len(checks) == 1 and "does not answer" in checks[0].message and "\n" not in checks[0].message
