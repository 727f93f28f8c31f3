"""``appliance run`` ends a start it cannot make with ONE line naming the path or setting and
the fix, a non-zero exit and no traceback: the real CLI in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

PROFILE = '[profile]\nname = "run"\n[[printer]]\nname = "folder"\ndriver = "file"\n'


def setup(home, *, api_extra="", state="state", profile=PROFILE):
    home.mkdir(parents=True, exist_ok=True)
    (home / "profile.toml").write_text(profile)
    auth = "jwt" if api_extra else "none"
    cfg = home / "appliance.toml"
    cfg.write_text(f'[api]\nbase_url = "http://127.0.0.1:9"\nauth = "{auth}"\n{api_extra}'
                   f'[paths]\nprofile = "profile.toml"\nstate_dir = "{state}"\n')
    return cfg


def run(cfg, home):
    proc = subprocess.run([sys.executable, "-m", "appliance", "run", "--config", str(cfg),
                           "--socket", str(home / "control.sock")],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_a_file_where_the_state_folder_should_be(tmp_path):
    cfg = setup(tmp_path)
    (tmp_path / "state").write_text("")
    line = run(cfg, tmp_path)
    assert f"{tmp_path / 'state'}: a file is in the way" in line and "[paths] state_dir" in line


def test_a_file_where_the_spool_folder_should_be(tmp_path):
    cfg = setup(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "spool").write_text("")
    line = run(cfg, tmp_path)
    assert f"{tmp_path / 'state' / 'spool'}: a file is in the way" in line and "[paths] spool_dir" in line


def test_a_store_lock_the_user_cannot_open(tmp_path):
    cfg = setup(tmp_path)
    lock = tmp_path / "state" / "store.lock"
    lock.parent.mkdir(mode=0o700)
    lock.write_text("")
    if os.geteuid() == 0:  # root opens any mode: only an immutable file refuses it
        chattr = shutil.which("chattr")
        if not chattr or subprocess.run([chattr, "+i", str(lock)], capture_output=True).returncode:
            pytest.skip("running as root on a file system without chattr +i: root can open any lock file")
    else:
        lock.chmod(0o400)
    try:
        line = run(cfg, tmp_path)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(lock)], capture_output=True)
    assert f"{lock}: permission denied for user" in line and "chown -R" in line and str(lock.parent) in line


def test_a_missing_key(tmp_path):
    cfg = setup(tmp_path, api_extra='api_key = "k"\nprivate_key = "nokey.pem"\nkid = "k1"\n'
                                     'token_url = "http://127.0.0.1:9/token"\n')
    line = run(cfg, tmp_path)
    assert f"{tmp_path / 'nokey.pem'}: private key not found" in line and "[api] private_key" in line


def test_a_bad_profile(tmp_path):
    cfg = setup(tmp_path, profile="[profile\nname = ")
    line = run(cfg, tmp_path)
    assert f"{tmp_path / 'profile.toml'}" in line and "TOML" in line


def test_a_missing_config(tmp_path):
    line = run(tmp_path / "nope.toml", tmp_path)
    assert f"{tmp_path / 'nope.toml'}: configuration file not found" in line
