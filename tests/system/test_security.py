"""Security properties, each shown against real servers and a real daemon.

- a private key other users can read stops ``appliance run`` with one line;
- secrets (bearer tokens, the signed assertion, the private key, the API key) never reach
  any log, at DEBUG too, httpx/httpcore included;
- TLS is verified unless ``verify_tls = false`` (refused against production: also
  tests/test_config.py); an untrusted certificate is one clear line, not retried;
- the bearer never goes to another host: not to the pre-signed host (also tests/test_auth.py),
  and not by a redirect, which no client follows;
- spooled PDFs are 0600 in a 0700 directory and gone once the letter is final.
Size caps on every input are in tests/test_bad_inputs.py (list/single/token/error bodies,
PDF cap, field lengths, id charset).
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import signal
import ssl
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from appliance.api.client import ApiError, ApiUnavailable, SupplierClient
from appliance.config.settings import ApiConfig, load_config, sandbox_api
from appliance.pipeline.operator import Operator
from appliance.runtime.demo import demo_profile_path
from appliance.sandbox import Sandbox, SandboxOptions, run_in_thread
from tests.fixtures import QUICK
from tests.fixtures.floor import Floor, new_sandbox, statuses
from tests.fixtures.keys import API_KEY, KEYS, KID, jwt_sandbox, write_key


def jwt_config(tmp_path: Path, base_url: str, token_url: str, key_mode: int = 0o600) -> Path:
    key = write_key(tmp_path, mode=key_mode)
    cfg = tmp_path / "appliance.toml"
    cfg.write_text(f"""
[api]
base_url = "{base_url}"
auth = "jwt"
api_key = "{API_KEY}"
private_key = "{key}"
kid = "{KID}"
token_url = "{token_url}"
presigned_hosts = ["{base_url}"]
[poll]
interval = 0.2
[paths]
state_dir = "{tmp_path / 'state'}"
profile = "{demo_profile_path()}"
""")
    return cfg


def run_cmd(cfg: Path, tmp_path: Path, level: str = "INFO") -> list[str]:
    return [sys.executable, "-m", "appliance", "run", "--config", str(cfg), "--log-level", level,
            "--socket", str(tmp_path / "control.sock")]


# --- the private key -------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_run_refuses_a_key_others_can_read(tmp_path, mode):
    # nothing listens on port 9: the refusal must come before any network traffic
    cfg = jwt_config(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9/oauth2/token", mode)
    proc = subprocess.run(run_cmd(cfg, tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "readable by other users" in lines[0] and "chmod 600" in lines[0]
    assert "Traceback" not in proc.stderr and not (tmp_path / "control.sock").exists()


# --- secrets never logged ---------------------------------------------------------------------

def secrets_seen(sb: Sandbox) -> dict[str, list[str]]:
    """Every secret the client used, from what the sandbox received."""
    bearers = {r.headers["authorization"][len("Bearer "):] for r in sb.log
               if r.headers.get("authorization", "").startswith("Bearer ")}
    assertions = {parse_qs(r.body.decode())["client_assertion"][0] for r in sb.log
                  if r.kind == "token"}
    pem_lines = [line for line in KEYS.pem.decode().splitlines() if "PRIVATE KEY" not in line]
    assert bearers and assertions
    return {"bearer token": sorted(bearers), "client assertion": sorted(assertions),
            "private key": pem_lines[1:-1], "api key": [API_KEY]}


def assert_no_secret(output: str, secrets: dict[str, list[str]]) -> None:
    for what, values in secrets.items():
        for value in values:
            assert value not in output, f"{what} found in the output"


async def test_client_at_debug_logs_no_secret(tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)  # root: httpx, aiohttp (the transport), appliance.* all propagate
    for name in ("httpx", "aiohttp", "appliance"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    errors = []
    async with jwt_sandbox() as (sb, keys):
        api = ApiConfig(base_url=sb.base_url, auth="jwt", api_key=API_KEY, kid=keys.kid,
                        private_key=write_key(tmp_path), token_url=sb.token_url, max_retries=1,
                        presigned_hosts=(sb.base_url,))
        async with SupplierClient(api, backoff_base=0.01) as c:
            letters = await c.list_letters()
            await c.download(letters[0].id, tmp_path / "a.pdf")
            await c.patch_letter(letters[0].id, "ACCEPTED")
            sb.revoke_tokens()  # 401, fresh token, retry
            await c.get_letter(letters[1].id)
            try:
                await c.patch_letter(letters[1].id, "RETURNED")  # refused: no reason
            except ApiError as e:
                errors.append(str(e))
        other = tmp_path / "other"
        other.mkdir()
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        async with SupplierClient(replace(api, private_key=write_key(other, stranger))) as c:
            try:
                await c.list_letters()
            except Exception as e:  # the token endpoint refuses the wrong key
                errors.append(str(e))
        secrets = secrets_seen(sb)
    assert len(secrets["bearer token"]) == 2 and len(errors) == 2
    out = capsys.readouterr()
    text = caplog.text + out.out + out.err + "\n".join(errors)
    assert "HTTP Request" in text  # DEBUG output really was captured
    assert_no_secret(text, secrets)
    assert_no_secret(text, {"other key": [line for line in stranger.decode().splitlines()[1:-1]]})


def test_daemon_at_debug_logs_no_secret(tmp_path):
    with run_in_thread(SandboxOptions(**QUICK, letters=6, bad_ratio=0.2, seed=3, auth_keys={KID: KEYS.pub},
                                      api_key=API_KEY)) as sb:
        cfg = jwt_config(tmp_path, sb.base_url, sb.token_url)
        proc = subprocess.Popen(run_cmd(cfg, tmp_path, "DEBUG"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.monotonic() + 40
            final = {"DISPATCHED", "REJECTED"}
            while not all(l.status in final for l in sb.letters.values()):
                assert time.monotonic() < deadline and proc.poll() is None, "daemon did not finish"
                time.sleep(0.1)
            time.sleep(0.3)
            sb.revoke_tokens()  # one more round trip with a fresh token before stopping
            time.sleep(0.6)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        secrets = secrets_seen(sb)
    assert proc.returncode == 0, err[-2000:]
    assert "DEBUG" in err and "HTTP Request" in err  # the daemon really logged at DEBUG
    assert_no_secret(out + err, secrets)


# --- TLS ----------------------------------------------------------------------------------------

def self_signed(tmp_path: Path) -> ssl.SSLContext:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "tls-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "tls-key.pem")
    return ctx


@pytest.fixture
async def tls_sb(tmp_path):
    sb = Sandbox(SandboxOptions(**QUICK, letters=2, bad_ratio=0, seed=2))
    await sb.start(host="127.0.0.1", port=0, ssl_context=self_signed(tmp_path))
    yield sb
    await sb.stop()


def test_tls_verification_is_on_unless_switched_off(tmp_path):
    assert ApiConfig(base_url="https://x", auth="none").verify_tls is True
    cfg = tmp_path / "appliance.toml"
    cfg.write_text('[api]\nbase_url = "https://int.api.service.nhs.uk/nhs-notify-supplier"\n'
                   'auth = "none"\n[paths]\nprofile = "floor.toml"\n')
    assert load_config(cfg).api.verify_tls is True


async def test_untrusted_certificate_is_one_line_and_not_retried(tls_sb):
    assert tls_sb.base_url.startswith("https://")
    api = replace(sandbox_api(tls_sb.base_url), max_retries=3)
    async with SupplierClient(api, backoff_base=0.01) as c:
        with pytest.raises(ApiUnavailable) as e:
            await c.list_letters()
    msg = str(e.value)
    assert "TLS certificate of 127.0.0.1 is not trusted" in msg and "\n" not in msg
    assert c.stats["list"] == 1  # a certificate problem is not waited out with retries
    assert tls_sb.log == []  # no request ever reached the server


async def test_development_flag_switches_verification_off(tls_sb, tmp_path):
    api = replace(sandbox_api(tls_sb.base_url), verify_tls=False)
    async with SupplierClient(api) as c:
        letters = await c.list_letters()
        got = await c.download(letters[0].id, tmp_path / "a.pdf")
    assert got.sha256 == letters[0].sha256


@pytest.mark.parametrize("base_url", ["https://api.service.nhs.uk/nhs-notify-supplier",
                                      "https://api.service.nhs.uk/nhs-notify-supplier/"])
def test_development_flag_refused_against_production(tmp_path, base_url):
    from appliance.core.errors import ConfigError

    cfg = tmp_path / "appliance.toml"
    cfg.write_text(f'[api]\nbase_url = "{base_url}"\nauth = "none"\nverify_tls = false\n'
                   '[paths]\nprofile = "floor.toml"\n')
    with pytest.raises(ConfigError, match="may not be false against production"):
        load_config(cfg)


@pytest.mark.parametrize("base_url, token_url", [
    ("HTTPS://API.SERVICE.NHS.UK/nhs-notify-supplier", ""),
    ("https://int.api.service.nhs.uk/nhs-notify-supplier", "https://api.service.nhs.uk/oauth2/token"),
])
def test_development_flag_refused_for_any_production_host(tmp_path, base_url, token_url):
    from appliance.core.errors import ConfigError

    auth = (f'auth = "jwt"\napi_key = "k"\nkid = "k"\nprivate_key = "k.pem"\n'
            f'token_url = "{token_url}"\n') if token_url else 'auth = "none"\n'
    cfg = tmp_path / "appliance.toml"
    cfg.write_text(f'[api]\nbase_url = "{base_url}"\n{auth}verify_tls = false\n'
                   '[paths]\nprofile = "floor.toml"\n')
    with pytest.raises(ConfigError):
        load_config(cfg)


# --- the bearer stays with the API --------------------------------------------------------------

async def test_bearer_never_follows_a_redirect_to_another_host(tmp_path):
    """The API answering 307 (list) or the pre-signed host answering 307: nothing follows,
    so the other host never sees a request, let alone the bearer."""
    elsewhere = await new_sandbox(good=1)
    try:
        async with jwt_sandbox() as (sb, keys):
            api = ApiConfig(base_url=sb.base_url, auth="jwt", api_key=API_KEY, kid=keys.kid,
                            private_key=write_key(tmp_path), token_url=sb.token_url, max_retries=1,
                            presigned_hosts=(sb.base_url, elsewhere.base_url))
            async with SupplierClient(api, backoff_base=0.01) as c:
                sb.faults.hostile, sb.faults.redirect_to = "redirect", elsewhere.base_url
                with pytest.raises(ApiError, match="HTTP 307"):
                    await c.list_letters()
                assert elsewhere.log == []
                sb.faults.hostile = None
                # the 303 sends the PDF fetch to the other host; that host redirects again
                lid = next(iter(sb.pending))
                sb.letters[lid].location = elsewhere.presigned_url(next(iter(elsewhere.letters)))
                elsewhere.faults.hostile, elsewhere.faults.hostile_scope = "redirect", {"presigned"}
                elsewhere.faults.redirect_to = sb.base_url
                with pytest.raises(ApiError, match="HTTP 307"):
                    await c.download(lid, tmp_path / "x.pdf")
            assert [r.kind for r in elsewhere.log] == ["presigned"]
            assert "authorization" not in elsewhere.log[0].headers
            assert not [r for r in sb.log if r.kind in ("presigned", "other")]
            assert any("authorization" in r.headers for r in sb.log if r.kind == "data")
    finally:
        await elsewhere.stop()
    assert not list(tmp_path.glob("*.pdf")) and not list(tmp_path.glob(".*.part"))


# --- the spool ------------------------------------------------------------------------------------

def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_spooled_pdfs_are_private_and_deleted_when_final(tmp_path):
    """Printers paused: letters wait in the spool (0600 files, 0700 directory).  One is
    FAILED and one CANCELLED by the operator, one REJECTED; the rest print once the
    printers resume.  At the end the spool is empty."""
    sb = await new_sandbox(good=5)
    bad = sb.add_letter(sha256="0" * 64)
    try:
        async with Floor(sb, tmp_path) as floor:
            op = Operator(floor.pipe)
            printers = [p.name for p in floor.pipe.profile.printers]
            for name in printers:
                await op.pause(name)
            good = [lid for lid in sb.letters if lid != bad]
            await floor.wait(lambda: all(sb.letters[lid].status == "ACCEPTED" for lid in good)
                             and sb.letters[bad].status == "REJECTED")
            spooled = sorted(floor.spool.iterdir())
            assert [p.name for p in spooled] == sorted(f"{lid}.pdf" for lid in good)
            assert mode_of(floor.spool) == 0o700
            assert all(mode_of(p) == 0o600 for p in spooled)
            await op.fail(good[0], "damaged in the printer")
            await op.cancel(good[1], "recalled by the client")
            assert sorted(p.name for p in floor.spool.iterdir()) == sorted(f"{l}.pdf" for l in good[2:])
            for name in printers:
                await op.resume(name)
            await floor.wait_final(sb.letters)
            assert list(floor.spool.iterdir()) == []
    finally:
        await sb.stop()
    assert statuses(sb, good[0]) == ["ACCEPTED", "FAILED"]
    assert statuses(sb, good[1]) == ["ACCEPTED", "CANCELLED"]
    assert all(statuses(sb, lid)[-1] == "DISPATCHED" for lid in good[2:])
    assert statuses(sb, bad) == ["REJECTED"]


async def test_existing_open_spool_directory_is_made_private(tmp_path):
    sb = await new_sandbox(good=1)
    spool = tmp_path / "state" / "spool"
    spool.mkdir(parents=True)
    os.chmod(spool, 0o755)
    try:
        async with Floor(sb, tmp_path):
            assert mode_of(spool) == 0o700
    finally:
        await sb.stop()


@pytest.mark.parametrize("line, hours", [("", 0.0), ("spool_retention_hours = 48", 48.0),
                                         ("spool_retention_hours = 0.5", 0.5)])
def test_spool_retention_defaults_to_delete_at_once(tmp_path, line, hours):
    cfg = tmp_path / "appliance.toml"
    cfg.write_text(f'[api]\nbase_url = "http://127.0.0.1:9"\nauth = "none"\n'
                   f'[paths]\nprofile = "floor.toml"\n{line}\n')
    assert load_config(cfg).spool_retention_hours == hours


@pytest.mark.parametrize("value, words", [("-1", "must be 0 or more"),
                                          ('"forever"', "expected a number")])
def test_spool_retention_mistakes_are_one_line(tmp_path, value, words):
    from appliance.core.errors import ConfigError

    cfg = tmp_path / "appliance.toml"
    cfg.write_text(f'[api]\nbase_url = "http://127.0.0.1:9"\nauth = "none"\n'
                   f'[paths]\nprofile = "floor.toml"\nspool_retention_hours = {value}\n')
    with pytest.raises(ConfigError, match=rf"\[paths\] spool_retention_hours: {words}") as e:
        load_config(cfg)
    assert "\n" not in str(e.value)
