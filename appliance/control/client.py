"""The console's end of the control socket (the only part of the daemon's code that the
TUI and the operator CLI import, besides ``appliance.core``).  Protocol: ``protocol``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import Any, AsyncIterator

from appliance.control.protocol import DEFAULT_SOCKET, HOW_TO_START, MAX_LINE, dumps
from appliance.core.errors import ControlError, DaemonNotRunning

__all__ = ["ControlClient", "ControlError", "DaemonNotRunning", "DEFAULT_SOCKET", "call"]


class ControlClient:
    """One connection to the daemon.  ``async with ControlClient(path) as c: await c.call(...)``.

    Use a separate client for ``events()`` (a subscribed connection carries the stream).
    """

    def __init__(self, path: str | os.PathLike = DEFAULT_SOCKET):
        self.path = str(path)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._next_id = 0
        self._lock = asyncio.Lock()

    async def connect(self) -> "ControlClient":
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(self.path, limit=64 * MAX_LINE)
        except (FileNotFoundError, ConnectionRefusedError):
            raise DaemonNotRunning(f"the appliance daemon is not running (no control socket at "
                                   f"{self.path}); {HOW_TO_START}") from None
        except PermissionError:
            raise DaemonNotRunning(f"no permission to open {self.path}; join the socket's group "
                                   "or run as its owner") from None
        return self

    async def close(self) -> None:
        if self._writer:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
            self._writer = None

    async def __aenter__(self) -> "ControlClient":
        return await self.connect()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def call(self, cmd: str, **args: Any) -> Any:
        """Send one request; the result, or ControlError with the daemon's one-line reason."""
        if self._writer is None:
            await self.connect()
        async with self._lock:
            self._next_id += 1
            rid = self._next_id
            self._writer.write(dumps({"id": rid, "cmd": cmd, "args": args}))
            await self._writer.drain()
            while True:
                line = await self._reader.readline()
                if not line:
                    raise DaemonNotRunning(f"the daemon closed the control connection; {HOW_TO_START}")
                msg = json.loads(line)
                if msg.get("id") == rid:
                    break
        if not msg.get("ok"):
            raise ControlError(msg.get("error") or "request refused")
        return msg.get("result")

    async def events(self) -> AsyncIterator[dict]:
        """Subscribe and yield ``{"event", "data"}`` dicts until the connection ends."""
        await self.call("subscribe")
        while True:
            line = await self._reader.readline()
            if not line:
                return
            msg = json.loads(line)
            if "event" in msg:
                yield msg


def call(path: str | os.PathLike, cmd: str, **args: Any) -> Any:
    """Synchronous one-shot request for the CLI."""

    async def once():
        async with ControlClient(path) as c:
            return await c.call(cmd, **args)

    return asyncio.run(once())
