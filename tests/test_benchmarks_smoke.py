"""Benchmark scripts still run end to end at a tiny size and print the figures they promise.
No timing is asserted here: the figures live in BENCHMARKS.md."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_bench(script: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out.stdout  # one JSON line, nothing else
    return json.loads(lines[0])


def test_tui_bench_quick_prints_latencies_for_load_and_idle():
    fig = run_bench("tui_bench.py", "--quick")
    assert fig["benchmark"] == "tui" and fig["keys_per_phase"] == 9
    for phase in ("load", "idle"):
        p = fig[phase]
        assert p["n"] == 9 and p["timeouts"] == 0  # every key's effect was painted
        assert {"p50_ms", "p95_ms", "max_ms", "ingest_letters_per_s", "frames_per_s"} <= set(p)
        assert p["p50_ms"] <= p["p95_ms"] <= p["max_ms"]
        assert {"open letters screen", "next page", "open letter detail", "dashboard"} <= set(p["by_action"])
    assert fig["daemon_idle_reached"] is True
    listing = fig["listing"]
    assert listing["first_page"]["total"] == 340  # 300 known + 40 new, every one listed
    from tui.screens.letters import PAGE
    assert listing["first_page"]["rows"] == PAGE  # one page, never the whole history
    assert listing["deep_page"]["rows"] == min(PAGE, 340 - 170)  # a page from offset 170
