"""The default ``appliance demo`` N times in a row: how many finish, the slowest, and what any
run that did not finish left behind (its kept state folder and stuck letters).

One default run in 38 once hung for 600 s at 179 DISPATCHED + 1 ENCLOSED; this is the loop
that looks for such a run.  Each run is the real command in its own process with its own
timeout (``--run-timeout``; the demo then prints its open alerts and stuck letters and keeps
its state folder, whose name is recorded here).  A run in which the demo's operator had to
settle a piece on hold (a lost report) is counted too: it finished, but something went wrong
on the line.  Prints one JSON line.

    .venv/bin/python benchmarks/demo_loop.py --runs 200
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_run(i: int, run_timeout: float, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="demo-loop-") as tmp:
        summary = Path(tmp) / "s.json"
        t0 = time.monotonic()
        try:
            cmd = [sys.executable, "-m", "appliance", "demo", "--quiet", "--timeout", str(run_timeout),
                   "--summary-json", str(summary), *extra]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=run_timeout + 120,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
            rc, err = proc.returncode, proc.stderr
        except subprocess.TimeoutExpired as e:  # the demo itself did not stop: a hang of its own
            raw = e.stderr or b""
            rc, err = None, raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        seconds = time.monotonic() - t0
        s = json.loads(summary.read_text()) if summary.exists() else {}
    run = {"run": i, "rc": rc, "seconds": round(seconds, 2), "finished": bool(s.get("finished")) and rc == 0,
           "final": s.get("final_statuses"), "holds_settled": s.get("holds_settled") or {}}
    if not run["finished"]:
        kept = re.search(r"state kept in (\S+) ", err)
        run["state_dir"] = kept.group(1) if kept else s.get("state_dir")
        run["report"] = [line for line in err.splitlines() if line.strip()][-40:]
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--run-timeout", type=float, default=120.0,
                   help="seconds one run may take before it counts as hung (a default run takes ~10 s)")
    p.add_argument("--stop-on-hang", action="store_true", help="stop at the first run that does not finish")
    p.add_argument("demo_args", nargs="*", help="extra arguments for appliance demo (after --)")
    a = p.parse_args(argv)
    runs = []
    t0 = time.monotonic()
    for i in range(1, a.runs + 1):
        run = one_run(i, a.run_timeout, a.demo_args)
        runs.append(run)
        state = "ok" if run["finished"] else f"NOT FINISHED (state kept in {run.get('state_dir')})"
        if run["holds_settled"]:
            state += f"; holds settled by the demo's operator: {run['holds_settled']}"
        print(f"run {i}/{a.runs}: {run['seconds']:.1f} s {state}", file=sys.stderr, flush=True)
        if not run["finished"]:
            print("\n".join(run["report"]), file=sys.stderr, flush=True)
            if a.stop_on_hang:
                break
    times = [r["seconds"] for r in runs if r["finished"]]
    bad = [r for r in runs if not r["finished"]]
    held = [{"run": r["run"], "holds_settled": r["holds_settled"]} for r in runs if r["holds_settled"]]
    print(json.dumps({"runs": len(runs), "finished": len(times), "not_finished": len(bad),
                      "slowest_s": max(times, default=None),
                      "median_s": round(statistics.median(times), 2) if times else None,
                      "runs_with_holds": len(held), "holds": held,
                      "total_s": round(time.monotonic() - t0, 1), "demo_args": a.demo_args,
                      "not_finished_runs": bad}))
    return 0 if not bad else 1


if __name__ == "__main__":
    raise SystemExit(main())
