"""Backup and restore as the README says: stop the service, tar the state folder without
its spool, restore it on a fresh box, start again.  Nothing is printed twice (the floor's
own ledgers, restored with the state), the outbox resumes, and what the sandbox *applied*
ends complete and in order; letters whose PDFs were in the (unrestored) spool are fetched
again.
"""

from __future__ import annotations

import shutil
import subprocess
import time

from appliance.control.client import call
from appliance.core.errors import UserError
from appliance.sandbox import SandboxOptions, run_in_thread
from tests.fixtures.appliance_process import ApplianceProcess, wait_until

GOOD_PATH = ["ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED"]
VT = 3.0  # the sandbox's visibility timeout, scaled down from Notify's 300 s
POLL = {"visibility_timeout": VT, "accept_margin": 1.0}
LETTERS = 60


def _fetched(sb, since: float) -> set[str]:
    """Letters whose PDF was asked for (GET /letters/{id}/data) since then."""
    return {r.path.split("/")[-2] for r in list(sb.log) if r.time >= since and r.path.endswith("/data")}


def _operator(b: ApplianceProcess) -> bool:
    """What the README tells the operator after a restore: an ACCEPTED that was on its way
    when the box stopped and expired meanwhile is put before a person (accept-unsure); no
    other box prints here, so print it (retry)."""
    try:
        for rec in call(b.sock, "letters", stage="accept-unsure")["letters"]:
            call(b.sock, "retry", id=rec["id"])
    except (OSError, ValueError, UserError):  # not up yet
        pass
    return True


def _stuck(sb, b: ApplianceProcess) -> str:
    """Why the restored box did not finish: each letter not DISPATCHED, there and here."""
    out = []
    for lid, x in sb.letters.items():
        if x.status != "DISPATCHED":
            try:
                rec = call(b.sock, "letter", id=lid)
            except Exception as e:  # the failure message must not hide the failure
                rec = str(e)
            out.append(f"{lid}: sandbox {x.status} listed {len(x.listed)}x; box {str(rec)[:600]}")
    s = b.status() or {}
    return "\n".join(out + [f"updates {s.get('updates')}", b.stderr_file.read_text()[-1500:]])


def test_restore_on_a_fresh_box_resumes_without_printing_twice(tmp_path):
    opts = SandboxOptions(letters=LETTERS, bad_ratio=0, seed=16, visibility_timeout=VT, apply_delay=0.2)
    with run_in_thread(opts) as sb:
        def dispatched() -> int:
            return sum(1 for x in list(sb.letters.values()) if x.status == "DISPATCHED")

        a = ApplianceProcess(tmp_path / "old-box", sb.base_url, poll=POLL).start()
        try:
            # Stop it mid-run, with updates still in its outbox.
            assert wait_until(lambda: dispatched() >= 5 and (a.status() or {}).get("outbox", 0) > 0, 60)
        finally:
            err = a.stop()
        assert a.proc.returncode == 0, err[-2000:]
        assert dispatched() < LETTERS, "the run ended before the backup; nothing would resume"
        fetched_by_a = _fetched(sb, 0.0)
        spooled = fetched_by_a - set(a.printed())  # PDFs in the old box's spool, not yet printed

        # README "Backup and restore": the state folder without the spool (patient PDFs).
        archive = tmp_path / "appliance-state.tar.gz"
        subprocess.run(["tar", "--exclude=./spool", "-C", str(a.state), "-czf", str(archive), "."],
                       check=True)
        shutil.rmtree(a.home)  # the old box is gone, spool and all
        b = ApplianceProcess(tmp_path / "new-box", sb.base_url, poll=POLL)
        b.state.mkdir(mode=0o700)
        subprocess.run(["tar", "-xpzf", str(archive), "-C", str(b.state)], check=True)
        assert not (b.state / "spool").exists()
        restarted = time.time()
        b.start()
        try:
            assert wait_until(lambda: _operator(b) and dispatched() == LETTERS and b.proven(), 120), \
                _stuck(sb, b)
        finally:
            err = b.stop()
        assert b.proc.returncode == 0, err[-2000:]
    printed = b.printed()  # the restored ledgers: the old box's prints and the new box's
    assert set(printed) == set(sb.letters), "a letter was never printed"
    twice = [lid for lid, n in printed.items() if n > 1]
    assert not twice, f"printed twice after the restore: {twice}"
    bad = {lid: x.supplier_statuses() for lid, x in sb.letters.items() if x.supplier_statuses() != GOOD_PATH}
    assert not bad, f"statuses not applied complete and in order: {bad}"
    assert spooled <= _fetched(sb, restarted), "a letter whose PDF was in the old spool was not fetched again"
