"""A same-day letter's time from listing to DISPATCHED under a backlog of economy letters,
earliest deadline first vs first come first served (``[service] order = "fifo"``), side by
side in one run.

Each mode runs a real Pipeline (one file printer, the simulated finishing line) against the
local sandbox: N economy letters (notify-c5) are listed first and left to build a backlog,
then one same-day letter (notify-sameday) is added; the run ends when it is DISPATCHED.
Prints a small table, or one JSON line with ``--json``:

    python benchmarks/deadline_bench.py --backlog 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.sandbox.pdfgen import make_pdf  # noqa: E402
from tests.fixtures.floor import Floor, new_sandbox  # noqa: E402

PROFILE = """
[profile]
name = "deadline-bench"
[[printer]]
name = "press"
driver = "file"
duplex = true
job_seconds = {job}
max_queued = 20
[[inserter]]
name = "inserter-1"
driver = "sim"
piece_seconds = 0.001
[[franker]]
name = "franker-1"
driver = "sim"
piece_seconds = 0.001
[service]
order = "{order}"
"""


def dispatched_at(sb, letter_id: str) -> float | None:
    return next((t for s, t in sb.letters[letter_id].history if s == "DISPATCHED"), None)


async def run(order: str, backlog: int, job: float, timeout: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        profile = tmp / "floor.toml"
        profile.write_text(PROFILE.format(order=order, job=job))
        sb = await new_sandbox(good=0)
        body = make_pdf("economy", 2, ("Specification notify-c5",))
        economy = [sb.add_letter(body, specification_id="notify-c5", group_id="economy") for _ in range(backlog)]
        try:
            async with Floor(sb, tmp, profile=profile, max_in_flight=backlog + 100) as f:
                await f.wait(lambda: sum(1 for i in economy if f.store.get(i)) == backlog
                             and f.store.stage_count("new") < backlog // 5, timeout=timeout)
                urgent = sb.add_letter(specification_id="notify-sameday", group_id="same-day")
                listed = time.time()
                await f.wait(lambda: dispatched_at(sb, urgent) is not None, timeout=timeout)
        finally:
            await sb.stop()
        done = dispatched_at(sb, urgent)
        before = sum(1 for i in economy if (dispatched_at(sb, i) or 1e18) <= listed)
        ahead = sum(1 for i in economy if listed < (dispatched_at(sb, i) or 1e18) < done)
        return {"order": order, "backlog_when_listed": backlog - before, "economy_dispatched_first": ahead,
                "listing_to_dispatched_s": round(done - listed, 2)}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backlog", type=int, default=2000, help="economy letters listed first")
    ap.add_argument("--job-seconds", type=float, default=0.01, help="the press's time per letter")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    args = ap.parse_args()
    rows = [await run(order, args.backlog, args.job_seconds, args.timeout) for order in ("edf", "fifo")]
    edf, fifo = rows
    if args.json:
        print(json.dumps({"benchmark": "deadlines", "backlog": args.backlog, "edf": edf, "fifo": fifo,
                          "speedup": round(fifo["listing_to_dispatched_s"] / max(edf["listing_to_dispatched_s"],
                                                                                  0.01), 1)}))
        return
    print(f"same-day letter behind {args.backlog} economy letters (one press, {args.job_seconds} s/letter)")
    print(f"{'order':<6} {'backlog when listed':>20} {'economy out first':>18} {'listing->DISPATCHED':>20}")
    for r in rows:
        print(f"{r['order']:<6} {r['backlog_when_listed']:>20} {r['economy_dispatched_first']:>18} "
              f"{r['listing_to_dispatched_s']:>19.2f}s")


if __name__ == "__main__":
    asyncio.run(main())
