"""The HTTP transport under the API client: aiohttp's connection handling behind httpx.

httpx stays the client (requests, responses, timeouts, the transport seam the tests use);
only the sending is aiohttp's (``httpx-aiohttp``): its C-accelerated HTTP parser and a
connection pool that does not scan every pooled socket on each request.  In the ingest
profile httpcore's pool (``has_expired`` -> ``getpeername`` per connection per request)
and h11 cost about half the daemon's CPU per API call; measured side by side against the
sandbox, a ``/data`` call costs 2.0 ms of CPU with httpcore and 1.0 ms with this transport
(BENCHMARKS.md).

Whatever aiohttp raises comes out as an httpx ``TransportError``, so the client's
retry and fault classes see the same exceptions as before: a broken answer (bad status
line, headers over aiohttp's 8 KB line limit, a body cut short) is a transport fault,
retried, never an unexpected exception in a task.
"""

from __future__ import annotations

import asyncio
import typing

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport


def _mapped(e: BaseException) -> httpx.TransportError:
    if isinstance(e, asyncio.TimeoutError):
        return httpx.ReadTimeout(f"timed out ({type(e).__name__})")
    return httpx.RemoteProtocolError(f"{type(e).__name__}: {e}"[:300])


class _Body(httpx.AsyncByteStream):
    """The response body, its read errors mapped like the request's."""

    def __init__(self, inner: httpx.AsyncByteStream):
        self._inner = inner

    async def __aiter__(self) -> typing.AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except httpx.TransportError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            raise _mapped(e) from e

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass  # closing a broken connection: nothing left to read from it


class ApiTransport(AiohttpTransport):
    """``AiohttpTransport`` whose every failure is an ``httpx.TransportError``."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            resp = await super().handle_async_request(request)
        except httpx.TransportError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            raise _mapped(e) from e
        resp.stream = _Body(resp.stream)
        return resp


def api_transport(*, verify: bool, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    return ApiTransport(verify=verify, limits=limits)
