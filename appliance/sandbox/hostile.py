"""Hostile answers: the sandbox playing a broken or malicious server, on request.

Off by default.  ``sb.faults.hostile = "invalid_json"`` makes every request of a kind in
``sb.faults.hostile_scope`` (default: the letter list) get that answer instead of the
real one; ``sb.faults.hostile_count = n`` limits it to the next n such requests, after
which the sandbox behaves again.  Per-letter hostility (a malformed list item, a bad
Location, given PDF bytes) is ``Sandbox.add_letter``.
"""

from __future__ import annotations

import json

from appliance.sandbox import bodies
from appliance.sandbox.bombs import gzip_of_repeats
from appliance.sandbox.httpserver import Request, Response
from appliance.sandbox.model import Server

#: mode -> what the answer is
MODES = {
    "invalid_json": "200 whose body is cut-off JSON",
    "not_object": "200 whose body is a JSON array, not an object",
    "errors_200": "200 whose body is a JSON:API errors document",
    "huge_body": "200 with valid JSON of faults.huge_bytes bytes (default 21 MB)",
    "huge_error": "500 with an error body of faults.huge_bytes bytes",
    "html": "200 text/html page (a captive portal or a proxy's error page)",
    "redirect": "307 to faults.redirect_to + the same path (another host)",
    "no_location": "303 without a Location header",
    "bad_location": "303 whose Location is file:///etc/passwd",
    "missing_token": "200 token answer without access_token",
    "deep_json": "200 whose body is 100 000 nested [ (a parser's recursion)",
    "deep_error": "500 whose error body is 100 000 nested [",
    "gzip_bomb": "200 with Content-Encoding: gzip, gzip: two layers inflating to 1 GB",
}

_huge_cache: dict[tuple[str, int], bytes] = {}


def _padded(kind: str, size: int) -> bytes:
    """Valid JSON of exactly ``size`` bytes (cached: tests ask for the same size often)."""
    key = (kind, size)
    if key not in _huge_cache:
        head = b'{"data": [], "meta": {"padding": "' if kind == "ok" else b'{"errors": [{"detail": "'
        tail = b'"}}' if kind == "ok" else b'"}]}'
        _huge_cache.clear()
        _huge_cache[key] = head + b"x" * max(0, size - len(head) - len(tail)) + tail
    return _huge_cache[key]


def _two_layer_bomb() -> bytes:
    """1 GiB of spaces gzipped, and gzipped again: a few kilobytes on the wire."""
    import gzip

    return gzip.compress(gzip_of_repeats(b" ", 1024), 9)


def take(sb: Server, kind: str) -> str | None:
    """The hostile mode for this request, counting it against ``hostile_count``."""
    f = sb.faults
    if not f.hostile or kind not in f.hostile_scope:
        return None
    if f.hostile_count is not None:
        if f.hostile_count <= 0:
            return None
        f.hostile_count -= 1
    return f.hostile


def answer(sb: Server, req: Request, mode: str) -> Response:
    if mode not in MODES:
        raise ValueError(f"unknown hostile mode {mode!r}; one of {', '.join(MODES)}")
    headers = sb.echo_headers(req)
    if mode == "invalid_json":
        return Response(200, b'{"data": [{"id": "', headers)
    if mode == "deep_json":
        return Response(200, b"[" * 100_000, headers)
    if mode == "deep_error":
        return Response(500, b"[" * 100_000, headers)
    if mode == "gzip_bomb":
        return Response(200, _two_layer_bomb(), headers + [("Content-Encoding", "gzip, gzip")])
    if mode == "not_object":
        return Response(200, b"[]", headers)
    if mode == "errors_200":
        return Response(200, bodies.error_body(400, sb.request_id(req), "hostile: an error "
                                               "sent with status 200"), headers)
    if mode == "huge_body":
        return Response(200, _padded("ok", sb.faults.huge_bytes), headers)
    if mode == "huge_error":
        return Response(500, _padded("error", sb.faults.huge_bytes), headers)
    if mode == "html":
        return Response(200, b"<html><body>Please log in to the hotel wifi</body></html>",
                        sb.echo_headers(req, "text/html"))
    if mode == "redirect":
        return Response(307, b"", sb.echo_headers(req, None)
                        + [("Location", sb.faults.redirect_to.rstrip("/") + req.target)])
    if mode == "no_location":
        return Response(303, b"", sb.echo_headers(req, None))
    if mode == "bad_location":
        return Response(303, b"", sb.echo_headers(req, None) + [("Location", "file:///etc/passwd")])
    # missing_token
    return Response(200, json.dumps({"token_type": "Bearer", "expires_in": "599"}).encode(),
                    [("Content-Type", bodies.JSON)])
