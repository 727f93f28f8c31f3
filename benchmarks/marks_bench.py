"""Sheet-mark overlay cost: milliseconds per page to write a letter's marked copy.

Marks sandbox letters of 1, 3 and 10 sheets (duplex, so 2, 6 and 20 pages; one code per
sheet) with ``appliance.marks.overlay.mark_pdf`` and prints one JSON line:
  ms_per_page[sheets]    median over repeats of (time to mark the letter) / pages
  ms_per_sheet[sheets]   the same per sheet (one code each)
  ms_per_letter[sheets]  median time to mark the whole letter
  kb_added_per_sheet     how much a code adds to the file

Usage: python benchmarks/marks_bench.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.marks.overlay import ClearZone, mark_pdf  # noqa: E402
from appliance.sandbox.pdfgen import make_pdf  # noqa: E402

LETTER = "0123456789abcdef0123456789abcdef"
ZONE = ClearZone(x_mm=5, y_mm=250, size_mm=14)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    per_page, per_sheet, per_letter, added = {}, {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for sheets in (1, 3, 10):
            pages = 2 * sheets
            src = Path(tmp) / f"{sheets}.pdf"
            src.write_bytes(make_pdf(LETTER, pages, ("Specification notify-c5",)))
            dest = Path(tmp) / f"{sheets}.r1.pdf"
            times = []
            for run in range(args.repeats + 1):
                t0 = time.perf_counter()
                mark_pdf(src, dest, letter_id=LETTER, run=run + 1, zone=ZONE, duplex=True)
                times.append(time.perf_counter() - t0)
            times = times[1:]  # the first pays for imports and caches
            per_letter[sheets] = round(statistics.median(times) * 1000, 2)
            per_page[sheets] = round(statistics.median(times) * 1000 / pages, 2)
            per_sheet[sheets] = round(statistics.median(times) * 1000 / sheets, 2)
            added[sheets] = round((dest.stat().st_size - src.stat().st_size) / 1024 / sheets, 2)
    print(json.dumps({"ms_per_page": per_page, "ms_per_sheet": per_sheet, "ms_per_letter": per_letter,
                      "kb_added_per_sheet": added, "repeats": args.repeats, "duplex": True,
                      "zone_mm": 14}))


if __name__ == "__main__":
    main()
