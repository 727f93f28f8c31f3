"""Pre-signed-style data URLs: what the 303 from /letters/{id}/data points at.

Signed with a per-server key over (letter id, X-Amz-Date, X-Amz-Expires), refused like S3
refuses them (bad signature, missing parameters, "Request has expired").  The deployed
server's URLs live 60 s (``SandboxOptions.presign_ttl``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timezone
from urllib.parse import urlencode

AMZ_DATE = "%Y%m%dT%H%M%SZ"


class Presigner:
    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def _signature(self, letter_id: str, amz_date: str, expires: str) -> str:
        msg = f"{letter_id}\n{amz_date}\n{expires}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def url(self, base_url: str, letter_id: str, ttl: int, issued_at: float) -> str:
        when = datetime.fromtimestamp(issued_at, tz=timezone.utc).strftime(AMZ_DATE)
        query = urlencode({
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Date": when, "X-Amz-Expires": str(ttl),
            "X-Amz-SignedHeaders": "host",
            "X-Amz-Signature": self._signature(letter_id, when, str(ttl)),
        })
        return f"{base_url}/_presigned/letters/{letter_id}.pdf?{query}"

    def problem(self, letter_id: str, query: dict[str, str], now: float) -> str | None:
        """Why a pre-signed request is refused, or None if signature and expiry are good."""
        when, ttl, sig = (query.get("X-Amz-Date"), query.get("X-Amz-Expires"),
                          query.get("X-Amz-Signature"))
        if not (when and ttl and sig):
            return "Query-string authentication requires the X-Amz-Date, X-Amz-Expires and X-Amz-Signature parameters"
        if not hmac.compare_digest(sig, self._signature(letter_id, when, ttl)):
            return "The request signature we calculated does not match the signature you provided"
        try:
            issued = datetime.strptime(when, AMZ_DATE).replace(tzinfo=timezone.utc).timestamp()
            expiry = issued + int(ttl)
        except ValueError:
            return "X-Amz-Date or X-Amz-Expires is malformed"
        if now > expiry:
            return "Request has expired"
        return None
