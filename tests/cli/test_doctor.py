"""``appliance doctor`` catches what breaks a first start: against the real sandbox (JWT
auth), a real private cupsd, real files, folders and locks."""

from __future__ import annotations

import email.utils
import http.server
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from appliance.cli.main import main
from appliance.sandbox import SandboxOptions, run_in_thread
from appliance.sandbox.model import DOCUMENT_ONLY
from appliance.store.store import Store
from tests.fixtures.keys import KEYS

PROFILE = '[profile]\nname = "doc"\n[[printer]]\nname = "folder"\ndriver = "file"\n'


@pytest.fixture(scope="module")
def keypair():
    return KEYS.pem, KEYS.pub  # the suite's one key pair (tests.fixtures.keys)


@pytest.fixture(scope="module")
def jwt_sandbox(keypair):
    opts = SandboxOptions(**DOCUMENT_ONLY, letters=2, seed=7, auth_keys={"k1": keypair[1]}, api_key="doc-key")
    with run_in_thread(opts) as sb:
        yield sb


def write_config(home, *, base_url, token_url="", key_pem=None, state="state", auth="jwt"):
    home.mkdir(parents=True, exist_ok=True)
    (home / "profile.toml").write_text(PROFILE)
    api = f'[api]\nbase_url = "{base_url}"\nauth = "{auth}"\n'
    if auth == "jwt":
        key = home / "key.pem"
        key.write_bytes(key_pem)
        key.chmod(0o600)
        api += f'api_key = "doc-key"\nprivate_key = "key.pem"\nkid = "k1"\ntoken_url = "{token_url}"\n'
    cfg = home / "appliance.toml"
    cfg.write_text(api + f'[paths]\nprofile = "profile.toml"\nstate_dir = "{state}"\n')
    return cfg


def doctor(capsys, cfg, *extra):
    code = main(["doctor", "--config", str(cfg), *extra])
    out = capsys.readouterr().out
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    return code, out, fails


def summary_problems(out: str) -> int:
    return int(out.splitlines()[-1].split(", ")[-1].split()[0])


def test_a_good_floor_passes_with_a_token(jwt_sandbox, keypair, tmp_path, capsys):
    cfg = write_config(tmp_path, base_url=jwt_sandbox.base_url, token_url=jwt_sandbox.token_url,
                       key_pem=keypair[0])
    before = len([r for r in jwt_sandbox.log if r.kind == "token"])
    code, out, fails = doctor(capsys, cfg)
    assert code == 0 and fails == [], out
    assert f"ok    state folder: {tmp_path / 'state'}: missing" in out
    assert "ok    private key" in out and f"token from {jwt_sandbox.token_url}" in out
    assert len([r for r in jwt_sandbox.log if r.kind == "token"]) == before + 1  # really asked
    assert "ok    clock:" in out  # the sandbox sends Date as Notify does
    assert not (tmp_path / "state").exists()  # the doctor creates nothing


def test_an_exposed_key_fails_and_counts(jwt_sandbox, keypair, tmp_path, capsys):
    cfg = write_config(tmp_path, base_url=jwt_sandbox.base_url, token_url=jwt_sandbox.token_url,
                       key_pem=keypair[0])
    (tmp_path / "key.pem").chmod(0o644)  # root cannot bypass a mode check the code makes
    code, out, fails = doctor(capsys, cfg)
    assert code == 1
    assert any("private key" in f and f"chmod 600 {tmp_path / 'key.pem'}" in f for f in fails)
    assert summary_problems(out) == len(fails) >= 1


def test_a_token_url_answering_404_names_token_url(jwt_sandbox, keypair, tmp_path, capsys):
    cfg = write_config(tmp_path, base_url=jwt_sandbox.base_url, key_pem=keypair[0],
                       token_url=jwt_sandbox.base_url + "/oauth2/wrong")
    code, out, fails = doctor(capsys, cfg)
    assert code == 1
    (api,) = [f for f in fails if f.startswith("FAIL  API")]
    assert "404" in api and "check [api] token_url" in api and "api_key" not in api


def test_unreachable_and_unresolvable_api_fail(tmp_path, capsys):
    from drivers.sim.cups_floor import free_port

    url = f"http://127.0.0.1:{free_port()}"
    code, out, fails = doctor(capsys, write_config(tmp_path / "a", base_url=url, auth="none"))
    assert code == 1 and any(url in f and "[api] base_url" in f for f in fails)
    code, out, fails = doctor(capsys, write_config(tmp_path / "b", base_url="https://no-such-host.invalid/x",
                                                   auth="none"))
    assert code == 1 and any("'no-such-host.invalid' does not resolve" in f for f in fails)


def test_a_file_where_the_state_folder_should_be(jwt_sandbox, tmp_path, capsys):
    cfg = write_config(tmp_path, base_url=jwt_sandbox.base_url, auth="none")
    (tmp_path / "state").write_text("not a folder")
    code, out, fails = doctor(capsys, cfg)
    assert code == 1 and any(f"{tmp_path / 'state'}: is a file, not a folder" in f and "[paths] state_dir" in f
                             for f in fails)
    cfg = write_config(tmp_path / "b", base_url=jwt_sandbox.base_url, auth="none", state="blocker/state")
    (tmp_path / "b" / "blocker").write_text("")
    code, out, fails = doctor(capsys, cfg)
    assert code == 1 and any(f"{tmp_path / 'b' / 'blocker'} is a file" in f for f in fails)


def test_a_folder_the_service_user_cannot_write(jwt_sandbox, tmp_path, capsys):
    """Judged for another user from the mode bits: works as root too."""
    cfg = write_config(tmp_path, base_url=jwt_sandbox.base_url, auth="none")
    (tmp_path / "state").mkdir(mode=0o700)
    code, out, fails = doctor(capsys, cfg, "--user", "nobody")
    assert "judged for nobody (--user)" in out
    assert code == 1 and any(f.startswith("FAIL  state folder") and "nobody" in f for f in fails)
    code = main(["doctor", "--config", str(cfg), "--user", "no-such-user-here"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_store_lock_left_by_root_fails_for_the_service_user(jwt_sandbox, capsys):
    home = Path(tempfile.mkdtemp(prefix="doctor-lock-"))  # /tmp: a path nobody can walk
    try:
        home.chmod(0o755)
        cfg = write_config(home, base_url=jwt_sandbox.base_url, auth="none")
        state = home / "state"
        state.mkdir(mode=0o700)
        nobody = pwd.getpwnam("nobody")
        os.chown(state, nobody.pw_uid, nobody.pw_gid)
        (state / "store.lock").write_text("")  # root's, 0600 under the umask below
        (state / "store.lock").chmod(0o600)
        code, out, fails = doctor(capsys, cfg, "--user", "nobody")
    finally:
        shutil.rmtree(home)
    assert "ok    state folder" in out
    assert code == 1 and any("store lock" in f and "not writable by nobody" in f for f in fails), out


def test_a_held_store_lock_names_its_holder(jwt_sandbox, tmp_path, capsys):
    cfg = write_config(tmp_path, base_url=jwt_sandbox.base_url, auth="none")
    with Store(tmp_path / "state"):
        code, out, fails = doctor(capsys, cfg)
    assert code == 1
    (lock,) = [f for f in fails if "store lock" in f]
    assert f"PID {os.getpid()}" in lock and "stop it" in lock


class _SkewedStatus(http.server.BaseHTTPRequestHandler):
    skew = 0.0

    def date_time_string(self, timestamp=None):
        return email.utils.formatdate(time.time() + self.skew, usegmt=True)

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *a):
        pass


@pytest.mark.parametrize("skew, label", [(-60, "FAIL"), (600, "FAIL"), (0, "ok  ")])
def test_clock_skew_against_the_api_date(tmp_path, capsys, skew, label):
    handler = type("H", (_SkewedStatus,), {"skew": skew})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = write_config(tmp_path, base_url=f"http://127.0.0.1:{server.server_port}", auth="none")
        code, out, fails = doctor(capsys, cfg)
    finally:
        server.shutdown()
        server.server_close()
    (line,) = [x for x in out.splitlines() if "  clock:" in x]
    assert line.startswith(label), line
    assert code == (1 if label == "FAIL" else 0)
    if label == "FAIL":
        assert "timedatectl set-ntp true" in line and ("ahead" if skew < 0 else "behind") in line  # skew: the server's


@pytest.mark.cups
def test_job_names_judged_from_the_configured_cupsd(cups_fleet, tmp_path, capsys):
    """The private cupsd says JobPrivateValues none; a job it no longer holds active (here
    one cancelled while held) keeps no name, which the old doctor took for a hiding policy."""
    pdf = tmp_path / "one.pdf"
    pdf.write_bytes(b"%PDF-1.4\n")
    cups_fleet.run("lp", "-d", "press-mono", "-H", "hold", "-t", "doctor-held", str(pdf))
    cups_fleet.run("cancel", "-a", "press-mono")
    from drivers.cups.session import call, connect
    conn = connect(cups_fleet.server)

    def nameless():  # CUPS drops a finished job's name about a second after it ends
        jobs = call(conn, lambda c: c.getJobs(which_jobs="all", requested_attributes=["job-id", "job-name"]))
        return any("job-name" not in a for a in jobs.values())

    deadline = time.monotonic() + 30
    while not nameless() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert nameless()
    profile = tmp_path / "p.toml"
    profile.write_text(f'[profile]\nname = "c"\n[[printer]]\nname = "press-mono"\ndriver = "cups"\n'
                       f'queue = "press-mono"\nserver = "{cups_fleet.server}"\nduplex = true\n')
    code = main(["doctor", "--profile", str(profile)])
    out = capsys.readouterr().out
    assert f"ok    CUPS {cups_fleet.server}: job names visible: its cupsd.conf has JobPrivateValues none" in out
    assert "hides job names" not in out and code == 0, out


def test_doctor_subprocess_exit_status(tmp_path):
    cfg = write_config(tmp_path, base_url="https://no-such-host.invalid", auth="none")
    proc = subprocess.run([sys.executable, "-m", "appliance", "doctor", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.returncode == 1 and "FAIL  API" in proc.stdout and "Traceback" not in proc.stderr
