"""`appliance api ...` against a sandbox running on its own thread."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from appliance.cli.main import main
from appliance.sandbox import SandboxOptions, run_in_thread
from appliance.sandbox.model import DOCUMENT_ONLY


@pytest.fixture
def sb():
    with run_in_thread(SandboxOptions(**DOCUMENT_ONLY, letters=6, seed=4, bad_ratio=0)) as sandbox:
        yield sandbox


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def api_records(sandbox, kind):
    return [r for r in sandbox.log if r.kind == kind]


def test_status(sb, capsys):
    code, out, _ = run(capsys, "api", "--base-url", sb.base_url, "status")
    assert code == 0 and out.startswith(f"{sb.base_url}: up")


def test_letters_table(sb, capsys):
    code, out, _ = run(capsys, "api", "--base-url", sb.base_url, "letters", "--limit", "4")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["ID", "SPECIFICATION", "GROUP", "STATUS"]
    shown = [line.split() for line in lines[1:-1]]
    expected = list(sb.pending.values())[:4]
    assert shown == [[x.id, x.specification_id, x.group_id, "PENDING"] for x in expected]
    assert lines[-1] == "4 letter(s)"
    assert api_records(sb, "list")[0].query == {"limit": "4"}


def test_letter_and_unknown_letter(sb, capsys):
    letter = next(iter(sb.letters.values()))
    code, out, _ = run(capsys, "api", "--base-url", sb.base_url, "letter", letter.id)
    assert code == 0 and f"sha256:        {letter.sha256}" in out
    code, out, err = run(capsys, "api", "--base-url", sb.base_url, "letter", "nope")
    assert code != 0 and out == ""
    assert err.count("\n") == 1 and "404" in err and "Traceback" not in err


def test_data_writes_the_pdf(sb, capsys, tmp_path):
    letter = next(iter(sb.letters.values()))
    out_file = tmp_path / "letter.pdf"
    code, out, _ = run(capsys, "api", "--base-url", sb.base_url, "data", letter.id,
                       "--out", str(out_file))
    assert code == 0 and "matches the letter" in out
    assert hashlib.sha256(out_file.read_bytes()).hexdigest() == letter.sha256


def test_patch_and_returned_reason_filled_in(sb, capsys):
    a, b = list(sb.letters)[:2]
    code, out, _ = run(capsys, "api", "--base-url", sb.base_url, "patch", a, "accepted")
    assert code == 0 and sb.letters[a].status == "ACCEPTED"
    for status in ("ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED"):
        assert run(capsys, "api", "--base-url", sb.base_url, "patch", b, status)[0] == 0
    code, out, _ = run(capsys, "api", "--base-url", sb.base_url, "patch", b, "RETURNED",
                       "--reason", "r01")
    assert code == 0
    sent = json.loads(api_records(sb, "patch")[-1].body)["data"]["attributes"]
    assert sent == {"status": "RETURNED", "reasonCode": "R01", "reasonText": "Addressee gone away"}
    assert (sb.letters[b].reason_code, sb.letters[b].reason_text) == ("R01", "Addressee gone away")


@pytest.mark.parametrize("extra, complaint", [
    (["RETURNED", "--reason", "R99"], "unknown return reason"),
    (["RETURNED"], "RETURNED needs --reason"),
    (["RETURNED", "--reason", "R02", "--reason-text", "gone"], "must be exactly"),
    (["PENDING"], "not one a supplier can set"),
    (["FAILED"], "FAILED needs --reason"),
])
def test_bad_patch_refused_locally(sb, capsys, extra, complaint):
    letter = next(iter(sb.letters))
    code, out, err = run(capsys, "api", "--base-url", sb.base_url, "patch", letter, *extra)
    assert code != 0 and complaint in err and err.count("\n") == 1
    assert api_records(sb, "patch") == []  # nothing was sent


def test_server_refusal_is_one_line(sb, capsys):
    sb.faults.error_ratio = 1.0
    code, _, err = run(capsys, "api", "--base-url", sb.base_url, "--retries", "1", "letters")
    assert code != 0 and err.count("\n") == 1 and "HTTP 50" in err
    assert len(api_records(sb, "list")) == 2


def test_unreachable_url_one_line_no_traceback():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "api", "--base-url", url, "--retries", "0", "status"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and url in proc.stderr and "Traceback" not in proc.stderr


def test_bad_base_url_and_missing_config(capsys, tmp_path):
    code, _, err = run(capsys, "api", "--base-url", "localhost:8080", "status")
    assert code != 0 and "http(s) URL" in err
    code, _, err = run(capsys, "api", "--config", str(tmp_path / "none.toml"), "status")
    assert code != 0 and "not found" in err


def test_config_with_jwt_auth(capsys, tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(pem)
    key_file.chmod(0o600)
    opts = SandboxOptions(**DOCUMENT_ONLY, letters=3, seed=5, auth_keys={"k1": pub}, api_key="cli-key")
    with run_in_thread(opts) as sandbox:
        cfg = tmp_path / "appliance.toml"
        cfg.write_text(
            f'[api]\nbase_url = "{sandbox.base_url}"\nauth = "jwt"\napi_key = "cli-key"\n'
            f'private_key = "key.pem"\nkid = "k1"\ntoken_url = "{sandbox.token_url}"\n'
            '[paths]\nprofile = "profile.toml"\n'
        )
        code, out, _ = run(capsys, "api", "--config", str(cfg), "letters")
        assert code == 0 and out.splitlines()[-1] == "3 letter(s)"
        assert [r.kind for r in sandbox.log] == ["token", "list"]
        assert sandbox.log[1].headers["authorization"].startswith("Bearer ")
        key_file.chmod(0o644)
        code, _, err = run(capsys, "api", "--config", str(cfg), "letters")
        assert code != 0 and f"chmod 600 {key_file}" in err and err.count("\n") == 1


def test_a_wrong_token_url_is_named(capsys, tmp_path):
    """A token endpoint answering 404 means token_url is wrong, not the key or its id."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "key.pem").write_bytes(pem)
    (tmp_path / "key.pem").chmod(0o600)
    opts = SandboxOptions(**DOCUMENT_ONLY, letters=1, seed=5, auth_keys={"k1": pub}, api_key="cli-key")
    with run_in_thread(opts) as sandbox:
        cfg = tmp_path / "appliance.toml"
        cfg.write_text(
            f'[api]\nbase_url = "{sandbox.base_url}"\nauth = "jwt"\napi_key = "cli-key"\n'
            f'private_key = "key.pem"\nkid = "k1"\ntoken_url = "{sandbox.base_url}/oauth/tokn"\n'
            '[paths]\nprofile = "profile.toml"\n'
        )
        code, _, err = run(capsys, "api", "--config", str(cfg), "status")
    assert code != 0 and err.count("\n") == 1
    assert "HTTP 404" in err and "check [api] token_url" in err and "api_key" not in err
