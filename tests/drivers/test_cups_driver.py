"""The CUPS driver against a real private cupsd and ippeveprinter emulators."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from pathlib import Path

import pytest
from pypdf import PdfWriter

from appliance.core.packs import load_packs
from drivers.base import Work
from drivers.cups.ipp import CANCELED, COMPLETED
from drivers.cups.printer import CupsPrinter
from tests.fixtures.cups_env import Events

pytestmark = pytest.mark.cups

PACKS = load_packs()
_ids = itertools.count(1)


def letter_id(tag: str) -> str:
    return f"{tag}-{next(_ids):04d}"  # lower case: the emulator lower-cases file names


def make_pdf(path: Path, pages: int = 1) -> Path:
    w = PdfWriter()
    for _ in range(pages):
        w.add_blank_page(595, 842)
    w.write(path)
    return path




async def start_driver(sb, queue: str, tmp_path: Path, **settings) -> tuple[CupsPrinter, Events]:
    events = Events()
    drv = CupsPrinter(queue, {"server": sb.server, "notify_seconds": 0.1, "poll_seconds": 1.0, **settings},
                      events.append, state_dir=tmp_path)
    await drv.start()
    return drv, events


def work(tmp_path: Path, lid: str, pack_id: str = "notify-c5", **pack_changes) -> Work:
    pack = dataclasses.replace(PACKS[pack_id], **pack_changes)
    return Work(lid, make_pdf(tmp_path / f"{lid}.pdf", 2), pack, 2, 1)


async def test_ipp_options_seen_by_the_printer_match_the_pack(cups_fleet, tmp_path):
    drv, ev = await start_driver(cups_fleet, "press-colour", tmp_path)
    try:
        colour = letter_id("colour")
        mono_simplex = letter_id("simplex")
        await drv.submit(work(tmp_path, colour, "notify-c5-colour"))
        await drv.submit(work(tmp_path, mono_simplex, "notify-c5", duplex=False))
        await ev.wait(lambda: len(ev.of("job.completed")) == 2)
    finally:
        await drv.stop()
    seen = cups_fleet.emulators["press-colour"].attributes()
    assert seen[colour]["IPP_SIDES"] == "two-sided-long-edge"
    assert seen[colour]["IPP_PRINT_COLOR_MODE"] == "color"
    assert seen[mono_simplex]["IPP_SIDES"] == "one-sided"
    assert seen[mono_simplex]["IPP_PRINT_COLOR_MODE"] == "monochrome"
    for lid in (colour, mono_simplex):  # A4, not the emulator's default US letter
        assert "x-dimension=21000 y-dimension=29700" in seen[lid]["IPP_MEDIA_COL"]
    # every job went queued -> processing -> completed, and only once
    for lid in (colour, mono_simplex):
        kinds = [e.kind for e in ev if e.letter_id == lid and e.kind.startswith("job.")]
        assert kinds[0] == "job.queued" and kinds[-1] == "job.completed"
        assert "job.processing" in kinds and kinds.count("job.completed") == 1
    assert drv.health().counters["completed"] == 2
    assert drv.health().counters["events"] > 0  # tracked through the subscription


async def test_printed_only_after_the_emulator_completes(cups_fleet, tmp_path):
    em = cups_fleet.emulators["press-mono"]
    em.hold()
    drv, ev = await start_driver(cups_fleet, "press-mono", tmp_path)
    try:
        lid = letter_id("gated")
        await drv.submit(work(tmp_path, lid))
        await ev.wait(lambda: lid in em.attributes())  # the printer has it and is "printing"
        await ev.wait(lambda: ev.of("job.processing", lid))
        await asyncio.sleep(1.5)  # well past a normal job's ~1 s
        assert not ev.of("job.completed", lid)
        assert drv.health().state == "busy" and drv.health().queue_depth == 1
        em.release()
        await ev.wait(lambda: ev.of("job.completed", lid))
        assert drv.health().queue_depth == 0
    finally:
        em.release()
        await drv.stop()
    assert em.received().count(lid) == 1


async def test_emulator_killed_mid_job_wait_policy_alerts_and_never_prints(cups_sandbox, tmp_path):
    em = cups_sandbox.add_printer("victim-wait")
    em.hold()
    drv, ev = await start_driver(cups_sandbox, "victim-wait", tmp_path, stall_seconds=1.5, on_stall="wait")
    try:
        lid = letter_id("killed")
        job = await drv.submit(work(tmp_path, lid))
        await ev.wait(lambda: lid in em.attributes())
        em.kill()
        await ev.wait(lambda: any("no progress" in a for a in ev.alerts()))
        await ev.wait(lambda: "stopped" in ev.states())
        await asyncio.sleep(1.0)
        assert not ev.of("job.completed") and not ev.of("job.aborted")  # waits: no false PRINTED
        assert drv.health().queue_depth == 1  # still followed
        assert cups_sandbox.job_state(job) != COMPLETED
    finally:
        await drv.stop()
        cups_sandbox.remove_printer("victim-wait")


async def test_emulator_killed_mid_job_reroute_policy_cancels_and_aborts(cups_sandbox, tmp_path):
    em = cups_sandbox.add_printer("victim-reroute")
    em.hold()
    drv, ev = await start_driver(cups_sandbox, "victim-reroute", tmp_path, stall_seconds=1.5,
                                 on_stall="reroute")
    try:
        lid = letter_id("killed")
        job = await drv.submit(work(tmp_path, lid))
        await ev.wait(lambda: lid in em.attributes())
        em.kill()
        await ev.wait(lambda: ev.of("job.aborted", lid))
        assert "no progress" in ev.of("job.aborted", lid)[0].detail["reason"]
        assert not ev.of("job.completed")
        assert cups_sandbox.job_state(job) == CANCELED  # CUPS will not print it later
        assert "stopped" in ev.states()  # and no new letters go there
    finally:
        await drv.stop()
        cups_sandbox.remove_printer("victim-reroute")


async def test_disabled_queue_reroutes_unstarted_jobs_or_waits_per_policy(cups_sandbox, tmp_path):
    cups_sandbox.add_printer("disabled-q")
    cups_sandbox.run("cupsdisable", "disabled-q")
    rerouting, ev1 = await start_driver(cups_sandbox, "disabled-q", tmp_path, on_stop="reroute")
    waiting, ev2 = await start_driver(cups_sandbox, "disabled-q", tmp_path, on_stop="wait")
    try:
        assert rerouting.health().state == "stopped" and ev1.alerts()
        a, b = letter_id("stop-reroute"), letter_id("stop-wait")
        job_a = await rerouting.submit(work(tmp_path, a))
        await ev1.wait(lambda: ev1.of("job.aborted", a))
        assert cups_sandbox.job_state(job_a) == CANCELED
        await waiting.submit(work(tmp_path, b))
        await asyncio.sleep(1.0)
        assert not ev2.of("job.aborted", b) and not ev2.of("job.completed", b)
        cups_sandbox.run("cupsenable", "disabled-q")
        await ev2.wait(lambda: ev2.of("job.completed", b))
        await ev2.wait(lambda: waiting.health().state == "idle")
    finally:
        await rerouting.stop()
        await waiting.stop()
    em = cups_sandbox.emulators["disabled-q"]
    assert em.received() == [b]
    cups_sandbox.remove_printer("disabled-q")


async def test_job_cancelled_with_cancel_is_reported_not_printed(cups_fleet, tmp_path):
    em = cups_fleet.emulators["embosser"]
    em.hold()
    drv, ev = await start_driver(cups_fleet, "embosser", tmp_path)
    try:
        lid = letter_id("cancelled")
        job = await drv.submit(work(tmp_path, lid))
        await ev.wait(lambda: ev.of("job.processing", lid))
        cups_fleet.run("cancel", job)
        await ev.wait(lambda: ev.of("job.canceled", lid))
        em.release()
        await asyncio.sleep(0.5)
        assert not ev.of("job.completed", lid)
    finally:
        await drv.stop()


async def test_stopped_and_rejecting_printer_states_and_alerts(cups_fleet, tmp_path):
    drv, ev = await start_driver(cups_fleet, "press-mono", tmp_path)
    try:
        await ev.wait(lambda: ev.states() == ["idle"])
        cups_fleet.run("cupsdisable", "-r", "paper jam in tray 2", "press-mono")
        await ev.wait(lambda: ev.states()[-1] == "stopped")
        assert any("paper jam in tray 2" in a for a in ev.alerts())
        cups_fleet.run("cupsenable", "press-mono")
        await ev.wait(lambda: ev.states()[-1] == "idle")
        cups_fleet.run("cupsreject", "press-mono")
        await ev.wait(lambda: ev.states()[-1] == "stopped")
        assert any("rejects" in a for a in ev.alerts())
        cups_fleet.run("cupsaccept", "press-mono")
        await ev.wait(lambda: ev.states()[-1] == "idle")
    finally:
        await drv.stop()


async def test_pause_queue_mode_disables_and_resume_enables(cups_fleet, tmp_path):
    drv, ev = await start_driver(cups_fleet, "press-colour", tmp_path, pause_mode="queue")
    try:
        await drv.pause()
        assert ev.states()[-1] == "paused"
        assert "disabled" in cups_fleet.run("lpstat", "-p", "press-colour").stdout
        await drv.resume()
        await ev.wait(lambda: ev.states()[-1] == "idle")
        assert "disabled" not in cups_fleet.run("lpstat", "-p", "press-colour").stdout
    finally:
        await drv.stop()


async def test_reconcile_matches_jobs_by_job_name(cups_fleet, tmp_path):
    em = cups_fleet.emulators["press-mono"]
    first, ev1 = await start_driver(cups_fleet, "press-mono", tmp_path)
    done, held = letter_id("done"), letter_id("inflight")
    await first.submit(work(tmp_path, done))
    await ev1.wait(lambda: ev1.of("job.completed", done))
    em.hold()
    await first.submit(work(tmp_path, held))
    await ev1.wait(lambda: ev1.of("job.processing", held))
    await first.stop()  # the appliance goes away; CUPS keeps the job

    second, ev2 = await start_driver(cups_fleet, "press-mono", tmp_path)
    try:
        never = letter_id("never")
        found = await second.reconcile([done, held, never])
        assert found == {done: "job.completed", held: "job.processing", never: "absent"}
        em.release()
        await ev2.wait(lambda: ev2.of("job.completed", held))  # still followed after restart
    finally:
        em.release()
        await second.stop()
    assert em.received().count(held) == 1


async def test_unreachable_cups_is_offline_with_an_alert_not_a_traceback(tmp_path):
    from drivers.sim.cups_floor import free_port

    events = Events()
    drv = CupsPrinter("nowhere", {"server": f"127.0.0.1:{free_port()}", "poll_seconds": 0.2}, events.append,
                      state_dir=tmp_path)
    await drv.start()
    try:
        assert events.states() == ["offline"]
        assert any("does not answer" in a for a in events.alerts())
        lid = letter_id("unreachable")
        assert await drv.submit(work(tmp_path, lid)) == ""
        [aborted] = events.of("job.aborted", lid)
        # CUPS not answering is a service fault: the letter is printed again without using
        # one of its print attempts (two such submits in one outage ended a letter FAILED).
        assert aborted.detail.get("service_fault") is True
        assert await drv.reconcile([lid]) == {}  # cannot vouch: held for a person
    finally:
        await drv.stop()


async def test_missing_queue_is_offline_with_the_fix(cups_fleet, tmp_path):
    drv, ev = await start_driver(cups_fleet, "no-such-queue", tmp_path)
    try:
        assert ev.states() == ["offline"]
        assert any("lpadmin -p no-such-queue" in a for a in ev.alerts())
    finally:
        await drv.stop()


async def test_subscription_left_by_a_killed_run_is_cancelled_at_the_next_start(cups_fleet, tmp_path):
    import cups

    from drivers.cups.printer import EVENTS
    from drivers.cups.session import connect

    uri = "ipp://localhost/printers/press-colour"
    conn = connect(cups_fleet.server)
    foreign = conn.createSubscription(uri, events=EVENTS, lease_duration=600)  # someone else's, same events

    def live() -> set[int]:
        try:
            return {s["notify-subscription-id"] for s in conn.getSubscriptions(uri)}
        except cups.IPPError:  # CUPS answers "not found" when there are none
            return set()

    first, ev1 = await start_driver(cups_fleet, "press-colour", tmp_path)
    await ev1.wait(lambda: first._sub is not None)
    old = first._sub
    await first.stop_tasks()  # killed: its loops end with no chance to cancel its subscription
    assert old in live()

    second, ev2 = await start_driver(cups_fleet, "press-colour", tmp_path)
    try:
        await ev2.wait(lambda: second._sub is not None and second._sub != old)
        assert old not in live() and second._sub in live() and foreign in live()
        assert second.counters["stale_subscriptions"] == 1
    finally:
        await second.stop()
        conn.cancelSubscription(foreign)
    assert second._sub is None and not (live() & {old, foreign})


async def test_restart_sees_every_job_past_cupsds_500_job_answer_cap(cups_sandbox, tmp_path):
    """One Get-Jobs answer stops at 500 jobs; a letter behind them must not look absent
    (it would be printed again)."""
    cups_sandbox.add_printer("busy-press")
    cups_sandbox.run("cupsdisable", "busy-press")  # jobs stay queued, none printed
    pdf = make_pdf(tmp_path / "one.pdf", 1)
    from drivers.cups.session import connect
    conn = connect(cups_sandbox.server)
    try:
        names = [f"bulk-{i:04d}" for i in range(520)]
        for name in names:
            conn.printFile("busy-press", str(pdf), name, {})
        drv, _ = await start_driver(cups_sandbox, "busy-press", tmp_path)
        try:
            found = await drv.reconcile([names[0], names[-1], "bulk-never"])
        finally:
            await drv.stop()
        assert found == {names[0]: "job.queued", names[-1]: "job.queued", "bulk-never": "absent"}
    finally:
        cups_sandbox.remove_printer("busy-press")


async def test_restart_cancels_a_job_the_last_run_died_submitting_and_sends_the_letter_again(cups_fleet, tmp_path):
    """Killed between creating the CUPS job and sending its document: CUPS holds that job
    ("job-incoming", no document) for ever.  It must not pass for a letter at the printer."""
    from drivers.cups.ipp import CANCELED
    from drivers.cups.session import connect

    conn = connect(cups_fleet.server)
    lid = letter_id("halfsent")
    job_id = conn.createJob("press-mono", lid, {})  # the document never follows
    drv, _ = await start_driver(cups_fleet, "press-mono", tmp_path)
    try:
        found = await drv.reconcile([lid])
    finally:
        await drv.stop()
    assert found == {lid: "absent"}  # the pipeline submits it again, whole
    assert cups_fleet.job_state(job_id) == CANCELED
    assert drv.counters["incomplete_cancelled"] == 1
