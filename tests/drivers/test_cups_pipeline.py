"""Letters through the real pipeline onto CUPS queues backed by ippeveprinter emulators.

What counts is what the emulators received (every document they were sent is kept) and
what the sandbox API was told.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from appliance.core.routing import why_not
from tests.fixtures.cups_floor import ANY_STD, CAPS, GOOD_PATH, PACKS, wait_until, write_profile
from tests.fixtures.floor import Floor

pytestmark = pytest.mark.cups











def received_by(emulators) -> dict[str, Counter]:
    return {name: Counter(em.received()) for name, em in emulators.items()}


async def test_letters_are_routed_by_capability_and_printed_with_their_options(cups_fleet, tmp_path):
    server = cups_fleet.server
    profile = write_profile(tmp_path / "p.toml", server, [(n, CAPS[n], "") for n in CAPS])
    async with Floor.owning(tmp_path, profile, letters=16, seed=101) as floor:
        await floor.start_pipeline()
        assert await floor.pipe.run_until_idle(timeout=90)
        got = received_by(cups_fleet.emulators)
        specs = {p.name: p for p in floor.profile.printers}
        kinds = Counter()
        for letter in floor.sb.letters.values():
            pack = PACKS[letter.specification_id]
            assert floor.statuses(letter) == GOOD_PATH, (letter.id, floor.statuses(letter))
            where = [name for name, c in got.items() if c[letter.id]]
            assert len(where) == 1 and got[where[0]][letter.id] == 1, (letter.id, where)
            printer = where[0]
            assert why_not(specs[printer].caps, pack, floor.profile.print_features) is None
            attrs = cups_fleet.emulators[printer].attributes()[letter.id]
            assert attrs["IPP_PRINT_COLOR_MODE"] == ("color" if pack.colour else "monochrome")
            assert attrs["IPP_SIDES"] == ("two-sided-long-edge" if pack.duplex else "one-sided")
            kinds["braille" if "BRAILLE" in pack.features else "colour" if pack.colour else "mono"] += 1
            if "BRAILLE" in pack.features:
                assert printer == "embosser"
            if pack.colour:
                assert printer == "press-colour"
        assert kinds["braille"] and kinds["colour"] and kinds["mono"]


async def test_stopped_printer_gets_no_letters_and_raises_an_alert(cups_fleet, tmp_path):
    cups_fleet.run("cupsdisable", "press-mono")
    profile = write_profile(tmp_path / "p.toml", cups_fleet.server,
                            [("press-mono", ANY_STD, ""), ("press-colour", ANY_STD, ""),
                             ("embosser", CAPS["embosser"], "")])
    before = Counter(cups_fleet.emulators["press-mono"].received())
    async with Floor.owning(tmp_path, profile, letters=6, seed=202) as floor:
        await floor.start_pipeline()
        await wait_until(lambda: floor.pipe.device_state["press-mono"] == "stopped")
        assert await floor.pipe.run_until_idle(timeout=60)
        assert all(floor.statuses(l) == GOOD_PATH for l in floor.sb.letters.values())
        assert Counter(cups_fleet.emulators["press-mono"].received()) == before
        assert any("press-mono" in a and "stopped" in a for a in floor.alerts())


async def test_emulator_killed_mid_job_letter_rerouted_by_stall_policy(cups_sandbox, tmp_path):
    em = cups_sandbox.add_printer("stall-press", colour=True)
    em.hold()
    profile = write_profile(tmp_path / "p.toml", cups_sandbox.server,
                            [("stall-press", ANY_STD, 'stall_seconds = 1.5\non_stall = "reroute"'),
                             ("press-colour", ANY_STD, "")])
    try:
        async with Floor.owning(tmp_path, profile, letters=1, seed=303) as floor:
            await floor.start_pipeline()
            (letter,) = floor.sb.letters.values()
            await wait_until(lambda: letter.id in em.attributes())
            assert "PRINTED" not in floor.statuses(letter)
            em.kill()
            assert await floor.pipe.run_until_idle(timeout=60)
            assert floor.statuses(letter) == GOOD_PATH
            assert cups_sandbox.emulators["press-colour"].received().count(letter.id) == 1
            assert any("no progress" in a for a in floor.alerts())
            assert floor.pipe.device_state["stall-press"] == "stopped"
    finally:
        cups_sandbox.remove_printer("stall-press")


async def test_job_cancelled_in_cups_is_rerouted_never_printed_twice(cups_sandbox, tmp_path):
    em = cups_sandbox.add_printer("cancel-press", colour=True)
    em.hold()
    profile = write_profile(tmp_path / "p.toml", cups_sandbox.server,
                            [("cancel-press", ANY_STD, ""), ("press-colour", ANY_STD, "")])
    try:
        async with Floor.owning(tmp_path, profile, letters=1, seed=404) as floor:
            await floor.start_pipeline()
            (letter,) = floor.sb.letters.values()
            await wait_until(lambda: letter.id in em.attributes())
            job = floor.store.get(letter.id)["job"]
            cups_sandbox.run("cancel", job)
            assert await floor.pipe.run_until_idle(timeout=60)
            assert floor.statuses(letter) == GOOD_PATH
            assert cups_sandbox.emulators["press-colour"].received().count(letter.id) == 1
            assert any("job.canceled" in a and "rerouting" in a for a in floor.alerts())
    finally:
        cups_sandbox.remove_printer("cancel-press")


async def test_restart_mid_run_submits_no_job_twice(cups_fleet, tmp_path):
    profile = write_profile(tmp_path / "p.toml", cups_fleet.server, [(n, CAPS[n], "") for n in CAPS])
    for em in cups_fleet.emulators.values():
        em.hold()
    async with Floor.owning(tmp_path, profile, letters=12, seed=505) as floor:
        await floor.start_pipeline()
        # every printer is busy with one letter and has more queued behind it in CUPS
        await wait_until(lambda: all(any(l in em.attributes() for l in floor.sb.letters)
                                     for em in cups_fleet.emulators.values()))
        await wait_until(lambda: len(floor.store.letters(stage="printing")) >= 6)
        await floor.stop_pipeline()  # the appliance goes away mid-run
        for em in cups_fleet.emulators.values():
            em.release()
        await asyncio.sleep(1.5)  # CUPS finishes some jobs while nobody watches
        pipe = await floor.start_pipeline()
        assert await pipe.run_until_idle(timeout=90)
        got = received_by(cups_fleet.emulators)
        for letter in floor.sb.letters.values():
            assert sum(c[letter.id] for c in got.values()) == 1, (letter.id, got)
            assert floor.statuses(letter) == GOOD_PATH, (letter.id, floor.statuses(letter))
        assert pipe.counters["recovered"] >= 1  # jobs really were matched back, not resubmitted


async def test_a_full_printer_takes_no_more_letters_until_one_finishes(cups_sandbox, tmp_path):
    em = cups_sandbox.add_printer("cap-press", colour=True)
    em.hold()
    profile = write_profile(tmp_path / "p.toml", cups_sandbox.server,
                            [("cap-press", ANY_STD, "max_queued = 2")])
    try:
        async with Floor.owning(tmp_path, profile, letters=8, seed=606) as floor:
            pipe = await floor.start_pipeline()
            await wait_until(lambda: len(floor.store.letters(stage="printing")) == 2)
            await wait_until(lambda: pipe.snapshot()["waiting_for_printer"] >= 1)
            await asyncio.sleep(1.0)  # time enough for a third letter to slip through if it could
            jobs = cups_sandbox.run("lpstat", "-o", "cap-press").stdout.splitlines()
            assert len(jobs) == 2, jobs
            assert len(floor.store.letters(stage="printing")) == 2
            assert not any("no printer available" in a for a in floor.alerts())
            em.release()
            ok = await floor.pipe.run_until_idle(timeout=60)
            assert ok, ([(r["id"], r["stage"], r["status"]) for r in floor.store.in_flight()], pipe.snapshot())
            printed = [l for l in floor.sb.letters.values() if "PRINTED" in floor.statuses(l)]
            assert printed and all(floor.statuses(l) == GOOD_PATH for l in printed)
            assert Counter(em.received()) == Counter({l.id: 1 for l in printed})
    finally:
        cups_sandbox.remove_printer("cap-press")


async def test_operator_cancel_takes_back_a_job_the_printer_has_not_started(cups_sandbox, tmp_path):
    from appliance.pipeline.operator import Operator

    em = cups_sandbox.add_printer("cancel-take-back", colour=True)
    em.hold()
    profile = write_profile(tmp_path / "p.toml", cups_sandbox.server,
                            [("cancel-take-back", ANY_STD, "max_queued = 3")])
    try:
        async with Floor.owning(tmp_path, profile, letters=6, seed=707) as floor:
            pipe = await floor.start_pipeline()
            await wait_until(lambda: len(floor.store.letters(stage="printing")) == 3)
            await wait_until(lambda: len(em.attributes()) == 1)  # the first job is at the printer
            started = next(iter(em.attributes()))
            # and CUPS says so: until the appliance has seen job.processing, CUPS may still
            # take the job back (the race that made this test flaky)
            await wait_until(lambda: any(h["event"] == "job.processing"
                                         for h in floor.store.get(started)["history"]))
            waiting = [r["id"] for r in floor.store.letters(stage="printing") if r["id"] != started]
            op = Operator(pipe)
            said = await op.cancel(waiting[0])
            assert "withdrawn from cancel-take-back" in said, said
            said = await op.cancel(started)
            assert "still at cancel-take-back" in said and "pull it by hand" in said, said
            em.release()
            assert await floor.pipe.run_until_idle(timeout=90)
            got = Counter(em.received())
            assert got[waiting[0]] == 0  # never reached the printer
            assert got[started] == 1
            for lid in (waiting[0], started):
                assert floor.statuses(floor.sb.letters[lid])[-1] == "CANCELLED"
            others = [l for l in floor.sb.letters.values() if l.id not in (waiting[0], started)
                      and "PRINTED" in floor.statuses(l)]
            assert others and all(floor.statuses(l) == GOOD_PATH and got[l.id] == 1 for l in others)
    finally:
        cups_sandbox.remove_printer("cancel-take-back")
