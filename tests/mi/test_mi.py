"""MI end to end: a real pipeline on a simulated floor against the local sandbox.

The expected totals are counted from the devices' own ledgers (the printers' page
counters, the inserter's and franker's piece logs), never from the MI code under test.
"""

import json
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pytest

from appliance.api.client import SupplierClient
from appliance.config.profile import load_profile
from appliance.config.settings import sandbox_api
from appliance.core.packs import load_packs
from appliance.mi.service import MiService, mi_client
from appliance.pipeline.pipeline import Pipeline, PipelineSettings
from appliance.sandbox import Sandbox, SandboxOptions
from appliance.store.store import Store
from tests.fixtures import QUICK
from tests.fixtures.mi_floor import floor_profile


def ledger(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []


def expected_from_devices(state: Path, sb, packs, profile) -> tuple[Counter, dict]:
    """(spec, group, line item) -> quantity, and line item -> last stock level, from the
    devices' own ledgers."""
    want: Counter = Counter()
    letters = sb.letters
    for printed in (state / "output").glob("*/printed.jsonl"):
        for r in ledger(printed):
            l = letters[r["letter_id"]]
            pack = packs[l.specification_id]
            item = profile.mi.line_item("sheets", pack.paper_id)[0]
            want[(l.specification_id, l.group_id, item)] += pack.sheets_for(r["pages"])
    stock = {}
    for r in ledger(state / "devices" / "inserter-1" / "enclosed.jsonl"):
        if r["kind"] != "piece.inserted":
            continue
        l = letters[r["letter_id"]]
        env = profile.mi.line_item("envelope", r["envelope"])[0]
        want[(l.specification_id, l.group_id, env)] += 1
        stock[env] = r["stock_remaining"]
        for i in r["inserts"]:
            want[(l.specification_id, l.group_id, profile.mi.line_item("insert", i)[0])] += 1
    for r in ledger(state / "devices" / "franker-1" / "franked.jsonl"):
        l = letters[r["letter_id"]]
        want[(l.specification_id, l.group_id, profile.mi.line_item("postage", r["postage"])[0])] += 1
    return want, stock


@pytest.fixture
async def floor_run(tmp_path):
    sb = Sandbox(SandboxOptions(**QUICK, letters=60, bad_ratio=0.1, seed=11))
    await sb.start(host="127.0.0.1", port=0)
    state = tmp_path / "state"
    store = Store(state)
    client = SupplierClient(sandbox_api(sb.base_url))
    profile = load_profile(floor_profile(tmp_path))
    packs = load_packs()
    pipe = Pipeline(PipelineSettings(spool_dir=state / "spool", poll_interval=0.1, prove_after=0.2),
                    client, store, profile, packs, state_dir=state)
    mi = MiService(state, profile.mi, packs, mi_client(sandbox_api(sb.base_url)))
    pipe.listeners.append(mi.journal)
    try:
        await pipe.start()
        assert await pipe.run_until_idle(timeout=60)
    finally:
        await pipe.stop()
        await client.aclose()
        store.close()
    try:
        yield sb, mi, state, profile, packs
    finally:
        mi.close()
        await mi.client.aclose()
        await sb.stop()


async def test_mi_totals_equal_what_the_devices_reported(floor_run):
    sb, mi, state, profile, packs = floor_run
    want, stock = expected_from_devices(state, sb, packs, profile)
    diverted = [r for r in ledger(state / "devices" / "inserter-1" / "enclosed.jsonl")
                if r["kind"] == "piece.diverted"]
    assert diverted, "the run must include diverted pieces (they use no envelope in the count)"
    assert sum(want.values()) > 100
    report = mi.report("today")
    got = Counter()
    for line in report["lines"]:
        got[(line["specification_id"], line["group_id"], line["line_item"])] += line["quantity"]
    assert got == want
    # profile names are applied; unnamed ids fall back to a marked default name
    items = {l["line_item"]: l["named"] for l in report["lines"]}
    assert items.get("sheets-white-80") is True
    assert any(name.startswith("envelope-") and not named for name, named in items.items())
    # stockRemaining: the inserter's own last count per envelope; declared stock minus use
    for line in report["lines"]:
        if line["line_item"] in stock:
            assert line["stock_remaining"] == stock[line["line_item"]]
    used_80 = sum(n for (s, g, item), n in want.items() if item == "sheets-white-80")
    assert {l["stock_remaining"] for l in report["lines"] if l["line_item"] == "sheets-white-80"} == \
        {100000 - used_80}
    # the journal lives in its own files, never in the store's hot.json
    assert list((state / "mi").glob("events-*.jsonl"))
    assert "sheets-white" not in (state / "hot.json").read_text()


async def test_submitted_mi_matches_devices_and_each_line_is_sent_once(floor_run):
    sb, mi, state, profile, packs = floor_run
    want, _ = expected_from_devices(state, sb, packs, profile)
    with pytest.raises(Exception, match="not over yet"):
        await mi.submit("today")
    res = await mi.submit("today", partial=True)
    assert not res["problems"] and not res["skipped"]
    assert len(res["sent"]) == len(res["verified"]) == len(sb.mi) == len(want)
    posted = Counter()
    for rec in sb.mi.values():
        a = rec["attributes"]
        posted[(a.get("specificationId"), a.get("groupId"), a["lineItem"])] += a["quantity"]
        datetime.fromisoformat(a["timestamp"].replace("Z", "+00:00"))  # ISO timestamps
        assert a["timestamp"].endswith("Z")
    assert posted == want
    # a rerun sends nothing more
    again = await mi.submit("today", partial=True)
    assert again["sent"] == [] and len(sb.mi) == len(want)
    assert sb.counts().get("mi_post") == len(want)
    report = mi.report("today")
    assert all(l["to_submit"] == 0 and [e["state"] for e in l["entries"]] == ["verified"]
               for l in report["lines"])


async def test_cli_preview_and_csv_export_without_daemon(floor_run, tmp_path):
    import asyncio
    import csv

    from appliance.cli.main import main as cli_main

    sb, mi, state, profile, packs = floor_run
    cfg = tmp_path / "appliance.toml"
    cfg.write_text(f'[api]\nbase_url = "{sb.base_url}"\nauth = "none"\n'
                   f'[paths]\nstate_dir = "{state}"\nprofile = "{tmp_path / "floor.toml"}"\n')
    out = tmp_path / "mi.csv"
    args = ["mi", "export", "--date", "today", "--csv", str(out), "--config", str(cfg),
            "--socket", str(tmp_path / "none.sock")]
    assert await asyncio.to_thread(cli_main, args) == 0
    rows = list(csv.DictReader(out.open()))
    want, _ = expected_from_devices(state, sb, packs, profile)
    assert sum(int(r["quantity"]) for r in rows) == sum(want.values())
    assert {r["line_item"] for r in rows} == {k[2] for k in want}
    # submit through the CLI too: everything once, then nothing
    submit = ["mi", "submit", "--date", "today", "--partial", "--config", str(cfg),
              "--socket", str(tmp_path / "none.sock")]
    assert await asyncio.to_thread(cli_main, submit) == 0
    assert len(sb.mi) == len(want)
    assert await asyncio.to_thread(cli_main, submit) == 0
    assert len(sb.mi) == len(want)
    by_date = defaultdict(int)
    for r in csv.DictReader(out.open()):
        by_date[r["day"]] += 1
    assert list(by_date) == [mi.today()]
