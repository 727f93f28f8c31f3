"""A small real print floor for bad-input and security tests: sandbox + Pipeline + demo profile.

``Floor`` runs a real Pipeline (file printers, simulated finishing) against a real Sandbox
on 127.0.0.1 and waits on what the *sandbox* saw, so a test asserts on what the API received.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from appliance.api.client import SupplierClient
from appliance.config.profile import load_profile
from appliance.config.settings import sandbox_api
from appliance.core.packs import load_packs
from appliance.pipeline.pipeline import Pipeline, PipelineSettings
from appliance.runtime.demo import demo_profile_path
from appliance.sandbox import Sandbox, SandboxOptions
from appliance.store.store import Store

FINAL = {"DISPATCHED", "REJECTED", "FAILED", "CANCELLED"}




def statuses(sb: Sandbox, letter_id: str) -> list[str]:
    return sb.letters[letter_id].supplier_statuses()


async def new_sandbox(good: int = 3, **opts) -> Sandbox:
    sb = Sandbox(SandboxOptions(letters=good, bad_ratio=0, seed=opts.pop("seed", 4), **opts))
    await sb.start(host="127.0.0.1", port=0)
    return sb


class Floor:
    """``async with Floor(sb, tmp_path) as f: await f.wait_final(ids)``."""

    def __init__(self, sb: Sandbox, tmp_path: Path, **settings):
        self.sb = sb
        self.state = tmp_path / "state"
        self.spool = self.state / "spool"
        api = replace(sandbox_api(sb.base_url), max_retries=1)
        self.client = SupplierClient(api, backoff_base=0.01, backoff_cap=0.02)
        self.store = Store(self.state)
        self.pipe = Pipeline(
            PipelineSettings(spool_dir=self.spool, poll_interval=0.05, outbox_interval=0.02,
                             **settings),
            self.client, self.store, load_profile(demo_profile_path()), load_packs(),
            state_dir=self.state)

    async def __aenter__(self) -> "Floor":
        await self.pipe.start()
        return self

    async def __aexit__(self, *exc) -> None:
        # Python 3.11's asyncio.wait_for can swallow a cancel that lands as its inner wait
        # finishes (gh-86296); a pipeline loop built on it then ignores stop() for good.
        # Cancel again until stop() returns, so such a bug shows in the report, not as a hang.
        stopping = asyncio.create_task(self.pipe.stop())
        while not stopping.done():
            await asyncio.wait({stopping}, timeout=1)
            for task in getattr(self.pipe, "_tasks", []):
                task.cancel()
        await stopping
        await self.client.aclose()
        self.store.close()

    async def wait(self, predicate, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; sandbox statuses: {self.sandbox_statuses()}; "
                                     f"alerts: {[a.message for a in self.pipe.alerts][-5:]}")
            await asyncio.sleep(0.02)

    async def wait_final(self, ids, timeout: float = 20) -> None:
        """Until the API holds a final status for every id and the outbox is empty."""
        ids = list(ids)
        await self.wait(lambda: all(self.sb.letters[i].status in FINAL for i in ids)
                        and not self.store.outbox_pending(1), timeout)

    def sandbox_statuses(self) -> dict[str, str]:
        return {lid[:12]: l.status for lid, l in self.sb.letters.items()}

    def alerts(self) -> list[str]:
        return [a.message for a in self.pipe.alerts]
