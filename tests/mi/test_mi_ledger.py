"""MI submission against the sandbox: crashes, reruns, refusals -- never a line twice."""

import time
from collections import Counter
from dataclasses import replace
from datetime import time as time_of_day
from pathlib import Path

import pytest

from appliance.config.settings import sandbox_api
from appliance.core.errors import UserError
from appliance.core.packs import load_packs
from appliance.mi.ledger import Ledger, SubmissionBusy, lock_submissions
from appliance.mi.service import MiService, mi_client
from appliance.mi.settings import MiSettings
from appliance.sandbox import Sandbox, SandboxOptions
from tests.fixtures import QUICK

SETTINGS = MiSettings(timezone="UTC", sheets="sheets", allow_default_names=True)
DAY = "2025-03-04"
T0 = 1741082400.0  # 2025-03-04T10:00:00Z


class Crash(BaseException):
    """The process dies here (nothing below it runs, nothing catches it)."""


class Crashing:
    """A client that dies at a chosen moment around the Nth POST /mi."""

    def __init__(self, real, *, post_n: int, when: str):
        self.real, self.post_n, self.when, self.posts = real, post_n, when, 0

    async def post_mi(self, *a, **kw):
        self.posts += 1
        if self.posts == self.post_n and self.when == "before":
            raise Crash
        created = await self.real.post_mi(*a, **kw)
        if self.posts == self.post_n and self.when == "after":
            raise Crash  # Notify has it; the appliance never wrote the id down
        return created

    async def get_mi(self, mi_id):
        if self.when == "verify":
            raise Crash
        return await self.real.get_mi(mi_id)


@pytest.fixture
async def sb():
    s = Sandbox(SandboxOptions(**QUICK, letters=0))
    await s.start(host="127.0.0.1", port=0)
    yield s
    await s.stop()


def service(state: Path, sb, client=None) -> MiService:
    """A fresh service from what is on disk, as after a restart."""
    return MiService(state, SETTINGS, load_packs(), client or mi_client(sandbox_api(sb.base_url)),
                     clock=lambda: T0 + 86400 * 3)


def journal_day(svc: MiService, n_groups: int = 4, t: float = T0) -> None:
    """Franked pieces in ``n_groups`` groups: one MI line per group."""
    for g in range(n_groups):
        for i in range(g + 1):
            svc.journal.record({"kind": "piece.franked", "device": "franker-1", "letter_id": f"L{g}-{i}",
                                "t": t + i, "specification_id": "notify-c5", "group_id": f"group-{g}",
                                "postage": "economy"})
    svc.journal.sync()


def posted(sb) -> Counter:
    return Counter((r["attributes"]["groupId"], r["attributes"]["quantity"]) for r in sb.mi.values())


async def close(svc):
    svc.close()
    await svc.client.aclose()


async def test_crash_after_post_before_recording_never_sends_twice(sb, tmp_path):
    svc = service(tmp_path, sb)
    journal_day(svc)
    real = svc.client
    svc.client = Crashing(real, post_n=2, when="after")
    with pytest.raises(Crash):
        await svc.submit(DAY)
    assert len(sb.mi) == 2  # Notify has lines 1 and 2; the ledger knows only line 1's id
    await real.aclose()

    svc = service(tmp_path, sb)  # restart
    res = await svc.submit(DAY)
    assert len(sb.mi) == 4  # lines 3 and 4 sent; line 2 not again
    assert posted(sb) == Counter({("group-0", 1): 1, ("group-1", 2): 1, ("group-2", 3): 1, ("group-3", 4): 1})
    uncertain = [e for e in Ledger(tmp_path / "mi").entries if e["state"] == "uncertain"]
    assert len(uncertain) == 1 and uncertain[0]["group_id"] == "group-1"
    assert any("uncertain" in s for s in res["skipped"])
    rep = svc.report(DAY)
    assert rep["uncertain"] == 1 and all(l["to_submit"] == 0 for l in rep["lines"])

    # a person finds the record at Notify: resolve verifies it, and nothing more is sent
    mi_id = next(i for i, r in sb.mi.items() if r["attributes"]["groupId"] == "group-1")
    msg = await svc.resolve(uncertain[0]["key"], mi_id=mi_id)
    assert "verified" in msg
    again = await svc.submit(DAY)
    assert again["sent"] == [] and again["skipped"] == [] and len(sb.mi) == 4
    assert sb.counts()["mi_post"] == 4
    await close(svc)


async def test_crash_before_post_then_operator_says_not_sent(sb, tmp_path):
    svc = service(tmp_path, sb)
    journal_day(svc, n_groups=2)
    real = svc.client
    svc.client = Crashing(real, post_n=1, when="before")
    with pytest.raises(Crash):
        await svc.submit(DAY)
    assert len(sb.mi) == 0
    await real.aclose()
    svc = service(tmp_path, sb)
    res = await svc.submit(DAY)
    assert len(sb.mi) == 1 and res["skipped"]  # the unknown one is held, the other sent
    key = next(e["key"] for e in Ledger(tmp_path / "mi").entries if e["state"] == "uncertain")
    with pytest.raises(UserError, match="either --mi-id"):
        await svc.resolve(key)
    assert "abandoned" in await svc.resolve(key, not_sent=True)
    res = await svc.submit(DAY)
    assert len(res["sent"]) == 1 and len(sb.mi) == 2
    assert posted(sb) == Counter({("group-0", 1): 1, ("group-1", 2): 1})
    with pytest.raises(UserError, match="not uncertain"):
        await svc.resolve(key.replace("#1", "#2"), not_sent=True)
    await close(svc)


async def test_crash_before_verify_rerun_verifies_without_posting(sb, tmp_path):
    svc = service(tmp_path, sb)
    journal_day(svc, n_groups=3)
    real = svc.client
    svc.client = Crashing(real, post_n=99, when="verify")
    with pytest.raises(Crash):
        await svc.submit(DAY)
    assert len(sb.mi) == 3
    await real.aclose()
    svc = service(tmp_path, sb)
    res = await svc.submit(DAY)
    assert res["sent"] == [] and len(res["verified"]) == 3 and len(sb.mi) == 3
    assert {e["state"] for e in Ledger(tmp_path / "mi").entries} == {"verified"}
    await close(svc)


async def test_later_events_go_as_a_new_entry_with_only_the_difference(sb, tmp_path):
    svc = service(tmp_path, sb)
    journal_day(svc, n_groups=1)
    await svc.submit(DAY)
    journal_day(svc, n_groups=1, t=T0 + 3600)  # one more piece for group-0 that day
    res = await svc.submit(DAY)
    assert [s["quantity"] for s in res["sent"]] == [1] and res["sent"][0]["key"].endswith("#2")
    assert sorted(r["attributes"]["quantity"] for r in sb.mi.values()) == [1, 1]
    await close(svc)


async def test_rate_limited_and_refused_and_server_errors(sb, tmp_path):
    svc = service(tmp_path, sb)
    journal_day(svc, n_groups=2)
    sb.faults.rate_limit_next = 1  # 429: nothing created, nothing recorded
    res = await svc.submit(DAY)
    assert "rate limited" in res["problems"][0] and len(sb.mi) == 0
    assert Ledger(tmp_path / "mi").entries == []
    res = await svc.submit(DAY)
    assert len(res["sent"]) == 2 and len(sb.mi) == 2

    # an unknown specification: 404, nothing created -> refused, and tried again next time
    svc.journal.record({"kind": "piece.franked", "device": "f", "letter_id": "X", "t": T0,
                        "specification_id": "no-such-spec", "group_id": "g", "postage": "economy"})
    res = await svc.submit(DAY)
    assert res["problems"] and "refused" in res["problems"][0] and len(sb.mi) == 2
    assert [e["state"] for e in Ledger(tmp_path / "mi").entries][-1] == "refused"

    # a 500 may have been processed: uncertain, never re-sent automatically
    svc.journal.record({"kind": "piece.franked", "device": "f", "letter_id": "Y", "t": T0,
                        "specification_id": "notify-c5", "group_id": "g5", "postage": "economy"})
    sb.faults.error_ratio = 1.0
    res = await svc.submit(DAY)
    sb.faults.error_ratio = 0.0
    # both the refused line (tried again) and the new one met the 500: both uncertain
    assert sum("uncertain" in p for p in res["problems"]) == 2
    before = sb.counts()["mi_post"]
    res = await svc.submit(DAY)
    assert sb.counts()["mi_post"] == before and res["sent"] == []
    assert sum("uncertain" in s for s in res["skipped"]) == 2
    await close(svc)


async def test_refusals_before_anything_is_sent(sb, tmp_path):
    svc = service(tmp_path, sb)
    journal_day(svc, n_groups=1)
    with pytest.raises(UserError, match="has not happened yet"):
        await svc.submit("2099-01-01")
    with pytest.raises(UserError, match="YYYY-MM-DD"):
        await svc.submit("last tuesday")
    with lock_submissions(tmp_path / "mi"):
        with pytest.raises(SubmissionBusy, match="another MI submission"):
            await svc.submit(DAY)
    # default line item names are not sent unless allowed
    strict = MiService(tmp_path / "strict", MiSettings(timezone="UTC"), load_packs(), svc.client,
                       clock=lambda: T0 + 86400)
    journal_day(strict, n_groups=1)
    res = await strict.submit(DAY)
    assert res["sent"] == [] and "default name" in res["skipped"][0]
    assert sb.counts().get("mi_post", 0) == 0
    strict.close()
    (tmp_path / "mi" / "ledger.json").write_text("{torn")
    with pytest.raises(UserError, match="not readable JSON"):
        await svc.submit(DAY)
    await close(svc)


def test_journal_survives_a_torn_line_and_reopens(tmp_path):
    svc = MiService(tmp_path, SETTINGS, load_packs(), None, clock=time.time)
    journal_day(svc, n_groups=1)
    svc.close()
    path = next((tmp_path / "mi").glob("events-*.jsonl"))
    with open(path, "ab") as f:
        f.write(b'{"t": 1, "use"')  # a power cut mid-line
    svc = MiService(tmp_path, SETTINGS, load_packs(), None)
    journal_day(svc, n_groups=1)
    svc.close()
    lines = svc.journal.read_day(DAY)
    assert len(lines) == 2 and all(l["use"] == {"postage:economy": 1} for l in lines)


async def test_daily_catch_up_submits_finished_days_only(sb, tmp_path):
    alerts = []
    svc = MiService(tmp_path, SETTINGS, load_packs(), mi_client(sandbox_api(sb.base_url)),
                    clock=lambda: T0 + 86400 * 2, alert=lambda s, m: alerts.append(m))  # it is 03-06
    journal_day(svc, n_groups=1, t=T0 - 86400 * 10)  # too old for catch-up
    journal_day(svc, n_groups=2, t=T0)               # 03-04
    journal_day(svc, n_groups=1, t=T0 + 86400 * 2)   # today: not over
    results = await svc.catch_up()
    assert [r["day"] for r in results] == ["2025-03-04"]
    assert sorted(r["attributes"]["timestamp"][:10] for r in sb.mi.values()) == ["2025-03-04"] * 2
    assert not alerts
    assert await svc.catch_up() == [{"day": "2025-03-04", "sent": [], "verified": [], "skipped": [],
                                     "problems": []}]
    assert len(sb.mi) == 2
    svc.settings = replace(SETTINGS, submit_at=time_of_day(6, 0))
    assert svc.next_run(T0) == T0 + 86400 - 4 * 3600  # 10:00 -> tomorrow 06:00 UTC
    await close(svc)
