"""``systemctl reload appliance`` = SIGHUP to a real ``appliance run``: the daemon re-reads its
floor profile, starts the printers added to it, stops removed idle ones, never one with a
letter at it, keeps the old floor when the new profile does not load, and goes on printing.
"""

from __future__ import annotations

import json
import signal
import socket
from collections import Counter

from appliance.runtime.demo import demo_profile_path
from appliance.sandbox import SandboxOptions, run_in_thread
from tests.fixtures import QUICK
from tests.fixtures.appliance_process import ApplianceProcess, wait_until

# First in the profile, so routing's ties give it the first letter it can print; it never
# finishes one (an hour per job) and holds one at most: a printer with work on it.
SLOW = """[[printer]]
name = "slow-press"
driver = "file"
paper_sizes = ["A4"]
max_weight_gsm = 100
colour = true
duplex = true
max_queued = 1
job_seconds = 3600

"""
# A printer no pack's paper fits: it never gets a letter, so it is idle whenever asked.
SPARE = """
[[printer]]
name = "spare-press"
driver = "file"
paper_ids = ["paper-nobody-uses"]
duplex = true
"""


def _notes(listener: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(listener.recv(4096).decode())
        except BlockingIOError:
            return out


def test_sighup_reloads_the_floor_without_dropping_work(tmp_path, monkeypatch):
    demo = demo_profile_path().read_text()
    profile = tmp_path / "floor.toml"
    profile.write_text(demo)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    with run_in_thread(SandboxOptions(**QUICK, letters=10, seed=7, bad_ratio=0)) as sb:
        app = ApplianceProcess(tmp_path / "box", sb.base_url)
        app.config.write_text(app.config.read_text().replace(str(demo_profile_path()), str(profile)))
        app.start()

        def dispatched() -> int:
            return sum(1 for x in list(sb.letters.values()) if x.status == "DISPATCHED")

        def devices() -> dict:
            s = app.status()
            return s["devices"] if s else {}

        try:
            assert wait_until(lambda: dispatched() == 10, 60), app.stderr_file.read_text()[-2000:]
            _notes(notify)

            # 1. Two printers added: both start, the first takes a letter and keeps it.
            profile.write_text(SLOW + demo + SPARE)
            app.proc.send_signal(signal.SIGHUP)
            assert wait_until(lambda: {"slow-press", "spare-press"} <= set(devices()), 30)
            sb.add_letters(10, bad_ratio=0)
            assert wait_until(lambda: dispatched() == 19 and devices()["slow-press"]["load"] == 1, 60), \
                (dispatched(), devices().get("slow-press"), app.stderr_file.read_text()[-2000:])
            notes = _notes(notify)
            assert any("RELOADING=1" in n for n in notes) and "READY=1" in notes[-1], notes

            # 2. A profile that does not load: one line, the floor as it was, still running.
            profile.write_text("[[printer]\nname = \n")
            app.proc.send_signal(signal.SIGHUP)
            assert wait_until(lambda: "reload refused" in app.stderr_file.read_text(), 30)
            assert app.proc.poll() is None
            assert {"slow-press", "spare-press", "mono-duplex"} <= set(devices())
            refused = [line for line in app.stderr_file.read_text().splitlines() if "reload refused" in line]
            assert len(refused) == 1 and "Traceback" not in app.stderr_file.read_text(), refused

            # 3. Both removed: the idle one goes, the one with a letter at it stays, said so.
            profile.write_text(demo)
            app.proc.send_signal(signal.SIGHUP)
            assert wait_until(lambda: "spare-press" not in devices(), 30)
            assert devices()["slow-press"]["load"] == 1
            err = app.stderr_file.read_text()
            assert "removed spare-press, kept slow-press (busy)" in err, err[-2000:]
            assert "slow-press has 1 letter(s) at it" in json.dumps(app.status()["alerts"])

            # Letters keep flowing on the reloaded floor.
            sb.add_letters(5, bad_ratio=0)
            assert wait_until(lambda: dispatched() == 24, 60), dispatched()
        finally:
            err = app.stop()
            notify.close()
    assert app.proc.returncode == 0, err[-2000:]
    printed = app.printed()
    assert printed and max(printed.values()) == 1, "a letter was printed twice"
    at_slow = [x for x in sb.letters.values() if x.status == "ACCEPTED"]
    assert len(at_slow) == 1 and Counter(x.status for x in sb.letters.values())["DISPATCHED"] == 24


def test_reload_plan_restarts_changed_idle_devices_and_keeps_busy_ones(tmp_path):
    """The pure decision: a changed idle printer is restarted, a changed busy one kept as it
    was; removed idle devices go, a removed busy one stays."""
    from appliance.config.profile import load_profile
    from appliance.runtime.reload import plan

    demo = demo_profile_path().read_text()
    (tmp_path / "old.toml").write_text(demo)
    old = load_profile(tmp_path / "old.toml")
    changed = tmp_path / "changed.toml"
    changed.write_text(demo.replace("job_seconds = 0.02", "job_seconds = 0.5")
                       .replace("job_seconds = 0.03", "job_seconds = 0.6"))
    new = load_profile(changed)
    p = plan(old, new, {"colour-press": 2})
    assert [s.name for s in p.add] == ["mono-duplex"] and p.drop == ["mono-duplex"]
    assert p.kept == {"colour-press": 2}
    kept = {s.name: s for s in p.profile.printers}
    assert kept["colour-press"] == old.printers[1] and kept["mono-duplex"] == new.printers[0]
    only_x = tmp_path / "x.toml"
    only_x.write_text('[[printer]]\nname = "x"\ndriver = "file"\n')
    p = plan(old, load_profile(only_x), {"inserter-1": 1})
    assert [s.name for s in p.add] == ["x"] and [s.name for s in p.profile.inserters] == ["inserter-1"]
    assert set(p.drop) == {"mono-duplex", "colour-press", "braille-embosser", "audio-cd", "franker-1"}
