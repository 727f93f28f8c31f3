"""The systemd units are valid and hardened (exposure score <= 2.0)."""

import contextlib
import io
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
                 "SupplementaryGroups=lp dialout", "WatchdogSec=", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert line in text, line


def test_the_socket_is_for_the_operator_group_and_the_spool_private():
    """README "Operators": /run/appliance is 0750 group appliance, the socket the console
    unit attaches to is the one the daemon serves, and tmpfiles makes the spool 0700."""
    from appliance.control.protocol import DEFAULT_SOCKET

    daemon = (UNITS / "appliance.service").read_text()
    console = (UNITS / "appliance-console@.service").read_text()
    assert "Group=appliance" in daemon and "RuntimeDirectory=appliance\n" in daemon
    assert "RuntimeDirectoryMode=0750" in daemon
    assert f"--socket {DEFAULT_SOCKET}" in daemon and f"--socket {DEFAULT_SOCKET}" in console
    tmpfiles = (UNITS / "appliance.tmpfiles.conf").read_text()
    assert "d /var/lib/appliance/spool 0700 appliance appliance -" in tmpfiles


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


# --- the ready-to-install examples ----------------------------------------------------------

EXAMPLES = ROOT / "examples"


def _named_keys(text: str) -> set[tuple[str, str]]:
    """(section, key) for every key the file sets or shows commented out (``# key = ...``)."""
    out, section = set(), ""
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if m := re.fullmatch(r"\[([a-z_]+)\]", line):
            section = m.group(1)
        elif m := re.match(r"([a-z_]+) = ", line):
            out.add((section, m.group(1)))
    return out


def test_example_config_loads_and_names_every_setting():
    """examples/appliance.toml is what the unit reads: it loads with the real loader, points
    at the installed profile, state folder and key, and names every setting there is."""
    from appliance.config.settings import DEFAULT_CONFIG_PATH, SCHEMA, load_config

    cfg = load_config(EXAMPLES / "appliance.toml")
    assert str(cfg.profile) == "/etc/appliance/floor.toml"
    assert str(cfg.state_dir) == "/var/lib/appliance" and str(cfg.spool_dir) == "/var/lib/appliance/spool"
    assert str(cfg.api.private_key) == "/etc/appliance/private.pem" and cfg.api.auth == "jwt"
    named = _named_keys((EXAMPLES / "appliance.toml").read_text())
    missing = {(s, k) for s, keys in SCHEMA.items() for k in keys} - named
    assert not missing, f"settings the example does not show: {sorted(missing)}"
    unit = (UNITS / "appliance.service").read_text()
    assert f"--config {DEFAULT_CONFIG_PATH}" in unit


def test_example_floor_loads_with_agreed_reasons():
    from appliance.config.profile import load_profile
    from drivers.serial.finisher import protocol_path

    p = load_profile(EXAMPLES / "floor.toml")
    assert [(d.family, d.driver) for d in p.devices()] == [("printer", "cups"), ("inserter", "serial"),
                                                           ("franker", "serial")]
    assert {"DAMAGED", "LOST"} <= set(p.failure_reasons)
    for spec in p.inserters + p.frankers:  # the shipped protocol files resolve from /etc/appliance too
        assert protocol_path(spec.settings, spec.name).is_file()


# --- the README's commands, as they run after ./setup.sh ---------------------------------------

README = (ROOT / "README.md").read_text()


def test_readme_commands_run_as_installed():
    """Every command the README shows is ``.venv/bin/appliance ...`` (bare ``appliance`` is not
    on PATH after ./setup.sh), names a real sub-command, and the two set-up commands come first."""
    from appliance.cli.main import build_parser

    first = README.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert first[0].startswith("./setup.sh && .venv/bin/appliance demo")
    assert first[1].startswith("bash .ci/run")
    bare, fenced = [], False
    for line in README.splitlines():
        fenced ^= line.startswith("```")
        code = fenced or line.startswith("    ")  # a command line starts with it; prose only quotes it
        if re.search(r"(^\s*(\$ )?|\| )appliance [a-z-]+" if code else r"`appliance [a-z-]+", line) \
                and "appliance ->" not in line:
            bare.append(line)
    assert not bare, "\n".join(bare)
    used = set(re.findall(r"\.venv/bin/appliance ([a-z][a-z-]*)", README))
    unknown = []
    for command in sorted(used):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                build_parser().parse_args([command, "--help"])
            except SystemExit as e:  # --help exits 0; an unknown command exits 2
                if e.code != 0:
                    unknown.append(command)
    assert used and not unknown, unknown
