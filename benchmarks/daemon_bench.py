"""Daemon start-up and memory: cold start to first poll, and peak RSS with 100 000 letters known.

1. Builds a state directory that already knows ``--known`` letters (archived, as after
   months of work), like a long-running appliance.
2. Starts ``appliance run`` as a fresh process against a sandbox (its own process) that
   offers ``--letters`` new letters, and measures the time from spawning the process to
   the sandbox receiving its first ``GET /letters`` (cold start to first poll).
3. Lets the daemon work all letters to a final status, then reads its peak RSS (VmHWM).

4. Asks the daemon's control socket for the console's letters listing (first page, and a
   page halfway through the history).

Prints one JSON line.  Usage: python benchmarks/daemon_bench.py [--known 100000]
[--letters 2000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.request import Request, urlopen

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.control.client import call  # noqa: E402
from appliance.runtime.demo import demo_profile_path  # noqa: E402
from appliance.store.store import Store  # noqa: E402


def build_history(state: Path, known: int) -> float:
    t0 = time.perf_counter()
    store = Store(state)
    for i in range(known):
        lid = f"old{i:09d}"
        store.add_letter(lid, "notify-c5", "g-old", "0" * 64)
        for s in ("ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED"):
            store.set_status(lid, s)
        if i % 2000 == 1999:
            store.outbox_ack([e["seq"] for e in store.outbox_pending()])
            store.flush()
    store.outbox_ack([e["seq"] for e in store.outbox_pending()])
    store.close()
    return time.perf_counter() - t0


def start_sandbox(letters: int, log: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "sandbox", "--port", "0", "--letters",
                             str(letters), "--seed", "9", "--log", str(log)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    m = re.search(r"(http://[0-9.]+:\d+)", proc.stdout.readline())
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, m.group(1)


def first_list_time(log: Path) -> float | None:
    """Wall-clock time of the first GET /letters the sandbox logged (from the daemon)."""
    if not log.exists():
        return None
    for line in log.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("method") == "GET" and r.get("path") == "/letters" and r.get("headers", {}).get("x-request-id") != "bench":
            return r["time"]
    return None


def sandbox_pending(url: str) -> int:
    req = Request(f"{url}/letters?limit=2500", headers={"X-Request-ID": "bench"})
    return len(json.loads(urlopen(req).read())["data"])


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def listing_ms(sock: Path, known: int, repeat: int = 5) -> dict:
    """The console's letters listing over the control socket (a page of 100, as the letters
    screen asks): median milliseconds of ``repeat`` asks, first page and one halfway."""
    out = {}
    for name, extra in {"first_page": {}, "page_halfway": {"offset": known // 2}}.items():
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            call(sock, "letters", limit=100, **extra)
            times.append(1000 * (time.perf_counter() - t0))
        out[name] = round(statistics.median(times), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--known", type=int, default=100_000)
    ap.add_argument("--letters", type=int, default=2000)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.known, a.letters = 2000, 50
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_s = build_history(tmp / "state", a.known)
        log = tmp / "sandbox.log"
        sandbox, url = start_sandbox(a.letters, log)
        cfg = tmp / "appliance.toml"
        cfg.write_text(f'[api]\nbase_url = "{url}"\nauth = "none"\n[poll]\ninterval = 0.2\n'
                       f'[paths]\nstate_dir = "{tmp / "state"}"\nprofile = "{demo_profile_path()}"\n')
        try:
            t0, wall0 = time.perf_counter(), time.time()
            daemon = subprocess.Popen([sys.executable, "-m", "appliance", "run", "--config", str(cfg),
                                       "--log-level", "ERROR", "--socket", str(tmp / "ctl.sock")], cwd=ROOT)
            first_poll = None
            while first_poll is None:
                if daemon.poll() is not None:
                    raise SystemExit("daemon exited")
                seen = first_list_time(log)
                if seen is not None:
                    first_poll = seen - wall0
                time.sleep(0.01)
            while sandbox_pending(url) > 0:
                time.sleep(0.1)
            work_s = time.perf_counter() - t0
            time.sleep(2.0)  # let printing and reporting of the last letters finish
            rss = vm_hwm_mb(daemon.pid)
            listing = listing_ms(tmp / "ctl.sock", a.known + a.letters)
            daemon.terminate()
            daemon.wait(30)
        finally:
            sandbox.terminate()
            sandbox.wait()
    print(json.dumps({"benchmark": "daemon", "known_letters": a.known, "new_letters": a.letters,
                      "history_build_s": round(build_s, 1),
                      "cold_start_to_first_poll_s": round(first_poll, 3),
                      "all_accepted_s": round(work_s, 2), "peak_rss_mb": round(rss, 1),
                      "console_listing_ms": listing}))


if __name__ == "__main__":
    main()
