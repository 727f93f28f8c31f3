"""File-driven inserter: how fast are run data files written and result files applied?

Submits ``--pieces`` pieces to a FileInserter (``--batch`` per run file), waits until every
run file is in the hot folder, then drops one result file per batch at once (the way a
machine finishing a shift's backlog would) and measures until every piece event has been
emitted and every result file moved to done/.  Each step includes the durable save of the
driver's book.  Prints one JSON line.

Usage: python benchmarks/file_inserter_bench.py [--pieces 5000] [--batch 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.core.packs import load_packs  # noqa: E402
from drivers.base import Work  # noqa: E402
from drivers.files.format import render_results  # noqa: E402
from drivers.files.inserter import FileInserter  # noqa: E402


async def bench(pieces: int, batch: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="file-ins-bench-") as tmp:
        root = Path(tmp)
        runs, results = root / "runs", root / "results"
        runs.mkdir()
        results.mkdir()
        events = []
        drv = FileInserter("ins", {"outbox_dir": str(runs), "results_dir": str(results), "batch_size": batch,
                                   "batch_idle": 0.05, "poll_seconds": 0.01}, events.append, state_dir=root / "state")
        await drv.start()
        pack = load_packs()["client3-invites"]
        t0 = time.perf_counter()
        for i in range(pieces):
            await drv.submit(Work(f"letter{i:08d}", None, pack, 2, 1))
        files = -(-pieces // batch)
        while len(list(runs.glob("*.run.csv"))) < files:
            await asyncio.sleep(0.005)
        t_written = time.perf_counter() - t0
        t1 = time.perf_counter()
        for b in drv.book.batches.values():
            rows = [(p.batch, p.seq, p.letter_id, "inserted", "") for p in b.pieces.values()]
            tmp_file = results / f".{b.batch}.tmp"
            tmp_file.write_bytes(render_results(rows))
            os.replace(tmp_file, results / f"{b.batch}.result.csv")
        while sum(e.kind == "piece.inserted" for e in events) < pieces or list(results.glob("*.result.csv")):
            await asyncio.sleep(0.005)
        t_applied = time.perf_counter() - t1
        state_bytes = (root / "state" / "devices" / "ins" / "file-inserter.json").stat().st_size
        await drv.stop()
    return {"bench": "file_inserter", "pieces": pieces, "batch": batch, "run_files": files,
            "write_s": round(t_written, 3), "write_pieces_per_s": round(pieces / t_written),
            "apply_s": round(t_applied, 3), "apply_pieces_per_s": round(pieces / t_applied),
            "state_json_bytes": state_bytes}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pieces", type=int, default=5000)
    p.add_argument("--batch", type=int, default=500)
    args = p.parse_args()
    print(json.dumps(asyncio.run(bench(args.pieces, args.batch))))


if __name__ == "__main__":
    main()
