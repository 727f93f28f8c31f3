"""Signed-JWT auth: key loading, assertion claims, token caching/refresh, 401 retry."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from appliance.api.auth import (
    TokenError,
    TokenProvider,
    load_private_key,
    make_client_assertion,
    parse_expires_in,
)
from appliance.api.client import ApiError, SupplierClient
from appliance.config.settings import ApiConfig
from appliance.core.errors import UserError
from appliance.sandbox import Sandbox, SandboxOptions
from appliance.sandbox.model import DOCUMENT_ONLY

TOKEN_URL = "https://int.api.service.nhs.uk/oauth2/token"


@pytest.fixture(scope="module")
def rsa_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, pub


def write_key(tmp_path: Path, data: bytes, mode: int = 0o600) -> Path:
    p = tmp_path / "key.pem"
    p.write_bytes(data)
    os.chmod(p, mode)
    return p


# --- load_private_key ------------------------------------------------------------------

def test_load_private_key_reads_a_private_pem(tmp_path, rsa_key):
    assert load_private_key(write_key(tmp_path, rsa_key[0])) == rsa_key[0]


def test_load_private_key_missing_file(tmp_path):
    with pytest.raises(UserError, match="private key not found") as e:
        load_private_key(tmp_path / "nope.pem")
    assert "\n" not in str(e.value)


def test_load_private_key_refuses_group_readable_with_chmod_fix(tmp_path, rsa_key):
    p = write_key(tmp_path, rsa_key[0], 0o640)
    with pytest.raises(UserError, match=f"chmod 600 {p}"):
        load_private_key(p)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_load_private_key_unreadable(tmp_path, rsa_key):
    p = write_key(tmp_path, rsa_key[0], 0o000)
    with pytest.raises(UserError, match="cannot read private key"):
        load_private_key(p)


def test_load_private_key_refuses_public_key_and_garbage(tmp_path, rsa_key):
    with pytest.raises(UserError, match="not an unencrypted PEM RSA private key"):
        load_private_key(write_key(tmp_path, rsa_key[1]))
    with pytest.raises(UserError, match="not an unencrypted PEM RSA private key"):
        load_private_key(write_key(tmp_path, b"hello"))


def test_load_private_key_refuses_non_rsa(tmp_path):
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(UserError, match="not RSA"):
        load_private_key(write_key(tmp_path, pem))


# --- make_client_assertion -------------------------------------------------------------

def test_assertion_claims_and_header(rsa_key):
    token = make_client_assertion("my-api-key", "test-1", rsa_key[0], TOKEN_URL, now=1_700_000_000)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS512" and header["kid"] == "test-1"
    claims = jwt.decode(token, rsa_key[1], algorithms=["RS512"], audience=TOKEN_URL,
                        options={"verify_exp": False, "verify_iat": False})
    assert claims["iss"] == claims["sub"] == "my-api-key"
    assert claims["aud"] == TOKEN_URL
    assert claims["iat"] == 1_700_000_000
    assert 0 < claims["exp"] - claims["iat"] <= 300


def test_assertion_jti_unique_over_many(rsa_key):
    key = serialization.load_pem_private_key(rsa_key[0], password=None)  # parse once: fast
    jtis = {
        jwt.decode(make_client_assertion("k", "kid", key, TOKEN_URL), key.public_key(),
                   algorithms=["RS512"], audience=TOKEN_URL)["jti"]
        for _ in range(500)
    }
    assert len(jtis) == 500


def test_assertion_lifetime_capped_at_five_minutes(rsa_key):
    with pytest.raises(ValueError):
        make_client_assertion("k", "kid", rsa_key[0], TOKEN_URL, lifetime=301)


def test_assertion_does_not_verify_with_another_key(rsa_key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    token = make_client_assertion("k", "kid", rsa_key[0], TOKEN_URL)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other, algorithms=["RS512"], audience=TOKEN_URL)


@pytest.mark.parametrize("raw, want", [("599", 599.0), (" 60 ", 60.0), (600, 600.0), (1.5, 1.5)])
def test_expires_in_parsed(raw, want):
    assert parse_expires_in(raw) == want


@pytest.mark.parametrize("raw", ["soon", "", "-5", "0", None, True, [599]])
def test_expires_in_refused(raw):
    with pytest.raises(ValueError):
        parse_expires_in(raw)


# --- against the sandbox in auth mode ----------------------------------------------------

API_KEY = "test-api-key"
KID = "test-1"


@pytest.fixture
async def auth_sb(rsa_key):
    sb = Sandbox(SandboxOptions(**DOCUMENT_ONLY, letters=10, seed=3, bad_ratio=0, auth_keys={KID: rsa_key[1]},
                                api_key=API_KEY))
    await sb.start(host="127.0.0.1", port=0)
    yield sb
    await sb.stop()


@pytest.fixture
def jwt_api(auth_sb, rsa_key, tmp_path) -> ApiConfig:
    return ApiConfig(base_url=auth_sb.base_url, auth="jwt", api_key=API_KEY,
                     private_key=write_key(tmp_path, rsa_key[0]), kid=KID,
                     token_url=auth_sb.token_url, max_retries=2, presigned_hosts=(auth_sb.base_url,))


def kinds(sb):
    return [(r.kind, r.status) for r in sb.log]


async def test_jwt_calls_carry_bearer_but_presigned_and_token_do_not(auth_sb, jwt_api, tmp_path):
    async with SupplierClient(jwt_api) as c:
        letters = await c.list_letters()
        got = await c.download(letters[0].id, tmp_path / "a.pdf")
        await c.patch_letter(letters[0].id, "ACCEPTED")
        await c.status()
    assert got.sha256 == auth_sb.letters[letters[0].id].sha256
    assert kinds(auth_sb)[:1] == [("token", 200)]
    by_kind = {r.kind: r for r in auth_sb.log}
    bearer = by_kind["list"].headers["authorization"]
    assert bearer.startswith("Bearer ") and len(bearer) > 20
    assert by_kind["data"].headers["authorization"] == bearer == by_kind["patch"].headers["authorization"]
    assert "authorization" not in by_kind["presigned"].headers
    assert "authorization" not in by_kind["token"].headers
    assert all(bearer[7:].encode() not in r.body for r in auth_sb.log)
    assert c.stats["token"] == 1  # cached across every call


async def test_token_request_is_a_proper_assertion_exchange(auth_sb, jwt_api, rsa_key):
    async with SupplierClient(jwt_api) as c:
        await c.list_letters()
    token_req = next(r for r in auth_sb.log if r.kind == "token")
    assert token_req.headers["content-type"].startswith("application/x-www-form-urlencoded")
    form = {k: v[0] for k, v in parse_qs(token_req.body.decode()).items()}
    assert form["grant_type"] == "client_credentials"
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    claims = jwt.decode(form["client_assertion"], rsa_key[1], algorithms=["RS512"],
                        audience=auth_sb.token_url)
    assert claims["iss"] == claims["sub"] == API_KEY and claims["exp"] - claims["iat"] <= 300


async def test_revoked_token_one_transparent_retry(auth_sb, jwt_api):
    async with SupplierClient(jwt_api) as c:
        await c.list_letters()
        auth_sb.revoke_tokens()
        mark = len(auth_sb.log)
        assert len(await c.list_letters()) == 10
    assert kinds(auth_sb)[mark:] == [("list", 401), ("token", 200), ("list", 200)]
    first, last = auth_sb.log[mark], auth_sb.log[-1]
    assert first.headers["authorization"] != last.headers["authorization"]


async def test_wrong_key_is_one_line_token_error_not_retried(auth_sb, jwt_api):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    keydir = jwt_api.private_key.parent / "other"
    keydir.mkdir()
    bad = replace(jwt_api, private_key=write_key(keydir, other))
    async with SupplierClient(bad) as c:
        with pytest.raises(TokenError) as e:
            await c.list_letters()
    msg = str(e.value)
    assert "401" in msg and "check [api]" in msg and "\n" not in msg
    assert kinds(auth_sb) == [("token", 401)]


async def test_token_cached_and_refreshed_before_expiry(auth_sb, jwt_api):
    now = [1000.0]
    async with httpx.AsyncClient() as http:
        tp = TokenProvider(jwt_api, http, clock=lambda: now[0])
        first = await tp.token()
        now[0] += 599 - 61  # 61 s left: still good
        assert await tp.token() == first
        now[0] += 2  # 59 s left: inside the 60 s margin
        second = await tp.token()
    assert second != first
    assert tp.requests == 2 == sum(1 for r in auth_sb.log if r.kind == "token")


async def test_short_lifetime_refreshes_at_ten_percent(rsa_key, tmp_path):
    sb = Sandbox(SandboxOptions(**DOCUMENT_ONLY, letters=1, auth_keys={KID: rsa_key[1]}, api_key=API_KEY,
                                token_ttl=100))
    await sb.start(host="127.0.0.1", port=0)
    try:
        api = ApiConfig(base_url=sb.base_url, auth="jwt", api_key=API_KEY,
                        private_key=write_key(tmp_path, rsa_key[0]), kid=KID, token_url=sb.token_url)
        now = [0.0]
        async with httpx.AsyncClient() as http:
            tp = TokenProvider(api, http, clock=lambda: now[0])
            first = await tp.token()  # the sandbox sends expires_in "100" (a string)
            now[0] = 89
            assert await tp.token() == first
            now[0] = 91
            assert await tp.token() != first
    finally:
        await sb.stop()


async def test_concurrent_callers_share_one_refresh(auth_sb, jwt_api):
    async with httpx.AsyncClient() as http:
        tp = TokenProvider(jwt_api, http)
        tokens = await asyncio.gather(*(tp.token() for _ in range(20)))
        assert len(set(tokens)) == 1 and tp.requests == 1
        tp.invalidate()
        assert await tp.token() != tokens[0] and tp.requests == 2


async def test_persistent_401_is_surfaced_after_one_retry(tmp_path, rsa_key):
    # a server that refuses every fresh token cannot be made with the sandbox: mock it
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/oauth2/token":
            return httpx.Response(200, json={"access_token": f"t{len(seen)}", "expires_in": "599"})
        return httpx.Response(401, json={"errors": [{"code": "NOTIFY_UNAUTHORIZED",
                                                     "detail": "token not accepted"}]})

    api = ApiConfig(base_url="http://127.0.0.1:9", auth="jwt", api_key=API_KEY,
                    private_key=write_key(tmp_path, rsa_key[0]), kid=KID,
                    token_url="http://127.0.0.1:9/oauth2/token")
    async with SupplierClient(api, transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(ApiError) as e:
            await c.list_letters()
    assert e.value.status == 401 and e.value.detail == "token not accepted"
    assert seen == ["/oauth2/token", "/letters", "/oauth2/token", "/letters"]
