"""Ink coverage: Ghostscript's ``inkcov`` device against pdfium (pypdfium2), side by side.

* ``renderers`` -- reference pages whose filled area is known (a black rectangle over 10,
  19, 21 and 50 % of an A4 page without text, one red over 15 %: magenta and yellow 15 %,
  one 50 % grey over 40 %: black 20 %) and a sandbox letter page (text only, its truth
  taken from pdfium at 300 dpi), each measured by both renderers at several resolutions:
  measured % against true % (black: mean K; colour: the largest C/M/Y mean; for
  Ghostscript what its devices report), and CPU ms per page (a ten-page letter of that page, the
  whole letter's CPU over ten: pdfium in this process, Ghostscript in its subprocess, its
  start-up included, as the intake worker would pay it).  Ghostscript is skipped if ``gs``
  is not installed.
* ``ingest`` (``--ingest N``) -- letters/s and CPU through the real intake workers with
  coverage measured and not, in this one run (``benchmarks/intake_bench.py``'s
  ``coverage`` part), and the CPU it adds per page.

Prints a table, or with ``--json`` one JSON line.  Usage:
    python benchmarks/coverage_bench.py [--dpi 18,36,72,150] [--ingest 600] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from appliance.intake.coverage import CoverageLimits, measure  # noqa: E402
from appliance.sandbox.pdfgen import BLACK, make_pdf  # noqa: E402

PAGES = 10
#: name -> (fill, true black %, true colour %); None: truth from pdfium at 300 dpi
REFERENCES = {
    "black 10 %": ((0.10, BLACK), 10.0, 0.0),
    "black 19 %": ((0.19, BLACK), 19.0, 0.0),
    "black 21 %": ((0.21, BLACK), 21.0, 0.0),
    "black 50 %": ((0.50, BLACK), 50.0, 0.0),
    "red 15 %": ((0.15, (1.0, 0.0, 0.0)), 0.0, 15.0),
    "grey 50 % over 40 %": ((0.40, (0.5, 0.5, 0.5)), 20.0, 0.0),
    "letter text": (None, None, None),
}


def _pdf(fill, pages: int) -> bytes:
    if fill is None:
        return make_pdf("0123456789abcdef0123456789abcdef", pages, ("Specification notify-c5",))
    return make_pdf("ref", pages, fills=(fill,) * pages, text=False)


def pdfium(path: Path, dpi: int) -> tuple[float, float, float]:
    """(black %, colour %, CPU ms per page) of page 1, CPU over the whole letter."""
    t = time.process_time()
    black, colour = measure(path, CoverageLimits(dpi=dpi))
    ms = 1000 * (time.process_time() - t) / len(black)
    return black[0], colour[0], ms


def ghostscript(path: Path, dpi: int, device: str = "inkcov") -> tuple[float, float, float]:
    """``inkcov``: the share of the page each colorant touches at all (after Ghostscript's
    ICC RGB->CMYK, which makes RGB black a rich black); ``ink_cov``: the ink laid."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["gs", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-q", f"-sDEVICE={device}", f"-r{dpi}",
                          "-o", "-", str(path)], capture_output=True, text=True, timeout=120).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    lines = [ln.split() for ln in out.splitlines() if ln.strip().endswith("OK")]
    c, m, y, k = (float(v) * (100 if device == "inkcov" else 1) for v in lines[0][:4])
    return round(k, 2), round(max(c, m, y), 2), 1000 * cpu / len(lines)


def part_renderers(dpis: list[int]) -> list[dict]:
    rows = []
    renderers = [("pdfium", pdfium)]
    if shutil.which("gs"):
        renderers += [("gs-inkcov", ghostscript),
                      ("gs-ink_cov", lambda path, dpi: ghostscript(path, dpi, "ink_cov"))]
    with tempfile.TemporaryDirectory(prefix="coverage-bench-") as tmp:
        for name, (fill, true_k, true_c) in REFERENCES.items():
            path = Path(tmp) / "ref.pdf"
            path.write_bytes(_pdf(fill, PAGES))
            if true_k is None:
                true_k, true_c, _ = pdfium(path, 300)
            for renderer, fn in renderers:
                fn(path, dpis[0])  # warm: imports, caches
                for dpi in dpis:
                    k, c, ms = fn(path, dpi)
                    rows.append({"page": name, "renderer": renderer, "dpi": dpi, "black": k,
                                 "true_black": true_k, "colour": c, "true_colour": true_c, "cpu_ms_per_page": round(ms, 2)})
    return rows


def summary(rows: list[dict]) -> dict:
    out: dict = {}
    for r in rows:
        s = out.setdefault(f"{r['renderer']}@{r['dpi']}",
                           {"max_error_points": 0.0, "solid_black_error_points": 0.0, "cpu_ms_per_page": []})
        err = max(abs(r["black"] - r["true_black"]), abs(r["colour"] - r["true_colour"]))
        s["max_error_points"] = round(max(s["max_error_points"], err), 2)
        if r["page"].startswith("black "):  # area alone, whatever the colour conversion
            s["solid_black_error_points"] = round(max(s["solid_black_error_points"],
                                                      abs(r["black"] - r["true_black"])), 2)
        s["cpu_ms_per_page"].append(r["cpu_ms_per_page"])
    for s in out.values():
        ms = sorted(s.pop("cpu_ms_per_page"))
        s["cpu_ms_per_page_median"], s["cpu_ms_per_page_max"] = ms[len(ms) // 2], ms[-1]
    return out


def part_ingest(letters: int, workers: int) -> dict:
    from intake_bench import part_coverage

    return part_coverage(argparse.Namespace(letters=letters, rate=300.0, workers=[workers]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dpi", default="18,36,72,150")
    p.add_argument("--ingest", type=int, default=0, help="letters for the on/off ingest run (0: skip)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    rows = part_renderers([int(d) for d in a.dpi.split(",") if d])
    out = {"benchmark": "coverage", "machine": f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
           "ghostscript": bool(shutil.which("gs")), "renderers": rows, "summary": summary(rows)}
    if a.ingest:
        out["ingest"] = part_ingest(a.ingest, a.workers)
    if a.json:
        print(json.dumps(out))
        return
    print(f"{'page':<22} {'renderer':<12} {'dpi':>4} {'black %':>8} {'true':>6} {'colour %':>9} {'true':>6} "
          f"{'ms CPU/page':>12}")
    for r in rows:
        print(f"{r['page']:<22} {r['renderer']:<12} {r['dpi']:>4} {r['black']:>8.2f} {r['true_black']:>6.2f} "
              f"{r['colour']:>9.2f} {r['true_colour']:>6.2f} {r['cpu_ms_per_page']:>12.2f}")
    print("\nrenderer@dpi: largest error (points), all pages / solid black only; "
          "CPU ms/page median / max")
    for k, s in out["summary"].items():
        print(f"  {k:<16} {s['max_error_points']:>6.2f} / {s['solid_black_error_points']:<6.2f}"
              f"{s['cpu_ms_per_page_median']:>7.2f} / {s['cpu_ms_per_page_max']:.2f}")
    if a.ingest:
        g = out["ingest"]
        print(f"\ningest, {g['letters']} letters ({g['pages']} pages), {g['workers']} workers:")
        for mode in ("on", "off"):
            print(f"  coverage {mode:<3}  {json.dumps(g[mode])}")
        print(f"  coverage adds {g.get('coverage_cpu_ms_per_page')} ms CPU per page")


if __name__ == "__main__":
    main()
