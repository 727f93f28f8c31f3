"""The signed-JWT OAuth2 token endpoint, checked the way the real NHS one checks it.

The client signs an assertion (RS512, ``kid`` header, iss == sub == API key, aud == the
token URL, a never-seen ``jti``, ``exp`` at most five minutes ahead) and swaps it for a
bearer token.  Failures answer ``{"error", "error_description"}`` with 400 or 401.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import parse_qs

import jwt

GRANT_TYPE = "client_credentials"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_EXP_AHEAD = 300


class TokenRefused(Exception):
    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


class TokenIssuer:
    def __init__(self, keys: dict[str, bytes], api_key: str, token_url: str, ttl: int):
        self.keys = dict(keys)
        self.api_key = api_key
        self.token_url = token_url
        self.ttl = ttl
        self.seen_jti: set[str] = set()
        self.tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)

    def revoke_all(self) -> None:
        self.tokens.clear()

    def is_valid(self, authorization: str | None, now: float | None = None) -> bool:
        if not authorization or not authorization.startswith("Bearer "):
            return False
        expiry = self.tokens.get(authorization[len("Bearer "):].strip())
        return expiry is not None and expiry > (now or time.time())

    def exchange(self, content_type: str, body: bytes) -> dict:
        """Check a token request; return the token answer or raise TokenRefused."""
        if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
            raise TokenRefused(400, "invalid_request",
                               "Content-Type must be application/x-www-form-urlencoded")
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != GRANT_TYPE:
            raise TokenRefused(400, "unsupported_grant_type" if form.get("grant_type")
                               else "invalid_request", "grant_type must be 'client_credentials'")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise TokenRefused(400, "invalid_request",
                               f"client_assertion_type must be '{ASSERTION_TYPE}'")
        assertion = form.get("client_assertion")
        if not assertion:
            raise TokenRefused(400, "invalid_request", "Missing client_assertion")
        self._verify(assertion)
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.time() + self.ttl
        return {"access_token": token, "token_type": "Bearer", "expires_in": str(self.ttl)}

    def _verify(self, assertion: str) -> None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise TokenRefused(400, "invalid_request", "Malformed JWT in client_assertion") from None
        if header.get("alg") != "RS512":
            raise TokenRefused(400, "invalid_request",
                               "Invalid 'alg' header in JWT - unsupported JWT algorithm - must be 'RS512'")
        kid = header.get("kid")
        if not kid:
            raise TokenRefused(400, "invalid_request", "Missing 'kid' header in JWT")
        if kid not in self.keys:
            raise TokenRefused(401, "invalid_client",
                               "Invalid 'kid' header in JWT - no matching public key")
        try:
            claims = jwt.decode(
                assertion, self.keys[kid], algorithms=["RS512"],
                options={"verify_aud": False, "verify_exp": False,
                         "require": ["exp", "iss", "sub", "jti", "aud"]},
            )
        except jwt.MissingRequiredClaimError as e:
            raise TokenRefused(400, "invalid_request", f"Missing '{e.claim}' claim in JWT") from None
        except jwt.PyJWTError:
            raise TokenRefused(401, "invalid_client", "Unable to verify JWT signature") from None
        if claims["iss"] != claims["sub"]:
            raise TokenRefused(400, "invalid_request", "Missing or non-matching iss/sub claims in JWT")
        if claims["iss"] != self.api_key:
            raise TokenRefused(401, "invalid_client", "Invalid iss/sub claims in JWT")
        aud = claims["aud"]
        if (aud if isinstance(aud, str) else None) != self.token_url:
            raise TokenRefused(401, "invalid_request", "Missing or non-matching aud claim in JWT")
        exp, now = claims["exp"], time.time()
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            raise TokenRefused(400, "invalid_request", "Invalid exp claim in JWT")
        if exp <= now:
            raise TokenRefused(400, "invalid_request", "Invalid exp claim in JWT - JWT has expired")
        if exp > now + MAX_EXP_AHEAD:
            raise TokenRefused(400, "invalid_request",
                               "Invalid exp claim in JWT - more than 5 minutes in future")
        jti = claims["jti"]
        if not isinstance(jti, str) or jti in self.seen_jti:
            raise TokenRefused(400, "invalid_request", "Non-unique jti claim in JWT")
        self.seen_jti.add(jti)
