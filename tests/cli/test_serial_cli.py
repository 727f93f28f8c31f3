"""``appliance devices`` and the serial doctor checks, against the pty simulators."""

import argparse
import json
import time

from appliance.cli import devices as serial_cli
from appliance.config.profile import load_profile
from appliance.runtime.doctor import run_checks
from drivers.serial.link import describe_open_error
from tests.fixtures import ROOT

FLOOR = ROOT / "hardware-profiles" / "serial-floor.toml"


def _args(**kw):
    return argparse.Namespace(**{"config": None, "profile": None, "json": False, **kw})


def test_devices_asks_each_machine_for_its_status(capsys):
    assert serial_cli.cmd_devices(_args(profile=str(FLOOR), json=True)) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["lf3000"]["link"] == "ok" and rows["lf3000"]["state"] == "READY"
    assert rows["lf3000"]["counters"]["envelopes"] == "100000"
    assert rows["fm200"]["counters"]["ink"] == "999" and rows["fm200"]["protocol"] == "fm200-stx"


def test_devices_and_doctor_name_a_missing_port(tmp_path, capsys):
    profile = tmp_path / "floor.toml"
    profile.write_text(FLOOR.read_text().replace('port = "sim:fm200-stx"', f'port = "{tmp_path}/ttyGONE"'))
    assert serial_cli.cmd_devices(_args(profile=str(profile))) == 1
    out = capsys.readouterr().out
    assert "link=failed" in out and "no such port" in out and "link=ok" in out
    checks = {c.subject: c for c in run_checks(load_profile(profile))}
    assert checks["inserter lf3000"].ok and "answers status" in checks["inserter lf3000"].message
    assert not checks["franker fm200"].ok and "ttyGONE: no such port" in checks["franker fm200"].message


def test_devices_shows_the_running_appliance_view_when_fresh(tmp_path, capsys):
    state = tmp_path / "state"
    (state / "devices" / "lf3000").mkdir(parents=True)
    snap = {"name": "lf3000", "family": "inserter", "port": "/dev/ttyUSB0", "protocol": "lf3000-ascii",
            "link": "up", "state": "busy", "detail": "", "queue": 3, "counters": {"inserted": 41},
            "stock": {"envelopes": 20}, "t": time.time()}
    (state / "devices" / "lf3000" / "status.json").write_text(json.dumps(snap))
    row = serial_cli.describe(load_profile(FLOOR).inserters[0], state)
    assert (row["source"], row["state"], row["counters"], row["stock"]) == (
        "running appliance", "busy", {"inserted": 41}, {"envelopes": 20})
    snap["t"] -= 3600  # stale: ask the machine instead
    (state / "devices" / "lf3000" / "status.json").write_text(json.dumps(snap))
    assert serial_cli.describe(load_profile(FLOOR).inserters[0], state)["source"] == "asked the machine"


def test_open_errors_name_the_fix():
    err = PermissionError(13, "Permission denied")
    assert "dialout" in describe_open_error("/dev/ttyS0", err)
    assert "busy" in describe_open_error("/dev/ttyS0", OSError(11, "Resource temporarily unavailable"))
