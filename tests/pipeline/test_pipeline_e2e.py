"""Letters end to end against the real local sandbox: what did the API receive?"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from appliance.api.client import SupplierClient
from appliance.config.profile import load_profile
from appliance.config.settings import sandbox_api
from appliance.control.client import call
from appliance.core.packs import load_packs
from appliance.pipeline.pipeline import Pipeline, PipelineSettings
from appliance.runtime.demo import demo_profile_path
from appliance.sandbox import Sandbox, SandboxOptions, run_in_thread
from appliance.store.store import Store
from tests.fixtures import QUICK
from tests.fixtures.floor import check_sandbox_outcome


async def test_fifty_letters_end_to_end(tmp_path):
    sb = Sandbox(SandboxOptions(**QUICK, letters=50, bad_ratio=0.12, seed=7))
    await sb.start(host="127.0.0.1", port=0)
    store = Store(tmp_path / "state")
    client = SupplierClient(sandbox_api(sb.base_url))
    pipe = Pipeline(PipelineSettings(spool_dir=tmp_path / "state" / "spool", poll_interval=0.1, prove_after=0.2),
                    client, store, load_profile(demo_profile_path()), load_packs(),
                    state_dir=tmp_path / "state")
    try:
        await pipe.start()
        assert await pipe.run_until_idle(timeout=60)
    finally:
        await pipe.stop()
        await client.aclose()
        store.close()
        await sb.stop()

    kinds = Counter(letter.kind for letter in sb.letters.values())
    assert kinds["good"] >= 40 and len(kinds) >= 3  # the run really had bad PDFs of several kinds
    check_sandbox_outcome(sb, tmp_path / "state" / "output")
    reasons = {l.kind: l.reason_code for l in sb.letters.values() if l.kind != "good"}
    assert reasons.get("hash") == "HASH_MISMATCH"
    assert reasons.get("corrupt") == "PDF_UNREADABLE"
    assert reasons.get("sheets") in ("TOO_MANY_SHEETS", "TOO_MANY_SIDES")
    counts = sb.counts()
    # statuses went through batched POST /letters, not one PATCH per letter
    assert counts.get("patch", 0) == 0
    assert 0 < counts["post_letters"] < len(sb.letters)
    assert counts["data"] == len(sb.letters)
    # spool is cleaned after a final status
    assert not list((tmp_path / "state" / "spool").glob("*.pdf"))
    # braille letters were printed only by the braille device (its ledger is the page counter),
    # and no printed copy is kept once the letter is final (patient data)
    braille = [l.id for l in sb.letters.values() if "braille" in l.specification_id and l.kind == "good"]
    out = tmp_path / "state" / "output"
    printed = {json.loads(line)["letter_id"] for line in
               (out / "braille-embosser" / "printed.jsonl").read_text().splitlines()}
    assert braille and set(braille) <= printed
    assert not list(out.glob("*/*.pdf"))


def write_config(tmp_path: Path, base_url: str) -> Path:
    cfg = tmp_path / "appliance.toml"
    cfg.write_text(f"""
[api]
base_url = "{base_url}"
auth = "none"
[poll]
interval = 0.2
[outbox]
prove_after = 0.3
[paths]
state_dir = "{tmp_path / 'state'}"
profile = "{demo_profile_path()}"
""")
    return cfg


def outbox_proven(sock: Path) -> bool:
    """The daemon has read every update it sent back from the API (proven applied)."""
    try:
        return call(sock, "status")["outbox"] == 0
    except OSError:
        return False


def all_final(sb) -> bool:
    done = {"DISPATCHED", "REJECTED", "FAILED"}
    return all(l.status in done for l in sb.letters.values())


@pytest.mark.slow
def test_kill_9_mid_run_and_restart_loses_and_repeats_nothing(tmp_path):
    """The daemon is killed with SIGKILL three times mid-run; after restarts every letter
    is printed once and its statuses reached the API complete and in order."""
    rng = random.Random(11)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sock = tmp_path / "ctl.sock"
    with run_in_thread(SandboxOptions(**QUICK, letters=160, bad_ratio=0.1, seed=5)) as sb:
        cfg = write_config(tmp_path, sb.base_url)
        cmd = [sys.executable, "-m", "appliance", "run", "--config", str(cfg), "--log-level", "WARNING",
               "--socket", str(sock)]
        kills_mid_run = 0
        for _ in range(3):
            proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
            time.sleep(rng.uniform(0.7, 1.4))
            if proc.poll() is not None:
                pytest.fail(f"daemon exited early: {proc.stderr.read()}")
            proc.kill()
            proc.wait()
            kills_mid_run += not all_final(sb)
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 90
        while not (all_final(sb) and sock.exists() and outbox_proven(sock)) and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=30)[1]
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        assert all_final(sb), Counter(l.status for l in sb.letters.values())
        check_sandbox_outcome(sb, tmp_path / "state" / "output")
        assert kills_mid_run >= 2  # the kills really hit a run in progress
    # the store agrees and holds nothing in flight
    with Store(tmp_path / "state") as store:
        assert not store.in_flight()
        assert not store.outbox_pending()
        counts = store.counts()
        assert counts.get("DISPATCHED", 0) + counts.get("REJECTED", 0) == 160
