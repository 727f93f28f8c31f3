"""Benchmark scripts still run end to end at a tiny size and print the figures they promise.
No timing is asserted here: the figures live in BENCHMARKS.md."""

import json
import subprocess
import sys


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


# Every other benchmark at a tiny size: the script runs from a clean clone and prints the
# figures BENCHMARKS.md quotes.  (The torture has its own test: tests/test_torture.py.)
import pytest  # noqa: E402

from tests.fixtures import ROOT

SMOKE = {
    "store_bench.py": (["--quick"], {"transition_ms", "ratio", "reopen_s", "peak_rss_mb"}),
    "daemon_bench.py": (["--quick"], {"cold_start_to_first_poll_s", "peak_rss_mb"}),
    "ingest_bench.py": (["--quick"], {"appliance", "coverage", "httpx", "aiohttp", "ratios"}),
    "sandbox_throughput.py": (["--seconds", "0.3", "--letters", "20"], {"requests_per_s", "errors"}),
    "marks_bench.py": (["--repeats", "1"], {"ms_per_page", "kb_added_per_sheet"}),
    "readback_bench.py": (["--letters", "12", "--audit-batches", "40"], {"judge_us", "audit_rows_ms", "floor", "baseline"}),
    "file_inserter_bench.py": (["--pieces", "60", "--batch", "20"], {"write_pieces_per_s", "apply_pieces_per_s"}),
    "intake_bench.py": (["--quick", "--baseline", ""], {"ingest", "rss", "bombs"}),
    "coverage_bench.py": (["--dpi", "36", "--json"], {"renderers", "summary"}),
    "deadline_bench.py": (["--backlog", "100", "--json"], {"edf", "fifo", "speedup"}),
    "transport_bench.py": (["--quick"], {"httpcore", "aiohttp", "cpu_ratio_httpcore_vs_aiohttp"}),
}


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_benchmark_runs_at_tiny_size(script):
    args, keys = SMOKE[script]
    fig = run_bench(script, *args)
    assert keys <= set(fig), (script, sorted(fig))
    if script == "ingest_bench.py":  # every letter went through each side, each measured
        assert fig["appliance"]["api_calls_when_decided"]["data"] == fig["letters"]
        assert fig["appliance"]["cpu_ms_per_letter"] > 0 and fig["coverage"]["coverage"] is True
        assert fig["httpx"]["letters"] == fig["letters"] and fig["httpx"]["cpu_ms_per_letter"] > 0
        assert fig["aiohttp"].get("letters") == fig["letters"] or "skipped" in fig["aiohttp"]
        assert {"letters_per_s_appliance_vs_httpx", "coverage_cpu_ms_per_page"} <= set(fig["ratios"])
    if script == "sandbox_throughput.py":
        assert fig["errors"] == 0 and fig["requests"] > 0
    if script == "intake_bench.py":  # every part measured something; bombs did not stop the floor
        assert fig["ingest"]["workers_1"]["letters_per_s"] > 0
        assert fig["rss"]["daemon_peak_rss_mb"] > 0
        assert fig["bombs"]["with_bombs_and_drips"]["seconds_until_good_dispatched"] is not None
    if script == "coverage_bench.py":  # pdfium measured every reference page, within its accuracy
        pdfium = [r for r in fig["renderers"] if r["renderer"] == "pdfium"]
        assert len(pdfium) == 7 and fig["summary"]["pdfium@36"]["max_error_points"] <= 0.3


@pytest.mark.cups
def test_printing_bench_runs_both_modes_at_tiny_size():
    fig = run_bench("printing_bench.py", "--letters", "4", "--printers", "1", "--batch", "2")
    assert {"single", "batch"} <= set(fig), sorted(fig)
