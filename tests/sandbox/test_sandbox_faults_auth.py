"""Sandbox fault injection and the signed-JWT token endpoint / bearer auth mode."""

from __future__ import annotations

import time
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from appliance.sandbox import SandboxOptions, run_in_thread
from appliance.sandbox.model import DOCUMENT_ONLY

H = {"X-Request-ID": "req-f"}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
API_KEY = "test-api-key"


# --- faults ----------------------------------------------------------------------------

def test_rate_limit_every_nth_request_with_upstream_body_and_retry_after():
    with run_in_thread(SandboxOptions(**DOCUMENT_ONLY, letters=2, rate_limit_every=3, retry_after=2)) as sb:
        with httpx.Client(base_url=sb.base_url, headers=H) as c:
            statuses = [c.get("/letters").status_code for _ in range(6)]
            assert statuses == [200, 200, 429, 200, 200, 429]
            assert c.get("/_status").status_code == 200  # /_status is never rate limited
            resp = [c.get("/letters") for _ in range(3)][-1]
        assert resp.status_code == 429 and resp.headers["retry-after"] == "2"
        body = resp.json()
        assert {"interval", "limit", "message", "message_id", "policy",
                "ratelimiting_expiry_time_ms", "scope", "timeunit"} == set(body)
        assert body["policy"] == "quota" and "rate limited" in body["message"]
        assert [r.status for r in sb.log if r.path == "/letters"].count(429) == 3


def test_rate_limit_next_k_and_runtime_changes():
    with run_in_thread(SandboxOptions(**DOCUMENT_ONLY, letters=2, rate_limit_next=2)) as sb:
        with httpx.Client(base_url=sb.base_url, headers=H) as c:
            assert [c.get("/letters").status_code for _ in range(3)] == [429, 429, 200]
            sb.faults.rate_limit_next = 1
            sb.faults.retry_after = 7
            resp = c.get("/letters/whatever")
            assert resp.status_code == 429 and resp.headers["retry-after"] == "7"
            assert c.get("/letters").status_code == 200
            assert sb.counts()["list"] == 4 and sb.counts()["get"] == 1


def test_error_ratio_answers_500_and_502_with_upstream_bodies():
    with run_in_thread(SandboxOptions(**DOCUMENT_ONLY, letters=2, error_ratio=1.0, seed=5)) as sb:
        with httpx.Client(base_url=sb.base_url, headers=H) as c:
            responses = [c.get("/letters") for _ in range(20)]
            assert c.get("/_status").status_code == 200
            sb.faults.error_ratio = 0
            assert c.get("/letters").status_code == 200
    by_status = {r.status_code: r for r in responses}
    assert set(by_status) == {500, 502}
    err = by_status[500].json()["errors"][0]
    assert err["code"] == "NOTIFY_INTERNAL_SERVER_ERROR" and err["status"] == "500"
    assert by_status[502].json() == {"message": "Bad Gateway"}


def test_latency_is_added_to_api_requests_only():
    with run_in_thread(SandboxOptions(**DOCUMENT_ONLY, letters=1, latency_ms=300)) as sb:
        with httpx.Client(base_url=sb.base_url, headers=H) as c:
            c.get("/_status")
            started = time.monotonic()
            assert c.get("/letters").status_code == 200
            # A lower bound only: the delay must at least have been applied.
            assert time.monotonic() - started >= 0.3


def test_dropped_connection_without_response():
    with run_in_thread(SandboxOptions(**DOCUMENT_ONLY, letters=1, drop_ratio=1.0)) as sb:
        with httpx.Client(base_url=sb.base_url, headers=H) as c:
            with pytest.raises(httpx.TransportError):
                c.get("/letters")
            assert c.get("/_status").status_code == 200
            sb.faults.scope.add("status")
            with pytest.raises(httpx.TransportError):
                c.get("/_status")
        assert [(r.path, r.status) for r in sb.log] == [
            ("/letters", 0), ("/_status", 200), ("/_status", 0)]


# --- token endpoint and bearer auth ------------------------------------------------------

@pytest.fixture(scope="module")
def keypair():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem_public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, pem_public


@pytest.fixture
def auth_sb(keypair):
    opts = SandboxOptions(**DOCUMENT_ONLY, letters=3, auth_keys={"kid-1": keypair[1]}, api_key=API_KEY,
                          token_ttl=599)
    with run_in_thread(opts) as sb:
        yield sb


def assertion(sb, key, *, alg="RS512", kid="kid-1", iss=API_KEY, sub=API_KEY, aud=None,
              exp_in=240, jti=None, drop=()):
    claims = {"iss": iss, "sub": sub, "aud": aud or sb.token_url,
              "jti": jti or str(uuid.uuid4()), "exp": int(time.time()) + exp_in}
    for name in drop:
        claims.pop(name)
    headers = {"kid": kid} if kid else {}
    signing_key = key if alg.startswith("RS") else "k" * 64
    return jwt.encode(claims, signing_key, algorithm=alg, headers=headers)


def ask_token(sb, token):
    return httpx.post(sb.token_url, data={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": token})


def test_good_assertion_gets_a_bearer_token_that_opens_the_api(auth_sb, keypair):
    resp = ask_token(auth_sb, assertion(auth_sb, keypair[0]))
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == "599"
    bearer = {"Authorization": f"Bearer {answer['access_token']}", **H}
    with httpx.Client(base_url=auth_sb.base_url) as c:
        assert c.get("/letters", headers=H).status_code == 401
        assert c.get("/letters", headers={"Authorization": "Bearer nonsense", **H}).status_code == 401
        assert c.get("/letters", headers=bearer).status_code == 200
        assert c.get("/_status").status_code == 200  # no bearer needed
        auth_sb.revoke_tokens()
        resp = c.get("/letters", headers=bearer)
        assert resp.status_code == 401
        assert resp.json()["errors"][0]["status"] == "401"
    assert auth_sb.counts()["token"] == 1


@pytest.mark.parametrize("change,status,error", [
    ({"kid": None}, 400, "invalid_request"),
    ({"kid": "other-kid"}, 401, "invalid_client"),
    ({"alg": "RS256"}, 400, "invalid_request"),
    ({"alg": "HS512"}, 400, "invalid_request"),
    ({"sub": "someone-else"}, 400, "invalid_request"),
    ({"iss": "wrong", "sub": "wrong"}, 401, "invalid_client"),
    ({"aud": "https://api.service.nhs.uk/oauth2/token"}, 401, "invalid_request"),
    ({"exp_in": 600}, 400, "invalid_request"),
    ({"exp_in": -30}, 400, "invalid_request"),
    ({"drop": ("jti",)}, 400, "invalid_request"),
    ({"drop": ("exp",)}, 400, "invalid_request"),
])
def test_bad_assertions_are_refused(auth_sb, keypair, change, status, error):
    resp = ask_token(auth_sb, assertion(auth_sb, keypair[0], **change))
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] == error and body["error_description"]
    assert not auth_sb.issuer.tokens


def test_reused_jti_is_refused(auth_sb, keypair):
    jti = str(uuid.uuid4())
    assert ask_token(auth_sb, assertion(auth_sb, keypair[0], jti=jti)).status_code == 200
    resp = ask_token(auth_sb, assertion(auth_sb, keypair[0], jti=jti))
    assert resp.status_code == 400 and "jti" in resp.json()["error_description"]


def test_signature_from_another_key_is_refused(auth_sb):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    resp = ask_token(auth_sb, assertion(auth_sb, stranger))
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"


def test_token_request_form_is_checked(auth_sb, keypair):
    good = assertion(auth_sb, keypair[0])
    resp = httpx.post(auth_sb.token_url, data={"grant_type": "password",
                                               "client_assertion_type": ASSERTION_TYPE,
                                               "client_assertion": good})
    assert resp.status_code == 400
    resp = httpx.post(auth_sb.token_url, data={"grant_type": "client_credentials",
                                               "client_assertion": good})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
    resp = httpx.post(auth_sb.token_url, json={"grant_type": "client_credentials"})
    assert resp.status_code == 400


def test_token_log_is_redacted_in_file(keypair, tmp_path):
    path = tmp_path / "log.jsonl"
    opts = SandboxOptions(**DOCUMENT_ONLY, letters=1, auth_keys={"kid-1": keypair[1]}, api_key=API_KEY,
                          log_path=str(path))
    with run_in_thread(opts) as sb:
        token = ask_token(sb, assertion(sb, keypair[0])).json()["access_token"]
        httpx.get(sb.base_url + "/letters", headers={"Authorization": f"Bearer {token}", **H})
        assert sb.log[1].headers["authorization"] == f"Bearer {token}"
    text = path.read_text()
    assert token not in text and '"authorization_present": true' in text
