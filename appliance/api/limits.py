"""Size and shape limits on what the appliance reads from the outside world.

Everything that arrives over the network is bounded before it is parsed: a broken or
hostile server must cost us at most a few megabytes and one clear error, never memory
exhaustion or a hung worker.  The limits live here so the API client and the token
client share them.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

import httpx

from appliance.core.decoding import Overflow, UnsupportedEncoding, decode_bounded, decoders_for
from appliance.core.errors import BadJson, BodyTooLarge

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
#: Deepest nesting of arrays/objects in a JSON answer (real ones nest 4 deep).
MAX_JSON_DEPTH = 32

_BODY_HEADERS = frozenset({"content-length", "content-encoding", "transfer-encoding"})


def is_safe_id(value: object) -> bool:
    return isinstance(value, str) and LETTER_ID.fullmatch(value) is not None


def shown(value: object, n: int = 40) -> str:
    """A short, quoted rendering of untrusted text for a one-line message."""
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


_BRACKETS = re.compile(rb'[\[{\]}"\\]')


def _too_deep(body: bytes, limit: int) -> bool:
    """Nesting deeper than ``limit``, found by scanning brackets outside strings (C-speed
    regex, so a 20 MB answer costs milliseconds and no recursion)."""
    depth, in_string, escaped = 0, False, False
    last = -1
    for m in _BRACKETS.finditer(body):
        ch = m.group()
        if in_string:
            if ch == b"\\":
                escaped = not escaped if m.start() == last + 1 else True
            elif ch == b'"':
                if not (escaped and m.start() == last + 1):
                    in_string = False
                escaped = False
            last = m.start()
            continue
        if ch == b'"':
            in_string, escaped = True, False
        elif ch in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif ch in (b"]", b"}"):
            depth -= 1
        last = m.start()
    return False


def parse_json(body: bytes, limit: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` for an answer from outside: size already capped by the reader, nesting
    capped here (a list of 100 000 ``[`` once ended the poll task with RecursionError)."""
    if _too_deep(body, limit):
        raise BadJson(f"nested deeper than {limit} levels")
    try:
        return json.loads(body)
    except RecursionError:  # pragma: no cover - the scan above stops this first
        raise BadJson(f"nested deeper than {limit} levels") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise BadJson(f"not valid JSON ({str(e)[:60]})") from None


async def _once(data: bytes):
    yield data


async def read_capped(resp: httpx.Response, cap: int, *, truncate: bool = False) -> httpx.Response:
    """Read a streamed response into a new, fully read Response, decoding its
    Content-Encoding here under the cap (so a compression bomb counts at full size and is
    stopped after ``cap`` bytes).  Over ``cap``: raise ``BodyTooLarge``, or with
    ``truncate`` keep the first ``cap`` bytes (error bodies, read only for their message).
    A body that does not decode raises ``BodyTooLarge``'s sibling ``BadJson``."""
    encoding = resp.headers.get("content-encoding", "")
    declared = resp.headers.get("content-length", "")
    if not truncate and not encoding and declared.isdigit() and int(declared) > cap:
        await resp.aclose()
        raise BodyTooLarge(cap, int(declared))
    body = bytearray()
    try:
        if resp.is_stream_consumed:  # already read by its maker (a test's MockTransport)
            decoders, source = [], _once(resp.content)
        else:
            decoders, source = decoders_for(encoding), resp.aiter_raw()
        async for raw in source:
            room = cap - len(body)
            try:
                chunks = decode_bounded(decoders, raw, room) if decoders else [raw]
            except Overflow:
                if not truncate:
                    raise BodyTooLarge(cap) from None
                break
            chunk = b"".join(chunks)
            if len(chunk) > room:
                if not truncate:
                    raise BodyTooLarge(cap)
                body += chunk[:room]
                break
            body += chunk
    except (UnsupportedEncoding, zlib.error) as e:
        raise BadJson(f"body cannot be decoded ({str(e)[:60]})") from None
    finally:
        await resp.aclose()
    headers = [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in _BODY_HEADERS]
    return httpx.Response(resp.status_code, headers=headers, content=bytes(body),
                          request=resp.request, extensions=dict(resp.extensions))
