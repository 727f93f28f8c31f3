"""How the sandbox's pre-signed "storage" misbehaves, per letter and per request.

``Sandbox.add_letter(..., storage_faults=["503", "503"])`` makes the letter's next two
pre-signed requests fail that way; the third is served normally -- a storage outage that
heals.  Each mode is something S3 or the network between does in real life.
"""

from __future__ import annotations

import asyncio
import gzip

from appliance.sandbox import bodies
from appliance.sandbox.bombs import gzip_of_repeats
from appliance.sandbox.httpserver import Response

XML = [("Content-Type", "application/xml")]

#: mode -> what the pre-signed request gets
STORAGE_FAULTS = {
    "403-expired": "403 AccessDenied 'Request has expired' (S3 after the URL's 60 s)",
    "403": "403 AccessDenied without saying why",
    "404": "404 NoSuchKey (object not there yet)",
    "500": "500 InternalError",
    "503": "503 SlowDown",
    "redirect": "307 to another host (never to be followed)",
    "drip": "the PDF one byte per second",
    "drip-headers": "the response headers one byte per second",
    "silent": "headers, then nothing at all",
    "short": "Content-Length says more than is sent, then the connection closes",
    "reset": "the connection closed without an answer",
    "gzip": "the PDF with Content-Encoding: gzip (fine: decoded with the same caps)",
    "gzip-bomb": "Content-Encoding: gzip of 256 MB of zeros (260 kB on the wire)",
}


def _error(status: int, code: str, message: str) -> Response:
    return Response(status, bodies.s3_error_body(code, message), XML)


def _drip(head: bytes, body: bytes, *, head_slowly: bool, delay: float = 1.0):
    async def write(writer: asyncio.StreamWriter) -> None:
        try:
            for data, slow in ((head, head_slowly), (body, not head_slowly)):
                if not slow:
                    writer.write(data)
                    await writer.drain()
                    continue
                for i in range(len(data)):
                    writer.write(data[i:i + 1])
                    await writer.drain()
                    await asyncio.sleep(delay)
        except (ConnectionError, asyncio.CancelledError):
            pass
    return write


def answer(mode: str, pdf: bytes, redirect_to: str) -> Response:
    if mode == "403-expired":
        return _error(403, "AccessDenied", "Request has expired")
    if mode == "403":
        return _error(403, "AccessDenied", "Access Denied")
    if mode == "404":
        return _error(404, "NoSuchKey", "The specified key does not exist.")
    if mode == "500":
        return _error(500, "InternalError", "We encountered an internal error. Please try again.")
    if mode == "503":
        return _error(503, "SlowDown", "Please reduce your request rate.")
    if mode == "redirect":
        return Response(307, b"", [("Location", redirect_to or "http://169.254.169.254/latest/meta-data/")])
    if mode == "reset":
        return Response(0, drop=True)
    if mode == "gzip":
        return Response(200, gzip.compress(pdf), [("Content-Type", "application/pdf"),
                                                  ("Content-Encoding", "gzip")])
    if mode == "gzip-bomb":
        return Response(200, gzip_of_repeats(), [("Content-Type", "application/pdf"), ("Content-Encoding", "gzip")])
    head = f"Content-Type: application/pdf\r\nContent-Length: {len(pdf)}\r\n\r\n".encode()
    if mode == "drip":
        return Response(200, stream=_drip(head, pdf, head_slowly=False))
    if mode == "drip-headers":
        return Response(200, stream=_drip(head, pdf, head_slowly=True))
    if mode == "silent":
        async def nothing(writer: asyncio.StreamWriter) -> None:
            writer.write(head)
            await writer.drain()
            await asyncio.sleep(3600)
        return Response(200, stream=nothing)
    if mode == "short":
        async def half(writer: asyncio.StreamWriter) -> None:
            writer.write(head + pdf[: len(pdf) // 2])
            await writer.drain()
        return Response(200, stream=half)
    raise ValueError(f"unknown storage fault {mode!r}; one of {', '.join(STORAGE_FAULTS)}")
