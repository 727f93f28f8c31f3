"""A pycups connection that lives on one thread of its own.

pycups blocks and a ``cups.Connection`` is not thread-safe, so each ``CupsSession`` owns a
single worker thread with one connection, and the event loop awaits its calls.  libcups
keeps the server name per thread, and some calls (``printFile``) consult it rather than
the connection's own host, so the worker sets it once when it starts.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any, Callable

from appliance.core.errors import CupsRefused, CupsUnavailable, UserError

#: IPP status codes that mean "the server is not there" rather than "it said no".
_UNAVAILABLE = {0x0502, 0x0503}
NOT_FOUND = 0x0406


def import_cups():
    try:
        import cups  # noqa: PLC0415 - only floors with CUPS printers need it
    except ImportError as e:
        raise UserError(f"pycups is not installed ({e}); run ./setup.sh "
                        "(pip install pycups, needs libcups2-dev)") from None
    return cups


def split_server(server: str) -> tuple[str, int]:
    """``""`` -> CUPS default; ``host``, ``host:port`` or a socket path."""
    server = server.strip()
    if not server or server.startswith("/"):
        return server, 0
    host, sep, port = server.rpartition(":")
    if sep and port.isdigit() and host:
        return host, int(port)
    return server, 0


def describe_server(server: str) -> str:
    return server or "the default CUPS server"


def connect(server: str):
    """A new connection from the calling thread (which this sets to ``server``)."""
    cups = import_cups()
    host, port = split_server(server)
    if host:
        cups.setServer(host)
    if port:
        cups.setPort(port)
    try:
        return cups.Connection(host=cups.getServer(), port=cups.getPort())
    except RuntimeError as e:
        raise CupsUnavailable(f"{describe_server(server)}: {e}") from None


def call(conn, fn: Callable[..., Any], *args, **kw) -> Any:
    """Run ``fn(conn, ...)`` translating pycups errors into ours."""
    cups = import_cups()
    try:
        return fn(conn, *args, **kw)
    except cups.IPPError as e:
        status, message = (e.args + (0, ""))[:2]
        if status in _UNAVAILABLE or status >= 0x1000 and "connect" in str(message).lower():
            raise CupsUnavailable(str(message)) from None
        raise CupsRefused(int(status), str(message)) from None
    except (cups.HTTPError, RuntimeError, OSError) as e:
        raise CupsUnavailable(f"{type(e).__name__} {e}") from None


class CupsSession:
    """One daemon thread, one connection.  A daemon thread because libcups can block for
    a long time on a dead server, and that must never keep the appliance from exiting."""

    def __init__(self, server: str, label: str):
        self.server = server
        self._conn = None
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._worker, name=f"cups-{label}", daemon=True)
        self._thread.start()

    def _run(self, fn, args, kw):
        if self._conn is None:
            self._conn = connect(self.server)
        try:
            return call(self._conn, fn, *args, **kw)
        except CupsUnavailable:
            self._conn = None  # reconnect on the next call
            raise

    def _worker(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            loop, fut, fn, args, kw = item
            try:
                result, error = self._run(fn, args, kw), None
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting coroutine
                result, error = None, e
            try:
                loop.call_soon_threadsafe(_settle, fut, result, error)
            except RuntimeError:  # the loop is gone: nobody is waiting any more
                pass

    async def __call__(self, fn: Callable[..., Any], *args, **kw) -> Any:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._q.put((loop, fut, fn, args, kw))
        return await fut

    def close(self) -> None:
        self._q.put(None)


def _settle(fut: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)
