"""Minimal HTTP/1.1 server on asyncio streams: keep-alive, Content-Length and chunked bodies.

Hand-written because the sandbox must add no dependencies and needs control a framework
hides: closing a connection without answering (fault injection) and logging exactly what
arrived.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Awaitable, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024

REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 303: "See Other",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 411: "Length Required",
    413: "Payload Too Large", 415: "Unsupported Media Type", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass
class Request:
    method: str
    target: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    version: str


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False  # close the connection without answering
    #: A misbehaving answer (drips, short bodies): writes everything after the status
    #: line itself, then the connection is closed.
    stream: Callable[[asyncio.StreamWriter], Awaitable[None]] | None = None


Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    """The bytes on the wire are not an HTTP request we can read."""

    def __init__(self, status: int = 400):
        super().__init__(status)
        self.status = status


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            raise BadRequest() from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return bytes(body)
        if len(body) + size > MAX_BODY_BYTES:
            raise BadRequest(413)
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on the connection, or None when the client closed it cleanly."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial.strip():
            return None
        raise BadRequest() from None
    except asyncio.LimitOverrunError:
        raise BadRequest(431) from None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise BadRequest() from None
    if not version.startswith("HTTP/1."):
        raise BadRequest()
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest()
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise BadRequest() from None
        if length < 0:
            raise BadRequest()
        if length > MAX_BODY_BYTES:
            raise BadRequest(413)
        body = await reader.readexactly(length) if length else b""
    split = urlsplit(target)
    return Request(
        method=method.upper(), target=target, path=unquote(split.path),
        query=parse_qsl(split.query, keep_blank_values=True), headers=headers,
        body=body, version=version,
    )


def encode_response(resp: Response, keep_alive: bool) -> bytes:
    head = [f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Unknown')}"]
    head += [f"{k}: {v}" for k, v in resp.headers]
    if not any(k.lower() == "date" for k, _ in resp.headers):  # as every real server: clients judge skew by it
        head.append(f"Date: {formatdate(usegmt=True)}")
    head.append(f"Content-Length: {len(resp.body)}")
    if not keep_alive:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + resp.body


def _wants_keep_alive(req: Request) -> bool:
    conn = req.headers.get("connection", "").lower()
    if req.version == "HTTP/1.0":
        return "keep-alive" in conn
    return "close" not in conn


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           handler: Handler, on_bad: Callable[[int], Response]) -> None:
    """Answer requests on one connection until either side closes it."""
    try:
        while True:
            try:
                req = await read_request(reader)
            except BadRequest as e:
                writer.write(encode_response(on_bad(e.status), keep_alive=False))
                await writer.drain()
                return
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if req is None:
                return
            resp = await handler(req)
            if resp.drop:
                writer.transport.abort()
                return
            if resp.stream is not None:
                writer.write(f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Unknown')}\r\n".encode())
                await resp.stream(writer)
                return
            keep_alive = _wants_keep_alive(req)
            writer.write(encode_response(resp, keep_alive))
            await writer.drain()
            if not keep_alive:
                return
    except ConnectionError:
        pass
    finally:
        if not writer.is_closing():
            writer.close()
