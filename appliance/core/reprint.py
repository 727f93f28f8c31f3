"""Automatic reprint of spoiled pieces: the policy and the decision.  Pure.

(The pipeline acts on them: ``appliance.pipeline.finishing.Finishing.reprint_spoiled``.)

Spoiled: diverted, damaged, or failed by the read-back.

The profile's ``[reprint]`` table says how often a letter may go back to the print queue
(``tries``, default 1; 0 = hold at once) and on which printer (``printer``, "" = any capable
one).  A spoiled piece with tries left is printed again under a new print run and its
timeline says "reprint 1/1: <reason>"; its status does not move (PRINTED again is a no-op
at the API).  With no tries left the letter is put before an operator with the reason.

Why this cannot produce a second ENCLOSED or DISPATCHED: a piece is acted on only while
its letter is at the inserter that reported it (stage "enclosing", same device) and the
report carries the letter's current print run; an ENCLOSED letter is never reprinted, and
the status model refuses ENCLOSED twice.  A late report about a spoiled print's piece
(older run) is ignored (``stale_run``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Device event kinds whose piece the pipeline may reprint (with action "reprint").
SPOILED_KINDS = ("piece.suspect", "piece.diverted")


@dataclass(frozen=True)
class ReprintPolicy:
    tries: int = 1  # automatic reprints per letter; 0 = never, hold at once
    printer: str = ""  # "" = any capable printer


@dataclass(frozen=True)
class Decision:
    reprint: bool
    timeline: str  # the event written in the letter's timeline (or the hold reason)


def decide(reprints_done: int, policy: ReprintPolicy, reason: str) -> Decision:
    """Pure: print again, or hold for a person?"""
    if reprints_done < policy.tries:
        n = reprints_done + 1
        return Decision(True, f"reprint {n}/{policy.tries}: {reason}")
    if policy.tries == 0:
        return Decision(False, f"{reason}; automatic reprint is off ([reprint] tries = 0)")
    return Decision(False, f"{reason}; failed again after {reprints_done} reprint(s)")


def stale_run(detail: dict[str, Any], rec: dict[str, Any]) -> bool:
    """Is this report about a piece of an earlier print run than the letter's current one?"""
    run, current = detail.get("run"), rec.get("print_run")
    return bool(run) and bool(current) and run != current


def wants_reprint(action: str | None, detail: dict[str, Any]) -> bool:
    """The event map says "reprint", or a read-back inserter marks its divert reprintable."""
    return action == "reprint" or (action == "FAILED" and bool(detail.get("reprintable")))
