"""Run a Sandbox on its own thread and event loop, for synchronous callers."""

from __future__ import annotations

import asyncio
import threading
from contextlib import contextmanager
from typing import Iterator

from appliance.sandbox.model import SandboxOptions
from appliance.sandbox.server import Sandbox


@contextmanager
def run_in_thread(opts: SandboxOptions | None = None, host: str = "127.0.0.1",
                  port: int = 0, **overrides) -> Iterator[Sandbox]:
    """Start a sandbox on a background thread; stop it when the block exits.

    Startup errors (such as a port in use) are raised here, in the caller's thread.
    """
    sb = Sandbox(opts, **overrides)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(sb.start(host, port))
        except BaseException as e:  # handed to the caller below
            failure.append(e)
            ready.set()
            loop.close()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(sb.stop())
        loop.close()

    thread = threading.Thread(target=run, name="notify-sandbox", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        thread.join()
        raise failure[0]
    try:
        yield sb
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
