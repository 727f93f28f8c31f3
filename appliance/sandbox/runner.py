"""Run a Sandbox: on its own thread and event loop (for synchronous callers), or in
the foreground until a signal (``appliance sandbox``)."""

from __future__ import annotations

import asyncio
import signal
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


async def serve(opts: SandboxOptions, host: str, port: int) -> None:
    sb = Sandbox(opts)
    await sb.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"sandbox listening on {sb.base_url} ({len(sb.letters)} letters)", flush=True)
    try:
        await stop.wait()
    finally:
        await sb.stop()
