"""Pause a printer, cancel one of its letters, reprint another, resume -- over the control
socket, in several orders: every device's load and queue stay exact, the cancelled letter is
never printed, the reprinted one once.  A daemon stopped (Ctrl-C) mid-reprint exits 0 and
loses nothing: the next start finishes every letter, each printed once."""

import asyncio
import json
import signal
from collections import Counter
from pathlib import Path

import pytest

from appliance.control.client import ControlClient
from appliance.control.server import ControlServer
from tests.fixtures.appliance_process import ApplianceProcess, wait_until
from tests.fixtures.floor import FINAL, Floor, new_sandbox

#: One printer that can print every pack (so a paused press holds every letter), sheet
#: marks on (the printer gets <id>.r<run>.pdf copies), the demo's simulated finishing.
PROFILE = """
[profile]
name = "sequence"
on_no_printer = "hold"
print_attempts = 2

[marks]
default = { x_mm = 5, y_mm = 250, size_mm = 14 }

[[printer]]
name = "press"
driver = "file"
paper_sizes = ["A4"]
max_weight_gsm = 200
colour = true
duplex = true
features = ["BRAILLE", "AUDIO"]
marks = true
job_seconds = 0.3

[[inserter]]
name = "inserter-1"
driver = "sim"
piece_seconds = 0.002

[[franker]]
name = "franker-1"
driver = "sim"
piece_seconds = 0.001
"""

ORDERS = [
    ("pause", "cancel", "reprint", "resume"),
    ("pause", "reprint", "cancel", "resume"),
    ("cancel", "reprint", "pause", "resume"),
]


def printed(state: Path) -> Counter:
    out: Counter = Counter()
    for ledger in (state / "output").glob("*/printed.jsonl"):
        for line in ledger.read_text().splitlines():
            out[json.loads(line)["letter_id"]] += 1
    return out


def at_press_not_started(store) -> list[str]:
    """Letters handed to the press that it has not begun (newest last)."""
    recs = [r for r in store.letters(stage="printing") if r.get("device") == "press"
            and not any(h.get("event") == "job.processing" for h in r["history"][-3:])]
    return [r["id"] for r in sorted(recs, key=lambda r: r.get("print_run") or 0)]


def loads_exact(pipe) -> list[str]:
    """What is wrong with the devices' loads and queues: each must be what the store says
    is at that device, and the driver's queue what the pipeline thinks it gave it."""
    wrong = []
    at = Counter(r.get("device") for r in pipe.store.in_flight()
                 if r["stage"] in ("printing", "enclosing", "franking"))
    snap = pipe.snapshot()["devices"]
    for name in pipe.devices:
        load, queue = snap[name]["load"], snap[name]["queue_depth"]
        if load != at[name] or queue != at[name]:
            wrong.append(f"{name}: load {load}, queue {queue}, letters there {at[name]}")
    return wrong


async def settle(pipe, step: str, timeout: float = 5.0) -> None:
    """Loads and queues agree with the store once the hand-over under way is done (a leak
    stays: the defect kept a printer at load 2 / queue 1 for minutes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while wrong := loads_exact(pipe):
        assert loop.time() < deadline, (step, wrong)
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
async def test_pause_cancel_reprint_resume_keeps_loads_exact(tmp_path, sock_dir, order):
    profile = tmp_path / "profile.toml"
    profile.write_text(PROFILE)
    sb = await new_sandbox(good=0)
    try:
        async with Floor(sb, tmp_path, profile=profile) as f:
            server = ControlServer(f.pipe, sock_dir / "c.sock")
            await server.start()
            try:
                ids = sb.add_letters(6, bad_ratio=0)
                await f.wait(lambda: len(at_press_not_started(f.store)) >= 4, timeout=30)
                queued = at_press_not_started(f.store)
                cancel, reprint = queued[-1], queued[-2]
                async with ControlClient(server.path) as c:
                    for step in order:
                        if step == "pause":
                            assert await c.call("pause", device="press") == "press paused"
                        elif step == "resume":
                            await c.call("resume", device="press")
                        elif step == "cancel":
                            said = await c.call("cancel", id=cancel)
                            assert "withdrawn from press" in said or "before it reached press" in said, said
                        else:
                            assert "queued for reprint" in await c.call("reprint", id=reprint)
                        await settle(f.pipe, step)
                    await f.wait(lambda: all(sb.letters[i].status in FINAL for i in ids), timeout=60)
                    await f.wait(lambda: not loads_exact(f.pipe) and not f.store.in_flight(), timeout=10)
                    s = await c.call("status")
                    assert all((d["load"], d["queue_depth"]) == (0, 0) for d in s["devices"].values()), \
                        s["devices"]
                    assert f.pipe.devices["press"].health().queue_depth == 0
                    assert not [a for a in s["alerts"] if a["severity"] == "critical"], s["alerts"]
            finally:
                await server.stop()
        ledger = printed(tmp_path / "state")
        assert sb.letters[cancel].status == "CANCELLED" and ledger[cancel] == 0
        assert sb.letters[reprint].status == "DISPATCHED" and ledger[reprint] == 1
        for lid in set(ids) - {cancel}:
            assert sb.letters[lid].supplier_statuses() == ["ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED"]
            assert ledger[lid] == 1, (lid, ledger[lid])
    finally:
        await sb.stop()


async def test_ctrl_c_mid_reprint_exits_0_and_loses_nothing(tmp_path):
    profile = tmp_path / "profile.toml"
    profile.write_text(PROFILE.replace("job_seconds = 0.3", "job_seconds = 0.2"))
    sb = await new_sandbox(good=0)
    try:
        app = ApplianceProcess(tmp_path / "box", sb.base_url)
        app.config.write_text(app.config.read_text().replace(
            json.dumps(str(Path(app.config.read_text().split('profile = ')[1].splitlines()[0].strip('"')))),
            json.dumps(str(profile))))
        assert str(profile) in app.config.read_text()
        app.start()
        try:
            assert await asyncio.to_thread(wait_until, lambda: app.status() is not None, 30)
            ids = sb.add_letters(6, bad_ratio=0)

            def queued() -> list[str]:
                got = app.status()
                return [] if got is None else [r["id"] for r in _call(app, "letters", stage="printing")["letters"]]
            assert await asyncio.to_thread(wait_until, lambda: len(queued()) >= 5, 30)
            await asyncio.to_thread(_call, app, "pause", device="press")
            await asyncio.sleep(0.6)  # the job under way when it paused is done: the rest wait
            first, *others = (await asyncio.to_thread(queued))[-3:]
            await asyncio.to_thread(_call, app, "cancel", id=first)
            for lid in others:
                await asyncio.to_thread(_call, app, "reprint", id=lid)
            await asyncio.to_thread(_call, app, "resume", device="press")
            await asyncio.sleep(0.5)  # the press works through what it held before the pause
            app.proc.send_signal(signal.SIGINT)  # Ctrl-C with the reprints under way
            code = await asyncio.to_thread(app.proc.wait, 30)
            err = app.stderr_file.read_text()
            assert code == 0, err
            assert "Traceback" not in err and "FileNotFoundError" not in err, err
            app._err.close()
            app.start()  # the next start finishes every letter, each printed once
            assert await asyncio.to_thread(
                wait_until, lambda: all(sb.letters[i].status in FINAL for i in ids) and app.proven(), 60)
        finally:
            err = app.stop()
        assert "Traceback" not in err, err
        assert sb.letters[first].status == "CANCELLED"
        assert all(sb.letters[i].supplier_statuses() == ["ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED"]
                   for i in set(ids) - {first}), {i[:8]: sb.letters[i].supplier_statuses() for i in ids}
        assert printed(app.state) == Counter({i: 1 for i in set(ids) - {first}})
    finally:
        await sb.stop()


def _call(app, cmd, **args):
    from appliance.control.client import call
    return call(app.sock, cmd, **args)
