"""Signed-JWT auth: key loading, assertion claims, token caching/refresh, 401 retry."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from appliance.auth import (
    TokenError,
    TokenProvider,
    load_private_key,
    make_client_assertion,
    parse_expires_in,
)
from appliance.config import ApiConfig
from appliance.errors import UserError

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
