"""Appliances against the faithful sandbox (as the deployed server behaves): one API app,
a visibility timeout, updates applied after the 202, a shared TPS limit.

Each appliance is a real ``appliance run`` process on the demo floor with its own state
folder; the sandbox runs in this process.  Prints one JSON line:

  one_box / two_boxes   N letters from a full queue: seconds until every letter is
                        DISPATCHED at the sandbox, letters/s together and per box, API
                        calls per letter (all kinds, and read-backs alone), 429s, let-gos,
                        and proof_lag_s = seconds after the last DISPATCHED until every
                        box had proven all its updates applied
  no_proofs             one box again with read-backs off (prove_after huge), side by
                        side with one_box: read-backs must cost intake nothing
  at_50_per_s           letters arriving at 50/s (a floor's pace) for --feed-seconds:
                        proof_lag_s after the last of them is DISPATCHED
  takeover              box A lists letters and is killed with SIGKILL; box B (running
                        all along) prints what A had listed: seconds from the kill until
                        the last of A's letters is DISPATCHED, against the timeout

Usage: python benchmarks/shared_app_bench.py [--letters 1000] [--vt 5] [--tps 300]
       [--feed-seconds 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.sandbox import SandboxOptions, run_in_thread  # noqa: E402
from tests.fixtures.appliance_process import ApplianceProcess, wait_until  # noqa: E402

API = ("list", "get", "data", "patch", "post_letters", "mi_post", "mi_get")


def boxes(home: Path, sb, n: int, vt: float, tps: int, **outbox) -> list[ApplianceProcess]:
    poll = {"visibility_timeout": vt, "accept_margin": round(vt * 0.35, 2)}
    return [ApplianceProcess(home / f"box-{i}", sb.base_url, poll=poll, api={"rate_limit": tps},
                             outbox=outbox or None) for i in range(n)]


def stop(bs: list[ApplianceProcess]) -> None:
    for b in bs:
        if b.proc is not None:
            b.stop()


def dispatched_at(sb) -> list[float]:
    return [t for letter in sb.letters.values() for s, t in letter.history if s == "DISPATCHED"]


def counters(bs: list[ApplianceProcess]) -> Counter:
    total: Counter = Counter()
    for b in bs:
        total.update((b.status() or {}).get("counters", {}))
    return total


def full_queue(home: Path, letters: int, n: int, vt: float, tps: int, wait_proofs: bool = True,
               **outbox) -> dict:
    with run_in_thread(SandboxOptions(letters=letters, bad_ratio=0, seed=7, visibility_timeout=vt,
                                      tps_limit=tps)) as sb:
        bs = boxes(home, sb, n, vt, tps, **outbox)
        t0 = time.time()
        for b in bs:
            b.start()
        try:
            done = wait_until(lambda: all(l.status == "DISPATCHED" for l in sb.letters.values()), 600)
            last = max(dispatched_at(sb), default=time.time())
            proven = wait_until(lambda: all(b.proven() for b in bs), 300) if wait_proofs else False
            proof_lag = round(time.time() - last, 1) if proven else None
            c = counters(bs)
            printed = [sum(b.printed().values()) for b in bs]
        finally:
            stop(bs)
        kinds = Counter(r.kind for r in sb.log if r.kind in API)
        seconds = last - t0
        return {"boxes": n, "letters": letters, "all_dispatched": done, "seconds": round(seconds, 1),
                "letters_per_s": round(letters / seconds, 1),
                "letters_per_s_per_box": [round(p / seconds, 1) for p in printed],
                "api_calls_per_letter": round(sum(kinds.values()) / letters, 2),
                "read_backs_per_letter": round(kinds["get"] / letters, 2),
                "calls": dict(kinds), "http_429": sum(1 for r in sb.log if r.status == 429),
                "let_go": c["let_go"], "updates_lost": c["updates_lost"], "proof_lag_s": proof_lag}


def at_rate(home: Path, per_s: int, seconds: float, vt: float, tps: int) -> dict:
    with run_in_thread(SandboxOptions(letters=0, bad_ratio=0, seed=8, visibility_timeout=vt,
                                      tps_limit=tps)) as sb:
        bs = boxes(home, sb, 1, vt, tps)
        bs[0].start()
        stop_feed = threading.Event()

        def feed() -> None:
            start = time.monotonic()
            made = 0
            while not stop_feed.is_set() and time.monotonic() - start < seconds:
                due = int((time.monotonic() - start) * per_s)
                if due > made:
                    sb.add_letters(due - made, bad_ratio=0)
                    made = due
                time.sleep(0.02)

        feeder = threading.Thread(target=feed, daemon=True)
        try:
            wait_until(lambda: bs[0].status() is not None, 30)
            feeder.start()
            feeder.join()
            wait_until(lambda: all(l.status == "DISPATCHED" for l in sb.letters.values()), 300)
            last = max(dispatched_at(sb), default=time.time())
            wait_until(bs[0].proven, 300, step=0.05)
            lag = round(time.time() - last, 1)
        finally:
            stop_feed.set()
            stop(bs)
        return {"per_s": per_s, "letters": len(sb.letters), "proof_lag_s": lag}


def takeover(home: Path, letters: int, vt: float, tps: int) -> dict:
    with run_in_thread(SandboxOptions(letters=letters, bad_ratio=0, seed=9, visibility_timeout=vt,
                                      tps_limit=tps)) as sb:
        a, b = boxes(home, sb, 2, vt, tps)
        try:
            a.start()
            wait_until(lambda: any(l.listed for l in sb.letters.values()), 60, step=0.01)
            time.sleep(0.05)  # A holds a listing now, most of it not yet ACCEPTED
            a.kill()
            killed = time.time()
            orphans = [lid for lid, l in sb.letters.items() if l.listed and l.status == "PENDING"]
            b.start()
            wait_until(lambda: all(sb.letters[lid].status == "DISPATCHED" for lid in orphans), 120)
            taken = max((t for lid in orphans for s, t in sb.letters[lid].history if s == "DISPATCHED"),
                        default=None)
        finally:
            stop([a, b])
        return {"visibility_timeout_s": vt, "orphans": len(orphans),
                "seconds_to_last_orphan_dispatched": round(taken - killed, 1) if taken else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--letters", type=int, default=1000)
    ap.add_argument("--vt", type=float, default=5.0, help="visibility timeout, seconds (real: 300)")
    ap.add_argument("--tps", type=int, default=300)
    ap.add_argument("--feed-seconds", type=float, default=10.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        fig = {"benchmark": "shared_app", "vt_s": args.vt, "tps_limit": args.tps}
        fig["one_box"] = full_queue(home / "one", args.letters, 1, args.vt, args.tps)
        fig["no_proofs"] = full_queue(home / "noproof", args.letters, 1, args.vt, args.tps,
                                      wait_proofs=False, prove_after=1e9)
        fig["two_boxes"] = full_queue(home / "two", args.letters, 2, args.vt, args.tps)
        fig["at_50_per_s"] = at_rate(home / "rate", 50, args.feed_seconds, args.vt, args.tps)
        fig["takeover"] = takeover(home / "takeover", min(args.letters, 200), args.vt, args.tps)
    print(json.dumps(fig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
