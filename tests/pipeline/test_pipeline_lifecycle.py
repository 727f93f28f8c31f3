"""Pipeline behaviour around the happy path: stale letters, operator actions, holds."""

import asyncio
import json
import time
from collections import Counter

import pytest

from appliance.api.client import SupplierClient
from appliance.config.profile import load_profile
from appliance.config.settings import sandbox_api
from appliance.core.packs import load_packs
from appliance.pipeline.operator import ActionRefused, Operator
from appliance.pipeline.pipeline import Pipeline, PipelineSettings
from appliance.runtime.demo import demo_profile_path
from appliance.sandbox import Sandbox, SandboxOptions
from appliance.store.store import Store
from tests.fixtures import QUICK


async def make(tmp_path, letters=12, **settings):
    sb = Sandbox(SandboxOptions(**QUICK, letters=letters, bad_ratio=0.0, seed=21))
    await sb.start(host="127.0.0.1", port=0)
    store = Store(tmp_path / "state")
    client = SupplierClient(sandbox_api(sb.base_url))
    pipe = Pipeline(PipelineSettings(spool_dir=tmp_path / "state" / "spool", poll_interval=0.1, prove_after=0.2, **settings),
                    client, store, load_profile(demo_profile_path()), load_packs(),
                    state_dir=tmp_path / "state")
    return sb, store, client, pipe


async def close(sb, store, client, pipe):
    await pipe.stop()
    await client.aclose()
    store.close()
    await sb.stop()


def printed(tmp_path) -> Counter:
    c = Counter()
    for ledger in (tmp_path / "state" / "output").glob("*/printed.jsonl"):
        for line in ledger.read_text().splitlines():
            c[json.loads(line)["letter_id"]] += 1
    return c


async def wait_for(cond, timeout=20.0):
    for _ in range(int(timeout / 0.05)):
        if cond():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_stale_letter_cancelled_at_notify_is_not_printed(tmp_path):
    sb, store, client, pipe = await make(tmp_path, letters=8, stale_after=0.0)
    op = Operator(pipe)
    try:
        await pipe.start()
        for p in pipe.profile.printers:
            await op.pause(p.name)
        # every letter gets ACCEPTED, then waits for a printer
        assert await wait_for(lambda: all(l.status == "ACCEPTED" for l in sb.letters.values()))
        victim = sorted(sb.letters)[0]
        sb.letters[victim].status = "CANCELLED"  # Notify cancels it while it waits
        for p in pipe.profile.printers:
            await op.resume(p.name)
        assert await pipe.run_until_idle(timeout=30)
    finally:
        await close(sb, store, client, pipe)
    prints = printed(tmp_path)
    assert prints[victim] == 0
    others = [lid for lid in sb.letters if lid != victim]
    assert all(prints[lid] == 1 for lid in others)
    assert all(sb.letters[lid].status == "DISPATCHED" for lid in others)
    # the appliance asked the API about each stale letter before printing it
    assert sb.counts()["get"] >= len(sb.letters)
    with Store(tmp_path / "state", readonly=True) as st:
        assert st.get(victim)["status"] == "CANCELLED"


async def test_fresh_letters_are_not_rechecked(tmp_path):
    sb, store, client, pipe = await make(tmp_path, letters=6)  # default: 24 h
    try:
        await pipe.start()
        assert await pipe.run_until_idle(timeout=30)
    finally:
        await close(sb, store, client, pipe)
    assert client.stats["get"] == 0  # no staleness check (the prover's read-backs count apart)


async def test_operator_cancel_return_and_reprint_reach_the_api(tmp_path):
    sb, store, client, pipe = await make(tmp_path, letters=6)
    op = Operator(pipe)
    try:
        await pipe.start()
        for p in pipe.profile.printers:
            await op.pause(p.name)
        assert await wait_for(lambda: all(l.status == "ACCEPTED" for l in sb.letters.values()))
        ids = sorted(sb.letters)
        await op.cancel(ids[0], "customer withdrew")
        for p in pipe.profile.printers:
            await op.resume(p.name)
        assert await pipe.run_until_idle(timeout=30)
        await op.returned(ids[1], "r09")
        with pytest.raises(ActionRefused, match="only ACCEPTED or PRINTED letters can be reprinted"):
            await op.reprint(ids[2])  # already DISPATCHED
        with pytest.raises(ActionRefused, match="use one of R01"):
            await op.returned(ids[3], "R11")
        assert await wait_for(lambda: not store.outbox_pending())
        await asyncio.sleep(0.3)
    finally:
        await close(sb, store, client, pipe)
    assert sb.letters[ids[0]].status == "CANCELLED" and printed(tmp_path)[ids[0]] == 0
    assert (sb.letters[ids[1]].status, sb.letters[ids[1]].reason_code, sb.letters[ids[1]].reason_text) == (
        "RETURNED", "R09", "Deceased")


async def test_spool_retention_keeps_final_pdfs_until_swept(tmp_path):
    sb, store, client, pipe = await make(tmp_path, letters=4, spool_retention=3600.0)
    spool = tmp_path / "state" / "spool"
    try:
        await pipe.start()
        assert await pipe.run_until_idle(timeout=30)
        kept = sorted(p.name for p in spool.glob("*.pdf"))
        assert kept == sorted(f"{lid}.pdf" for lid in sb.letters)  # final, but kept
        (spool / ".deadbeef.pdf.x1.part").write_bytes(b"%PDF-")  # a killed download's leftover
        in_flight = tmp_path / "state" / "spool" / "stillworking.pdf"
        store.add_letter("stillworking", "notify-c5", "g", "0" * 64)
        in_flight.write_bytes(b"%PDF-")
        assert pipe.sweep_spool() == 1  # only the leftover: retention has not passed
        assert pipe.sweep_spool(now=time.time() + 3601) == len(sb.letters)
        assert sorted(p.name for p in spool.iterdir()) == ["stillworking.pdf"]  # in flight: never
    finally:
        await close(sb, store, client, pipe)
