"""A demo that can run all day (issue 16 item 7): the real ``appliance demo`` in a subprocess,
and the simulated FM-200 that once lost a piece and hung one default demo run in 38."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import termios
import time
import tty
from pathlib import Path

import pytest

from drivers.serial.protocol import StxEtxFramer
from drivers.sim.serial_devices import Faults, start_simulator
from tests.fixtures import ROOT

ACK = 0x06


def _franker_framer() -> StxEtxFramer:
    return StxEtxFramer(0x02, 0x03, "crc16-ccitt", "body+etx", "ascii", "binary-be", 128,
                        control={0x06: "ack", 0x15: "nak"})


def test_a_host_frame_whose_crc_holds_the_ack_byte_is_a_command_not_the_answer(tmp_path):
    """The demo hang (179 DISPATCHED + 1 ENCLOSED): the FM-200 simulator, waiting for the
    host's ACK to one of its own frames, took the first 0x06 byte it read as that ACK, even
    inside a host frame.  ``P|...|articles-blind`` for the default demo's braille letter has
    CRC 06 EF: the command was cut, dropped, and its piece never franked."""
    framer = _franker_framer()
    piece = "P|0001|0057|1959b9ef58d04674b34de73d60c290d0|articles-blind"
    frame = framer.encode(piece)
    assert frame[-2] == ACK  # the case itself: the ACK byte inside the host's frame
    sim = start_simulator("fm200-stx", tmp_path / "fm200.tty", Faults(heartbeat=60, piece_seconds=0.001))
    fd = os.open(sim.link, os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd)
        termios.tcflush(fd, termios.TCIOFLUSH)

        def frames(timeout: float) -> list[str]:
            got: list[str] = []
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                r, _, _ = select.select([fd], [], [], 0.05)
                if r:
                    got += [f.text for f in framer.feed(os.read(fd, 4096)) if f.ok]
                elif got:
                    break
            return got

        assert frames(3.0) == ["H"]  # the machine now waits for our ACK (up to 2 s) ...
        os.write(fd, framer.encode("B|0001") + frame)  # ... and gets two commands first
        time.sleep(0.2)
        os.write(fd, bytes([ACK]))  # then the answer to its heartbeat
        seen: list[str] = []
        end = time.monotonic() + 5
        while time.monotonic() < end and not any(t.startswith("F|") for t in seen):
            for text in frames(0.5):
                seen.append(text)
                os.write(fd, bytes([ACK]))
        os.write(fd, framer.encode("E|0001"))
        assert piece in sim.received, f"the machine never took the piece; it heard {list(sim.received)}"
        assert any(t.startswith("F|0001|0057|") for t in seen), seen
    finally:
        os.close(fd)
        sim.stop()


def demo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real ``appliance demo`` of this tree, in its own process."""
    return subprocess.run([sys.executable, "-m", "appliance", "demo", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


def franked(state: Path) -> int:
    lines = (state / "devices" / "fm200" / "machine.jsonl").read_text().splitlines()
    return sum(json.loads(line)["outcome"] == "franked" for line in lines)


def test_the_operator_refills_the_franker_and_a_reused_state_folder_says_nothing_is_new(tmp_path):
    """A cartridge of 12 pieces (as the FM-200's 999 would run out on a day of 1 000 letters)
    is changed whenever it runs dry; --quiet still prints the table; the rate is letters
    finished over time; the same state folder and seed again is one line, at once."""
    state, summary = tmp_path / "state", tmp_path / "s.json"
    run = demo("--letters", "40", "--sim-option", "fm200:stock=12", "--state-dir", str(state), "--quiet",
               "--summary-json", str(summary))
    assert run.returncode == 0, run.stderr[-3000:]
    s = json.loads(summary.read_text())
    assert s["letters_finished"] == 40 and s["finished"]
    assert franked(state) == s["final_statuses"]["DISPATCHED"] > 12  # more than one cartridge
    # both are rounded in the summary (to 0.1), so from the shown seconds it is within 0.1
    assert s["letters_per_second"] == pytest.approx(40 / s["seconds"], abs=0.1)
    assert "final status" in run.stdout and "DISPATCHED" in run.stdout  # --quiet keeps the table
    assert run.stderr == ""  # ... and says nothing else

    again = demo("--letters", "40", "--state-dir", str(state), timeout=60)
    assert again.returncode == 0, again.stderr
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing new" in lines[0] and str(state) in lines[0] and "--seed" in lines[0]
    assert franked(state) == s["final_statuses"]["DISPATCHED"]  # nothing printed or franked again


def _demo_on_a_tty(*args: str, timeout: float = 120) -> tuple[int, str]:
    """The demo with its stderr on a pseudo-terminal (so it draws its progress line)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "demo", *args], cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    os.close(slave)
    out = bytearray()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([master], [], [], 0.5)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=30), out.decode("utf-8", "replace")


def test_a_demo_that_cannot_finish_names_what_is_stuck_keeps_its_folder_and_resumes_from_it(tmp_path):
    """Nobody refills a 5-piece cartridge: the demo times out, prints the open alerts and each
    stuck letter with its stage, keeps its temporary state folder and names it; run again on
    that folder (with the operator back), it resumes the same letters and finishes."""
    run = demo("--letters", "16", "--bad-ratio", "0", "--sim-option", "fm200:stock=5",
               "--sim-option", "fm200:refill_seconds=0", "--timeout", "8")
    assert run.returncode == 1
    kept = re.search(r"state kept in (\S+) ", run.stderr)
    assert kept, run.stderr[-2000:]
    state = Path(kept.group(1))
    try:
        assert state.is_dir() and (state / "hot.json").exists()
        assert re.search(r"open alerts: [1-9]", run.stderr)
        assert "INK" in run.stderr  # the cause, not only its consequences
        stuck = [line for line in run.stderr.splitlines() if re.match(r"  [0-9a-f]{32}  ", line)]
        assert len(stuck) == 16 - 5 and all(" stage " in line for line in stuck)
        assert "5 of 16 letters final" in run.stdout

        code, screen = _demo_on_a_tty("--letters", "16", "--bad-ratio", "0", "--state-dir", str(state),
                                      "--timeout", "60")
        assert code == 0, screen[-2000:]
        assert "resuming: 5 final, 11 unfinished" in screen
        assert franked(state) == 16  # the 11 waiting ones, and none of the 5 again
        # the progress line is redrawn in place and clears what a longer one left behind
        draws = [d for d in screen.split("\r") if " final " in d and "letters/s" in d]
        assert draws and all(d.endswith("\x1b[K") or "\x1b[K" in d for d in draws)
    finally:
        subprocess.run(["rm", "-rf", str(state)], check=False)


def test_a_mistake_in_the_demo_options_is_one_line_and_leaves_no_folder(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    for args, says in ((["--sim-option", "fm201:stock=3"], "no simulated machine fm201"),
                       (["--sim-option", "fm200:stok=3"], "unknown simulator option 'stok'"),
                       (["--metrics", "9464"], "--metrics: '9464' is not HOST:PORT")):
        run = subprocess.run([sys.executable, "-m", "appliance", "demo", "--letters", "1", *args], cwd=ROOT,
                             capture_output=True, text=True, timeout=60, env=env)
        assert run.returncode == 2 and says in run.stderr, run.stderr
        assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert not list(tmp_path.glob("appliance-demo-*"))
