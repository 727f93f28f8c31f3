"""The spool folder: which downloaded PDFs may go.

Patient data must not linger: a letter's PDF (and its marked copies ``<id>.r<run>.pdf``)
goes once the letter is final and ``spool_retention`` has passed, and the leftovers of a
download killed mid-way go at once.  The PDF of a letter still in flight never goes.
"""

from __future__ import annotations

from pathlib import Path


def sweep(spool_dir: Path, in_flight: set[str], retention: float, now: float) -> int:
    """Delete what nobody needs; returns how many files went."""
    removed = 0
    for f in spool_dir.iterdir():
        letter = f.name.lstrip(".").split(".")[0]  # <id>.pdf, <id>.r<run>.pdf or .<id>.pdf.XXXX.part
        if letter in in_flight and f.suffix == ".pdf":
            continue
        partial = f.name.startswith(".") or f.suffix in (".part", ".tmp")
        try:
            old = now - f.stat().st_mtime >= retention
            if (partial and letter not in in_flight) or (f.suffix == ".pdf" and old):
                f.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
