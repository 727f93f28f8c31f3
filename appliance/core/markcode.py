"""The text carried by a sheet mark: which letter, which sheet of how many, which print run.

Pure: no I/O.  One format shared by the side that prints marks (``appliance.marks.overlay``) and
the sides that read them back (the inserter's reader over serial, a file-based inserter's
result file), so both agree byte for byte.

    NL1:<letter id>:<sheet>:<sheets>:<print run>      e.g. NL1:0aB3-x_9:2:3:41

``print run`` is the appliance's sequence number of the print submission that produced the
sheet; a reprint gets a new one, so a sheet left over from a spoiled copy is told apart from
the reprinted letter's own sheets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "NL1"
_MARK = re.compile(r"^NL1:(?P<id>[A-Za-z0-9_-]{1,128}):(?P<k>\d{1,4}):(?P<n>\d{1,4}):(?P<run>\d{1,10})$")


@dataclass(frozen=True)
class Mark:
    letter_id: str
    sheet: int  # 1-based
    sheets: int
    run: int

    def text(self) -> str:
        return f"{PREFIX}:{self.letter_id}:{self.sheet}:{self.sheets}:{self.run}"


def encode(letter_id: str, sheet: int, sheets: int, run: int) -> str:
    mark = Mark(letter_id, sheet, sheets, run)
    if decode(mark.text()) != mark:
        raise ValueError(f"cannot mark letter {letter_id!r} sheet {sheet}/{sheets} run {run}")
    return mark.text()


def decode(text: str) -> Mark | None:
    """The mark in ``text``, or None if it is not one (a smudge, another code, noise)."""
    m = _MARK.match(text.strip())
    if not m:
        return None
    k, n = int(m["k"]), int(m["n"])
    if not 1 <= k <= n:
        return None
    return Mark(m["id"], k, n, int(m["run"]))
