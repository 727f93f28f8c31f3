"""Read-back verdicts: did one envelope get exactly the sheets of one letter?

Pure: no I/O.  An inserter with a camera reads the mark on every sheet it folds into an
envelope (``appliance.core.markcode``: letter id, sheet k of n, print run).  Given the piece the
appliance expected there and the marks read for it, ``judge`` says whether the envelope is
complete or, if not, the one reason an operator needs (with every problem found listed in
the text).  A sheet of an earlier print run of the same letter is a leftover of a spoiled
copy: it must not count as the reprint's own sheet.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from appliance.core.markcode import decode

#: The text an inserter sends for a sheet whose mark it could not read.
UNREADABLE_MARK = "?"

COMPLETE = "COMPLETE"
#: Reason codes, most telling first (the first that applies is the verdict's code).
REASONS: dict[str, str] = {
    "READBACK_NOTHING": "no sheet read (reader off, or the piece was pulled by hand)",
    "READBACK_FOREIGN": "a sheet of another letter is in the envelope",
    "READBACK_STALE": "a sheet of an earlier (spoiled) print of this letter is in the envelope",
    "READBACK_DUPLICATE": "a sheet was read twice (double feed)",
    "READBACK_UNREADABLE": "a sheet mark could not be read",
    "READBACK_MISSING": "a sheet of the letter is missing",
    "READBACK_HAND_PULLED": "no sheet read and no report: pulled by hand or never fed",
}


@dataclass(frozen=True)
class Verdict:
    code: str  # COMPLETE or a key of REASONS
    reason: str  # one line for the operator and the letter's timeline

    @property
    def complete(self) -> bool:
        return self.code == COMPLETE


def judge(letter_id: str, sheets: int, run: int, reads: list[str]) -> Verdict:
    """The verdict for one piece.

    ``sheets`` is how many sheets the letter has; ``run`` its current print run (0 =
    unknown: no stale check); ``reads`` the mark texts read for the piece, in order
    (``UNREADABLE_MARK`` or any text that is not a mark counts as unreadable).
    """
    if not reads:
        return Verdict("READBACK_NOTHING", REASONS["READBACK_NOTHING"])
    problems: dict[str, list[str]] = {}

    def note(code: str, text: str) -> None:
        problems.setdefault(code, []).append(text)

    seen: Counter[int] = Counter()
    for text in reads:
        mark = decode(text) if text != UNREADABLE_MARK else None
        if mark is None:
            note("READBACK_UNREADABLE", f"unreadable mark {text[:40]!r}")
        elif mark.letter_id != letter_id:
            note("READBACK_FOREIGN", f"sheet {mark.sheet}/{mark.sheets} of letter {mark.letter_id}")
        elif mark.sheets != sheets:
            note("READBACK_FOREIGN", f"sheet marked {mark.sheet}/{mark.sheets}, the letter has {sheets} sheet(s)")
        elif run and mark.run != run:
            note("READBACK_STALE", f"sheet {mark.sheet}/{sheets} from print run {mark.run}, current run {run}")
        else:
            seen[mark.sheet] += 1
    for k, n in sorted(seen.items()):
        if n > 1:
            note("READBACK_DUPLICATE", f"sheet {k}/{sheets} read {n} times")
    missing = [k for k in range(1, sheets + 1) if k not in seen]
    if missing:
        note("READBACK_MISSING", f"sheet(s) {', '.join(map(str, missing))} of {sheets} not read")
    if not problems:
        return Verdict(COMPLETE, f"all {sheets} sheet(s) read")
    code = next(c for c in REASONS if c in problems)
    details = "; ".join(t for c in REASONS if c in problems for t in problems[c])
    return Verdict(code, f"read-back: {details}")


def hand_pulled() -> Verdict:
    """A piece the machine went past without a read or a report: taken off the line."""
    return Verdict("READBACK_HAND_PULLED", REASONS["READBACK_HAND_PULLED"])
