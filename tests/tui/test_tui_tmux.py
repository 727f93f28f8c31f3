"""Smoke test: ``appliance tui`` in tmux against a running ``appliance demo --hold`` daemon."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.fixtures import ROOT

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
REPO = ROOT


def capture(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                          text=True).stdout


def wait_for(session: str, text: str, timeout: float = 25) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = capture(session)
        if text in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared; screen was:\n{screen}")


def test_tui_in_tmux_against_demo_daemon():
    tmp = Path(tempfile.mkdtemp(prefix="tmx-", dir="/tmp"))
    sock = tmp / "c.sock"
    session = f"appliance-smoke-{os.getpid()}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    demo = subprocess.Popen([sys.executable, "-m", "appliance", "demo", "--letters", "20", "--hold",
                             "--quiet", "--socket", str(sock), "--state-dir", str(tmp / "state")],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            if sock.exists():
                break
            time.sleep(0.1)
        assert sock.exists(), demo.stderr.read1().decode() if demo.poll() is not None else "no socket"
        cmd = f"cd {REPO} && PYTHONPATH={REPO} {sys.executable} -m appliance tui --socket {sock}"
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30", cmd], check=True)
        screen = wait_for(session, "fm200")  # the serial franking machine of the default demo floor
        assert "mono-duplex" in screen and ("● idle" in screen or "▶ busy" in screen)
        subprocess.run(["tmux", "send-keys", "-t", session, "p"], check=True)
        wait_for(session, "Pause mono-duplex?")
        subprocess.run(["tmux", "send-keys", "-t", session, "y"], check=True)
        wait_for(session, "‖ PAUSED")
        status = subprocess.run([sys.executable, "-m", "appliance", "status", "--socket", str(sock)],
                                env=env, cwd=REPO, capture_output=True, text=True)
        assert any(l.startswith("mono-duplex") and "paused" in l for l in status.stdout.splitlines())
        subprocess.run(["tmux", "send-keys", "-t", session, "2"], check=True)
        wait_for(session, "of 20 letters")
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        time.sleep(0.5)
        assert demo.poll() is None  # closing the console left the daemon running
        letters = subprocess.run([sys.executable, "-m", "appliance", "letters", "--socket", str(sock)],
                                 env=env, cwd=REPO, capture_output=True, text=True)
        assert "of 20 shown" in letters.stdout
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=15)
        except subprocess.TimeoutExpired:
            demo.kill()
        shutil.rmtree(tmp, ignore_errors=True)
