"""The systemd units are valid and hardened (exposure score <= 2.0)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures import QUICK, ROOT

UNITS = ROOT / "systemd"
pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze not installed (./setup.sh --test installs it)")


def installable(unit: Path, tmp_path: Path) -> Path:
    """The unit as it would be installed, with ExecStart pointing at a binary that exists here."""
    out = tmp_path / unit.name
    out.write_text(unit.read_text().replace("/opt/appliance/.venv/bin/appliance", "/bin/true"))
    return out


@pytest.mark.parametrize("name", ["appliance.service", "appliance-console@.service"])
def test_units_verify(name, tmp_path):
    unit = installable(UNITS / name, tmp_path)
    if "@" in name:
        inst = tmp_path / name.replace("@", "@tty9")
        inst.write_text(unit.read_text())
        unit = inst
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "Unknown key" not in r.stderr and "Unknown section" not in r.stderr, r.stderr


def test_daemon_unit_exposure_score(tmp_path):
    unit = installable(UNITS / "appliance.service", tmp_path)
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                       capture_output=True, text=True)
    m = re.search(r"Overall exposure level for appliance.service: ([0-9.]+)", r.stdout)
    assert m, r.stdout[-500:] + r.stderr
    assert float(m.group(1)) <= 2.0


def test_daemon_unit_is_notify_and_restarts():
    text = (UNITS / "appliance.service").read_text()
    for line in ("Type=notify", "Restart=on-failure", "StateDirectory=appliance", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "CapabilityBoundingSet=\n",
                 "SupplementaryGroups=lp dialout", "WatchdogSec="):
        assert line in text, line


def test_daemon_speaks_sd_notify(tmp_path):
    """Under Type=notify the daemon says READY=1 once up, pets the watchdog, STOPPING=1 on SIGTERM."""
    import os
    import signal
    import socket
    import sys

    from appliance.runtime.demo import demo_profile_path
    from appliance.sandbox import SandboxOptions, run_in_thread

    sock_path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(sock_path)
    listener.settimeout(20)
    with run_in_thread(SandboxOptions(**QUICK, letters=3, seed=2)) as sb:
        cfg = tmp_path / "appliance.toml"
        cfg.write_text(f'[api]\nbase_url = "{sb.base_url}"\nauth = "none"\n[poll]\ninterval = 0.2\n'
                       f'[paths]\nstate_dir = "{tmp_path / "state"}"\nprofile = "{demo_profile_path()}"\n')
        env = {**os.environ, "NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "400000"}
        proc = subprocess.Popen([sys.executable, "-m", "appliance", "run", "--config", str(cfg),
                                 "--socket", str(tmp_path / "ctl.sock")], env=env,
                                stderr=subprocess.PIPE, text=True)
        try:
            messages = []
            while not any("READY=1" in m for m in messages):
                messages.append(listener.recv(4096).decode())
            while sum("WATCHDOG=1" in m for m in messages) < 2:
                messages.append(listener.recv(4096).decode())
            proc.send_signal(signal.SIGTERM)
            while not any("STOPPING=1" in m for m in messages):
                messages.append(listener.recv(4096).decode())
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            listener.close()
    ready = next(m for m in messages if "READY=1" in m)
    assert "STATUS=" in ready and sb.base_url in ready
