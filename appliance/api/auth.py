"""Signed-JWT client authentication for the Supplier API (application-restricted).

The appliance signs a short-lived client assertion (RS512) with its private key and swaps it
at the OAuth2 token endpoint for a bearer token.  The token is cached and refreshed early;
concurrent callers share one refresh.  The private key is read when the provider is made,
so a key other users can read stops the appliance at start-up.  Neither the assertion nor
the token is ever logged or put in an error message.
"""

from __future__ import annotations

import asyncio
import stat
import time
import uuid
from pathlib import Path
from typing import Callable

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from appliance.api.limits import MAX_ERROR_BODY, MAX_JSON_BODY, BodyTooLarge, read_capped
from appliance.config.settings import ApiConfig
from appliance.core.errors import TokenError, UserError

#: The token endpoint refuses assertions that live longer than five minutes.
MAX_ASSERTION_LIFETIME = 300
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def load_private_key(path: Path) -> bytes:
    """Read a PEM RSA private key, refusing one that other users could read."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UserError(f"{path}: private key not found; set [api] private_key to the PEM key file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read private key ({e.strerror}); fix its owner or mode") from None
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{path}: private key is not a regular file; point [api] private_key at the PEM file")
    if st.st_mode & 0o077:
        raise UserError(
            f"{path}: private key is readable by other users (mode {stat.S_IMODE(st.st_mode):o}); "
            f"run: chmod 600 {path}"
        )
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read private key ({e.strerror}); fix its owner or mode") from None
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise UserError(
            f"{path}: not an unencrypted PEM RSA private key; export it with "
            "openssl rsa -in KEY -out KEY.pem"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise UserError(f"{path}: key is not RSA; the Supplier API needs an RSA key (RS512)")
    return data


def make_client_assertion(
    api_key: str,
    kid: str,
    private_key_pem: bytes | RSAPrivateKey,
    token_url: str,
    *,
    now: float | None = None,
    lifetime: int = MAX_ASSERTION_LIFETIME,
) -> str:
    """A signed client assertion: RS512, ``kid`` header, iss = sub = API key, aud = token URL.

    The key may be PEM bytes or an already-parsed key (parsing PEM costs ~40 ms).
    """
    if not 0 < lifetime <= MAX_ASSERTION_LIFETIME:
        raise ValueError(f"assertion lifetime must be 1..{MAX_ASSERTION_LIFETIME} s, got {lifetime}")
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": api_key,
        "sub": api_key,
        "aud": token_url,
        "jti": str(uuid.uuid4()),
        "iat": issued,
        "exp": issued + lifetime,
    }
    return jwt.encode(claims, private_key_pem, algorithm="RS512", headers={"kid": kid})


def parse_expires_in(value: object) -> float:
    """``expires_in`` arrives as a string such as ``"599"``; accept numbers too."""
    if isinstance(value, bool):
        raise ValueError("expires_in is a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = float(value.strip())
    else:
        raise ValueError(f"expires_in has type {type(value).__name__}")
    if not seconds > 0:
        raise ValueError(f"expires_in must be positive, got {value!r}")
    return seconds


class TokenProvider:
    """Caches the bearer token; one refresh at a time, started before the token expires."""

    def __init__(
        self,
        api: ApiConfig,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = 60,
        limiter=None,
    ):
        self._api = api
        self._http = http
        self._clock = clock
        self._margin = refresh_margin
        self._limiter = limiter  # the token call is a transaction too
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._key: RSAPrivateKey | None = None
        self.requests = 0  # token endpoint calls made (for tests and stats)
        if api.private_key is not None:
            self._key = load_pem_private_key(load_private_key(api.private_key), password=None)

    def invalidate(self) -> None:
        self._token = None

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._refresh_at

    async def token(self) -> str:
        if self._fresh():
            return self._token  # type: ignore[return-value]
        async with self._lock:
            if not self._fresh():  # another caller may have refreshed while we waited
                await self._refresh()
            return self._token  # type: ignore[return-value]

    async def _refresh(self) -> None:
        api = self._api
        if self._key is None:
            if api.private_key is None:
                raise UserError("[api] private_key is not set; it is required when auth = \"jwt\"")
            self._key = load_pem_private_key(load_private_key(api.private_key), password=None)
        issued = self._clock()  # the injectable clock only drives refresh; the JWT uses real time
        assertion = make_client_assertion(api.api_key, api.kid, self._key, api.token_url)
        if self._limiter is not None:
            await self._limiter.acquire()
        self.requests += 1
        request = self._http.build_request(
            "POST",
            api.token_url,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            },
            headers={"Accept": "application/json"},
        )
        streamed = await self._http.send(request, stream=True, follow_redirects=False)
        ok = streamed.status_code == 200
        try:
            resp = await read_capped(streamed, MAX_JSON_BODY if ok else MAX_ERROR_BODY,
                                     truncate=not ok)
        except BodyTooLarge as e:
            raise TokenError(f"token endpoint {api.token_url} sent an unusable answer ({e}); "
                             "check [api] token_url", status=streamed.status_code) from None
        if resp.status_code in (404, 405):  # nothing takes tokens there: the URL is wrong
            raise TokenError(
                f"token endpoint {api.token_url} answered HTTP {resp.status_code} "
                f"({_token_error_text(resp)}): no token service at that address; check [api] token_url",
                status=resp.status_code,
            )
        if resp.status_code != 200:
            raise TokenError(
                f"token endpoint {api.token_url} refused the client assertion "
                f"(HTTP {resp.status_code}: {_token_error_text(resp)}); "
                "check [api] api_key, kid and private_key",
                status=resp.status_code,
                retryable=resp.status_code == 429 or resp.status_code >= 500,
            )
        try:
            body = resp.json()
            access = body["access_token"]
            lifetime = parse_expires_in(body.get("expires_in", 599))
            if not isinstance(access, str) or not access:
                raise ValueError("empty access_token")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise TokenError(
                f"token endpoint {api.token_url} sent an unusable answer ({e}); check [api] token_url",
                status=resp.status_code,
            ) from None
        # Refresh early: refresh_margin seconds before expiry, or 10% of a short lifetime.
        margin = min(self._margin, lifetime * 0.1)
        self._token = access
        self._refresh_at = issued + lifetime - margin


def _token_error_text(resp: httpx.Response) -> str:
    """A short, safe description of a token endpoint refusal."""
    try:
        body = resp.json()
    except ValueError:
        return resp.reason_phrase or "no detail"
    if isinstance(body, dict):
        for key in ("error_description", "message", "error"):
            if isinstance(body.get(key), str):
                return body[key][:200]
    return resp.reason_phrase or "no detail"
