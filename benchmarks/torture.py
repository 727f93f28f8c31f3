"""Torture run: kill -9 the real daemon N times mid-run and prove nothing was lost or repeated.

The floor is real where it can be: a private cupsd with one ippeveprinter emulator per
printer of the serial-floor profile (driver "cups"), and the LF-3000 inserter and FM-200
franking machine simulated on ptys in their own long-lived processes (they survive the
daemon's deaths like real machines and log what they really did).  The daemon
(``python -m appliance run``) is SIGKILLed at random moments (seeded) and restarted each
time.  Pieces the daemon puts on operator hold are settled over the control socket the way
an operator would, from the machines' own logs.  At the end the daemon is stopped with
SIGTERM and the invariants are checked from the sandbox's records, the emulators' received
jobs and the store (opened read-only).  Prints one JSON line.

    .venv/bin/python benchmarks/torture.py --letters 100 --kills 10 --seed 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.config.profile import load_profile  # noqa: E402
from appliance.control.client import call  # noqa: E402
from appliance.runtime.cups_demo import cups_profile_text  # noqa: E402
from appliance.sandbox import SandboxOptions, run_in_thread  # noqa: E402
from appliance.store.store import Store  # noqa: E402
from drivers.sim.cups_floor import CupsSandbox, missing_binaries, sandbox_root  # noqa: E402
from drivers.sim.floor_operator import machine_truth  # noqa: E402
from drivers.sim.floor_operator import outcome as settle_outcome  # noqa: E402

GOOD_PATH = ["ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED"]
FINAL = {"DISPATCHED", "REJECTED", "FAILED", "CANCELLED"}
BASE_PROFILE = ROOT / "appliance" / "profiles" / "serial-floor.toml"




def start_machines(work: Path) -> tuple[dict[str, subprocess.Popen], dict[str, Path], dict[str, Path]]:
    """Inserter and franker simulators in their own process each (they outlive daemon kills)."""
    procs, links, logs = {}, {}, {}
    for name, proto in (("lf3000", "lf3000-ascii"), ("fm200", "fm200-stx")):
        links[name], logs[name] = work / f"{name}.tty", work / f"{name}.jsonl"
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "drivers.sim.serial_devices", "--protocol", proto, "--link", str(links[name]),
             "--log", str(logs[name]), "--option", "piece_seconds=0.002", "--option", "heartbeat=0.5",
             # the franker's cartridge lasts 999 pieces: an operator changes it a second after it runs out
             "--option", "refill_seconds=1"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(work / f"{name}.err", "w"))
    deadline = time.monotonic() + 10
    while not all(p.exists() for p in links.values()):
        if time.monotonic() > deadline:
            raise RuntimeError("serial simulators did not publish their ports")
        time.sleep(0.05)
    return procs, links, logs


def profile_text(server: str, links: dict[str, Path]) -> str:
    base = load_profile(BASE_PROFILE)
    text = cups_profile_text(base, server)
    text = text[:text.index("[[inserter]]")]  # printers on CUPS; finishing on the pty machines below
    return text + f"""
[[inserter]]
name = "lf3000"
driver = "serial"
protocol = "lf3000-ascii"
port = "{links['lf3000']}"
reconnect_max = 0.5

[[franker]]
name = "fm200"
driver = "serial"
protocol = "fm200-stx"
port = "{links['fm200']}"
reconnect_max = 0.5
dispatch_on = "franked"
"""


class Operator:
    """Settles held pieces over the control socket from what the machines really did."""

    def __init__(self, sock: Path, logs: dict[str, Path]):
        self.sock, self.logs = sock, logs
        self.resolved: Counter[str] = Counter()
        self.reprinted: set[str] = set()

    def settle(self) -> int:
        if not self.sock.exists():
            return 0
        try:
            held = call(self.sock, "letters", stage="operator-hold", limit=5000)
        except Exception:  # daemon starting or just killed
            return 0
        rows = held.get("letters", held) if isinstance(held, dict) else held
        truth = machine_truth(self.logs)
        done = self._retry_unsure()
        for row in rows or []:
            lid = row["id"] if isinstance(row, dict) else row
            outcome = settle_outcome(lid, truth, inserters=["lf3000"], frankers=["fm200"])
            try:
                call(self.sock, "resolve", id=lid, outcome=outcome)
            except Exception:
                continue
            self.resolved[outcome] += 1
            if outcome == "reprint":
                self.reprinted.add(lid)
            done += 1
        return done


    def _retry_unsure(self) -> int:
        """An ACCEPTED in flight at a kill was never answered: the daemon cannot know whether
        Notify applied it, so it asks a person (stage accept-unsure).  With one floor nobody
        else can have printed it: the operator says print it (``retry``)."""
        try:
            rows = call(self.sock, "letters", stage="accept-unsure", limit=5000).get("letters", [])
        except Exception:  # daemon starting or just killed
            return 0
        done = 0
        for row in rows:
            try:
                call(self.sock, "retry", id=row["id"])
            except Exception:
                continue
            self.resolved["retry-unsure"] += 1
            done += 1
        return done


def outbox_proven(sock: Path) -> bool:
    """The daemon has read back every update it sent (proven applied at the API)."""
    try:
        return call(sock, "status")["outbox"] == 0
    except (OSError, ValueError):
        return False


VT = 20.0  # seconds: the sandbox's listing visibility timeout, scaled down from Notify's 300


def run_torture(work: Path, letters: int = 100, kills: int = 10, seed: int = 1,
                kill_after: tuple[float, float] = (0.8, 3.0), deadline: float = 600.0,
                bad_ratio: float = 0.1) -> dict:
    if missing_binaries():
        raise RuntimeError(f"CUPS binaries missing: {missing_binaries()}")
    t0 = time.monotonic()
    rng = random.Random(seed)
    work.mkdir(parents=True, exist_ok=True)
    cups_root = sandbox_root()
    floor = CupsSandbox(cups_root)
    machines: dict[str, subprocess.Popen] = {}
    proc = None
    try:
        floor.start()
        for p in load_profile(BASE_PROFILE).printers:
            floor.add_printer(p.name, duplex=p.caps.duplex, colour=p.caps.colour)
        machines, links, logs = start_machines(work)
        profile = work / "torture.toml"
        profile.write_text(profile_text(floor.server, links))
        sock = work / "ctl.sock"
        operator = Operator(sock, logs)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # The deployed server's behaviour, its ~1 s apply lag cut to 50 ms and its 300 s
        # listing visibility to VT (crash safety is the subject here): a kill between a list
        # answer and the store's commit hides those letters until VT ends, as at Notify, and
        # with 300 s that outlived the run's deadline whenever a loaded machine widened that gap.
        with run_in_thread(SandboxOptions(letters=letters, bad_ratio=bad_ratio, seed=seed, apply_delay=0.05,
                                          visibility_timeout=VT)) as sb:
            cfg = work / "appliance.toml"
            cfg.write_text(f'[api]\nbase_url = "{sb.base_url}"\nauth = "none"\n[poll]\ninterval = 0.2\n'
                           f'visibility_timeout = {VT}\naccept_margin = {VT / 4}\n'
                           f'[outbox]\nprove_after = 0.3\n[paths]\nstate_dir = "{work / "state"}"\nprofile = "{profile}"\n')
            cmd = [sys.executable, "-m", "appliance", "run", "--config", str(cfg), "--log-level", "WARNING",
                   "--socket", str(sock)]
            errlog = open(work / "daemon.err", "a")

            def all_final() -> bool:
                return all(l.status in FINAL for l in sb.letters.values())

            kills_mid_run = 0
            for _ in range(kills):
                proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=errlog)
                time.sleep(rng.uniform(*kill_after))
                operator.settle()
                if proc.poll() is not None:
                    raise RuntimeError(f"daemon exited early with {proc.returncode}; see {work / 'daemon.err'}")
                kills_mid_run += not all_final()
                proc.kill()
                proc.wait()
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=errlog)
            end = time.monotonic() + deadline
            while time.monotonic() < end:
                operator.settle()
                if all_final() and sock.exists() and outbox_proven(sock):
                    break
                time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            rc, proc = proc.returncode, None
            result = check(sb, floor, work / "state", operator, letters)
        result.update(kills=kills, kills_mid_run=kills_mid_run, daemon_exit=rc,
                      seconds=round(time.monotonic() - t0, 1), seed=seed)
        return result
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        for m in machines.values():
            m.send_signal(signal.SIGINT)
            try:
                m.wait(5)
            except subprocess.TimeoutExpired:
                m.kill()
        floor.stop()
        shutil.rmtree(cups_root, ignore_errors=True)


def check(sb, floor: CupsSandbox, state: Path, operator: Operator, letters: int) -> dict:
    prints: Counter[str] = Counter()
    for em in floor.emulators.values():
        prints.update(em.received())
    duplicates = lost = out_of_order = 0
    finals: Counter[str] = Counter()
    problems = []
    for letter in sb.letters.values():
        finals[letter.status] += 1
        statuses = letter.supplier_statuses()
        allowed = 1 + (letter.id in operator.reprinted)
        if letter.status not in FINAL:
            lost += 1
            problems.append((letter.id, "not final", statuses))
            continue
        if letter.kind == "good":
            if prints[letter.id] > allowed:
                duplicates += prints[letter.id] - allowed
                problems.append((letter.id, "printed", prints[letter.id]))
            if letter.status == "DISPATCHED" and prints[letter.id] == 0:
                lost += 1
                problems.append((letter.id, "dispatched unprinted", statuses))
            if statuses != GOOD_PATH:
                out_of_order += 1
                problems.append((letter.id, "statuses", statuses))
        else:
            if statuses != ["REJECTED"] or prints[letter.id]:
                out_of_order += 1
                problems.append((letter.id, letter.kind, statuses, prints[letter.id]))
    store_ok, in_flight, outbox = True, -1, -1
    try:
        with Store(state, readonly=True) as store:
            in_flight = len(store.in_flight())
            outbox = len(store.outbox_pending())
    except Exception as e:  # a corrupt store is a failure of the run, reported, not raised
        store_ok = False
        problems.append(("store", repr(e)))
    return {"letters": letters, "final": dict(finals), "duplicates": duplicates, "lost": lost,
            "out_of_order": out_of_order, "holds_resolved": sum(operator.resolved.values()),
            "holds_by_outcome": dict(operator.resolved), "store_ok": store_ok, "in_flight_left": in_flight,
            "outbox_left": outbox, "jobs_received": sum(prints.values()), "problems": problems[:10]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--letters", type=int, default=100)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kill-min", type=float, default=0.8, help="seconds the daemon lives at least")
    p.add_argument("--kill-max", type=float, default=3.0)
    p.add_argument("--deadline", type=float, default=900.0, help="seconds to finish after the last kill")
    p.add_argument("--workdir", type=Path, default=None)
    a = p.parse_args(argv)
    work = a.workdir or Path(f"/tmp/torture-{os.getpid()}")
    result = run_torture(work, a.letters, a.kills, a.seed, (a.kill_min, a.kill_max), a.deadline)
    print(json.dumps(result))
    ok = not (result["duplicates"] or result["lost"] or result["out_of_order"]) and result["store_ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
