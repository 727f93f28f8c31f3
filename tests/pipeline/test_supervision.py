"""Nothing stops silently: supervised tasks restart and alert, a task that keeps failing
makes the daemon unhealthy (so the watchdog lets systemd restart it), letters that sit too
long in a stage are alerted, and an intake worker killed mid-letter costs a retry."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from appliance.core.stuck import overdue
from appliance.core.supervisor import Supervisor
from appliance.intake.faults import RetryPolicy
from appliance.intake.pool import IntakePool, WorkerDied
from appliance.intake.settings import IntakeSettings
from tests.fixtures import hostile_pdfs
from tests.fixtures.floor import Floor, new_sandbox, statuses

GOOD_PATH = ["ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED"]


async def test_a_failing_task_is_logged_alerted_and_restarted(caplog):
    alerts, runs = [], []

    async def flaky():
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("boom")
        await asyncio.sleep(3600)

    sv = Supervisor(lambda source, message, letter_id=None: alerts.append(message),
                    backoff_first=0.01, backoff_max=0.02)
    sv.spawn("flaky", flaky)
    while len(runs) < 3:
        await asyncio.sleep(0.01)
    assert sv.healthy()
    assert [r["name"] for r in sv.report()] == ["flaky"] and sv.report()[0]["restarts"] == 2
    assert len(alerts) == 2 and "task flaky failed (RuntimeError: boom)" in alerts[0]
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1  # the traceback once; the repeat is one line
    await sv.stop()


async def test_a_task_that_keeps_failing_makes_the_supervisor_unhealthy():
    async def broken():
        raise OSError("disk on fire")

    sv = Supervisor(limit=3, window=60, backoff_first=0.001, backoff_max=0.001)
    sv.spawn("committer", broken)
    while sv.healthy():
        await asyncio.sleep(0.005)
    (task,) = sv.report()
    assert task["state"] == "failing" and "disk on fire" in task["last_error"]
    await sv.stop()


async def test_a_loop_that_returns_counts_as_a_failure():
    done = []

    async def ends():
        done.append(1)

    sv = Supervisor(backoff_first=0.01)
    sv.spawn("poll", ends)
    while len(done) < 2:
        await asyncio.sleep(0.01)
    assert "ended on its own" in sv.report()[0]["last_error"]
    await sv.stop()


async def test_the_poll_task_dying_is_restarted_and_letters_still_flow(tmp_path):
    sb = await new_sandbox(good=3)
    try:
        async with Floor(sb, tmp_path) as f:
            f.pipe.supervisor.backoff_first = 0.01
            real = f.client.list_letters
            calls = []

            async def crashing(limit=2500):  # an error no handler expected (a bug, fds out...)
                calls.append(1)
                if len(calls) <= 2:
                    raise RecursionError("maximum recursion depth exceeded")
                return await real(limit=limit)

            f.client.list_letters = crashing
            await f.wait_final(sb.letters)
            report = {t["name"]: t for t in f.pipe.snapshot()["tasks"]}
            assert report["poll"]["restarts"] == 2 and "RecursionError" in report["poll"]["last_error"]
            assert any("task poll failed" in m for m in f.alerts())
    finally:
        await sb.stop()
    assert all(statuses(sb, lid) == GOOD_PATH for lid in sb.letters)


def test_overdue_letters_by_stage():
    now = 10_000.0
    recs = [
        {"id": "a", "stage": "printing", "stage_at": now - 4000},
        {"id": "b", "stage": "printing", "stage_at": now - 10},
        {"id": "c", "stage": "operator-hold", "stage_at": now - 99999},  # a person has it
        {"id": "d", "stage": "new", "intake_retry_at": now + 5, "created": now - 99999},  # scheduled
        {"id": "e", "stage": "new", "intake_retry_at": now - 600},  # due long ago: lost
        {"id": "f", "stage": "franking", "created": now - 2000},
    ]
    assert {(i, s) for i, s, _ in overdue(recs, now, 1800)} == {("a", "printing"), ("e", "new"),
                                                                 ("f", "franking")}


async def test_a_letter_stuck_in_a_stage_is_alerted_once(tmp_path):
    sb = await new_sandbox(good=2)
    try:
        async with Floor(sb, tmp_path, stage_deadline=0.3, sweep_interval=0.05) as f:
            await f.pipe.devices["franker-1"].pause()  # the franker stops taking pieces
            f.pipe.device_state["franker-1"] = "paused"
            await f.wait(lambda: any("in stage" in m for m in f.alerts()), timeout=20)
            await asyncio.sleep(0.3)
            stuck = [m for m in f.alerts() if "in stage" in m]
            assert len(stuck) == len({a.letter_id for a in f.pipe.alerts if "in stage" in a.message})
    finally:
        await sb.stop()


async def test_a_lost_intake_letter_is_taken_again(tmp_path):
    sb = await new_sandbox(good=1)
    lost = sb.add_letter()
    sb.pending.pop(lost)  # the poll will not bring it: only the sweeper can
    try:
        async with Floor(sb, tmp_path, stage_deadline=0.2, sweep_interval=0.05) as f:
            await f.wait_final([i for i in sb.letters if i != lost])
            letter = sb.letters[lost]
            f.store.add_letter(lost, letter.specification_id, letter.group_id, letter.sha256)
            f.store.update(lost, intake_retry_at=1.0)  # "due" long ago, never handed to intake
            await f.wait_final([lost])
            assert any("nothing to fetch it" in m for m in f.alerts())
    finally:
        await sb.stop()
    assert statuses(sb, lost) == GOOD_PATH


async def test_an_intake_worker_killed_mid_download_costs_that_letter_one_retry(tmp_path):
    sb = await new_sandbox(good=3)
    slow = sb.add_letter(storage_faults=["drip"])  # keeps its download worker busy for a while
    quick = IntakeSettings(workers=1, fetchers=2, download_seconds=30, retry=RetryPolicy(first=0.1, cap=0.2))
    try:
        async with Floor(sb, tmp_path, intake=quick) as f:
            await f.wait(lambda: any(r.kind == "presigned" and slow in r.path for r in sb.log))
            await asyncio.sleep(0.3)
            for pid in f.pipe.pool.worker_pids():
                os.kill(pid, signal.SIGKILL)  # an operator, or the OOM killer
            await f.wait_final(sb.letters, timeout=30)
            rec = f.store.get(slow)
    finally:
        await sb.stop()
    assert statuses(sb, slow) == GOOD_PATH
    # a download does not read the PDF: its worker's death is no mark against the letter
    assert not rec.get("intake_deaths")
    assert any("download worker was killed" in h.get("event", "") for h in rec["history"])
    assert all(statuses(sb, lid) == GOOD_PATH for lid in sb.letters)


async def _kill_during_check(f, sb, lid: str, nth: int) -> None:
    """SIGKILL the workers while letter ``lid``'s ``nth`` check is running."""
    await f.wait(lambda: len([r for r in sb.log if r.kind == "presigned" and lid in r.path]) >= nth
                 and f.pipe.pool.busy)
    await asyncio.sleep(0.3)  # into the check (about a second of pypdf work)
    for pid in f.pipe.pool.worker_pids():
        os.kill(pid, signal.SIGKILL)


async def test_a_worker_killed_mid_check_is_replaced_and_the_letter_checked_again(tmp_path):
    sb = await new_sandbox(good=2)
    heavy = sb.add_letter(hostile_pdfs.objstm_bomb(streams=8, inflated_mb=1))
    quick = IntakeSettings(workers=1, fetchers=1, retry=RetryPolicy(first=0.1, cap=0.2))
    try:
        async with Floor(sb, tmp_path, intake=quick) as f:
            await _kill_during_check(f, sb, heavy, 1)
            await f.wait_final(sb.letters, timeout=60)
            rec = f.store.get(heavy)
    finally:
        await sb.stop()
    assert statuses(sb, heavy) == GOOD_PATH and rec["intake_deaths"] == 1
    assert all(statuses(sb, lid) == GOOD_PATH for lid in sb.letters)


async def test_a_letter_whose_check_kills_its_worker_twice_is_rejected_naming_the_limit(tmp_path):
    sb = await new_sandbox(good=1)
    heavy = sb.add_letter(hostile_pdfs.objstm_bomb(streams=8, inflated_mb=1))
    quick = IntakeSettings(workers=1, fetchers=1, retry=RetryPolicy(first=0.1, cap=0.2))
    try:
        async with Floor(sb, tmp_path, intake=quick) as f:
            await _kill_during_check(f, sb, heavy, 1)
            await _kill_during_check(f, sb, heavy, 2)
            await f.wait_final(sb.letters, timeout=60)
    finally:
        await sb.stop()
    assert statuses(sb, heavy) == ["REJECTED"] and sb.letters[heavy].reason_code == "PDF_TOO_COMPLEX"
    assert "worker was killed" in sb.letters[heavy].reason_text and "2 times" in sb.letters[heavy].reason_text


@pytest.mark.parametrize("mode", ["deep_json", "gzip_bomb", "deep_error", "huge_body"])
async def test_a_broken_letter_list_is_an_api_error_the_poll_survives(tmp_path, mode):
    sb = await new_sandbox(good=2)
    sb.faults.hostile, sb.faults.hostile_count = mode, 2
    try:
        async with Floor(sb, tmp_path) as f:
            await f.wait_final(sb.letters)
            assert any("cannot list letters" in m for m in f.alerts())
            assert not f.pipe.snapshot()["tasks"]  # nothing crashed: an error, handled
    finally:
        await sb.stop()


async def test_the_pool_enforces_cpu_memory_and_time_per_task_and_replaces_workers():
    from tests.fixtures import pool_tasks

    pool = IntakePool(IntakeSettings(workers=1, fetchers=1, memory_mb=256, cpu_seconds=1, task_seconds=3))
    pool.start()
    try:
        with pytest.raises(WorkerDied) as cpu:
            await pool.run(pool_tasks.spin, {})
        assert cpu.value.kind == "cpu" and "CPU limit (1 s)" in str(cpu.value)
        assert (await pool.run(pool_tasks.hog, {})) == {"ok": False, "memory": True}
        with pytest.raises(WorkerDied) as slow:
            await pool.run(pool_tasks.sleep, {"seconds": 60}, timeout=1)
        assert slow.value.kind == "timeout"
        assert (await pool.run(pool_tasks.echo, {"value": 7}))["job"] == 7  # replaced, still serving
        assert pool.deaths == 2
    finally:
        pool.stop()


async def test_download_links_are_asked_for_while_other_letters_download(tmp_path):
    """A letter held its download worker's slot while it waited for /data's answer, so
    against a slow API the workers idled (50 ms of latency: 8 slots, at most 160 letters/s).
    Now it holds a link slot (2 x fetchers) for that, and a fetch slot only to download:
    with one fetcher and /data answering after 0.3 s, two asks are outstanding at once."""
    sb = await new_sandbox(good=6)
    sb.faults.latency_ms = 300
    sb.faults.scope = {"data"}
    quick = IntakeSettings(workers=1, fetchers=1, retry=RetryPolicy(first=0.1, cap=0.2))
    try:
        async with Floor(sb, tmp_path, intake=quick) as f:
            await f.wait_final(sb.letters, timeout=60)
    finally:
        await sb.stop()
    asked = sorted(r.time for r in sb.log if r.kind == "data")
    assert len(asked) >= 6
    assert min(b - a for a, b in zip(asked, asked[1:])) < 0.15  # overlapping, not one after another
    assert all(statuses(sb, lid) == GOOD_PATH for lid in sb.letters)
