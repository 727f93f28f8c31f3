"""Size and shape limits on what the appliance reads from the outside world.

Everything that arrives over the network is bounded before it is parsed: a broken or
hostile server must cost us at most a few megabytes and one clear error, never memory
exhaustion or a hung worker.  The limits live here so the API client and the token
client share them.
"""

from __future__ import annotations

import re

import httpx

#: A letter (or MI record) id we will put in a URL path or a spool file name.  Use
#: ``fullmatch``: ``$`` would let a trailing newline through.
LETTER_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")

#: GET /letters carries up to 2500 letters (~250 bytes each); 20 MB leaves ample room.
MAX_LIST_BODY = 20 * 1024 * 1024
#: Every other JSON answer (one letter, an MI record, a token) is small.
MAX_JSON_BODY = 1024 * 1024
#: Error answers are only read for their message: keep the first 64 kB.
MAX_ERROR_BODY = 64 * 1024
#: Longest string we accept in a letter's attributes (specificationId, groupId, hash...).
MAX_FIELD_CHARS = 1024

_BODY_HEADERS = frozenset({"content-length", "content-encoding", "transfer-encoding"})


def is_safe_id(value: object) -> bool:
    return isinstance(value, str) and LETTER_ID.fullmatch(value) is not None


def shown(value: object, n: int = 40) -> str:
    """A short, quoted rendering of untrusted text for a one-line message."""
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


class BodyTooLarge(Exception):
    def __init__(self, cap: int, declared: int | None = None):
        said = f"{declared} bytes, " if declared is not None else ""
        super().__init__(f"response too large: {said}over the {cap}-byte size cap")
        self.cap = cap
        self.declared = declared


async def read_capped(resp: httpx.Response, cap: int, *, truncate: bool = False) -> httpx.Response:
    """Read a streamed response (decoded, so a compression bomb counts at full size) into a
    new, fully read Response.  Over ``cap``: raise ``BodyTooLarge``, or with ``truncate``
    keep the first ``cap`` bytes (for error bodies, read only for their message)."""
    declared = resp.headers.get("content-length", "")
    if not truncate and declared.isdigit() and int(declared) > cap:
        await resp.aclose()
        raise BodyTooLarge(cap, int(declared))
    body = bytearray()
    try:
        async for chunk in resp.aiter_bytes():
            room = cap - len(body)
            if len(chunk) > room:
                if not truncate:
                    raise BodyTooLarge(cap)
                body += chunk[:room]
                break
            body += chunk
    finally:
        await resp.aclose()
    headers = [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in _BODY_HEADERS]
    return httpx.Response(resp.status_code, headers=headers, content=bytes(body),
                          request=resp.request, extensions=dict(resp.extensions))
