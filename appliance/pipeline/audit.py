"""Per-batch audit of the inserters: pieces expected, enclosed, diverted, reprinted, held,
outstanding.

The facts are what the inserter said about each piece (announced -> ``job.queued``, then
inserted / diverted / suspect / unknown) and what the pipeline decided about a spoiled one
(reprinted, or held for an operator).  Each fact is one JSON line appended to
``<state>/audit/YYYY-MM-DD.jsonl`` as it happens, so the numbers survive a restart; the
last ``DAYS_LOADED`` day files are read back on the first question (not at start: a
daemon's cold start must not wait for them).  A piece is keyed by (device, batch,
seq): a fact repeated (a replay) counts once, and a reprinted letter is a new piece in a
later batch.  ``rows`` and ``to_csv`` are pure over the facts.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.store.journal import Journal

log = logging.getLogger("appliance.pipeline.audit")

DAYS_LOADED = 3
MAX_BATCHES = 2000  # batches kept in memory (oldest dropped first)
COLUMNS = ("device", "batch", "expected", "enclosed", "diverted", "reprinted", "held", "outstanding",
           "first", "last")

#: Device event kind -> the piece's outcome at the inserter.
OUTCOMES = {"piece.inserted": "enclosed", "piece.diverted": "diverted", "piece.suspect": "diverted",
            "piece.unknown": "unknown"}


@dataclass
class _Piece:
    letter_id: str | None = None
    outcome: str | None = None  # enclosed | diverted | unknown
    decision: str | None = None  # reprinted | held


@dataclass
class _Batch:
    first: float
    last: float
    pieces: dict[int, _Piece] = field(default_factory=dict)


class AuditLog:
    def __init__(self, folder: Path, inserters: set[str] | None = None):
        self.folder = Path(folder)
        self.batches: OrderedDict[tuple[str, int], _Batch] = OrderedDict()
        self.inserters = inserters  # devices whose batches count; None: any
        self._loaded = False  # the files are the truth; memory is built on the first rows()
        self._journal: Journal | None = None  # today's file (facts fsynced within a second)
        self._day = ""

    # --- recording --------------------------------------------------------------------

    def note(self, ev) -> None:
        """A device event: count it if it is an inserter's fact about a piece in a batch."""
        fact = "expected" if ev.kind == "job.queued" else OUTCOMES.get(ev.kind)
        if fact is None or ev.letter_id is None or ev.detail.get("recovered"):
            return
        if self.inserters is not None and ev.device not in self.inserters:
            return
        self._record(ev, fact)

    def decided(self, ev, decision: str) -> None:
        """The pipeline's decision about a spoiled piece: ``reprinted`` or ``held``."""
        self._record(ev, decision)

    def _record(self, ev, fact: str) -> None:
        batch, seq = _int(ev.detail.get("batch")), _int(ev.detail.get("seq"))
        if batch is None or seq is None:
            return
        line = {"t": round(ev.t, 3), "device": ev.device, "batch": batch, "seq": seq,
                "letter_id": ev.letter_id, "fact": fact}
        if self._loaded:
            self._apply(line)
        try:
            day = time.strftime("%Y-%m-%d", time.gmtime(ev.t))
            if self._journal is None or day != self._day:
                if self._journal is not None:
                    self._journal.close()
                self._journal, self._day = Journal(self.folder / f"{day}.jsonl", sync="batch"), day
            self._journal.append(line)
        except OSError as e:  # the audit must never stop the floor
            log.warning("audit fact not written: %s", e)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def _apply(self, line: dict[str, Any]) -> None:
        key = (line["device"], line["batch"])
        b = self.batches.get(key)
        if b is None:
            b = self.batches[key] = _Batch(line["t"], line["t"])
            while len(self.batches) > MAX_BATCHES:
                self.batches.popitem(last=False)
        b.first, b.last = min(b.first, line["t"]), max(b.last, line["t"])
        piece = b.pieces.setdefault(line["seq"], _Piece(line.get("letter_id")))
        fact = line["fact"]
        if fact in ("enclosed", "diverted", "unknown"):
            piece.outcome = fact
        elif fact in ("reprinted", "held"):
            piece.decision = fact

    def _load(self) -> None:
        self._loaded = True
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("*.jsonl"))[-DAYS_LOADED:]:
            for line in Journal(path).records():
                try:
                    self._apply(line)
                except (KeyError, TypeError):  # a line this version cannot read
                    continue

    # --- reading ----------------------------------------------------------------------

    def rows(self, device: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """One row per batch, newest first."""
        if not self._loaded:
            self._load()
        out = []
        for (dev, batch), b in reversed(self.batches.items()):
            if device and dev != device:
                continue
            ps = b.pieces.values()
            enclosed = sum(p.outcome == "enclosed" for p in ps)
            diverted = sum(p.outcome == "diverted" for p in ps)
            unknown = sum(p.outcome == "unknown" for p in ps)
            out.append({"device": dev, "batch": batch, "expected": len(b.pieces), "enclosed": enclosed,
                        "diverted": diverted, "reprinted": sum(p.decision == "reprinted" for p in ps),
                        "held": sum(p.decision == "held" or p.outcome == "unknown" for p in ps),
                        "outstanding": len(b.pieces) - enclosed - diverted - unknown,
                        "first": b.first, "last": b.last})
            if len(out) >= limit:
                break
        return out


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV (times as UTC ISO 8601), header first."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([_iso(r[c]) if c in ("first", "last") else r[c] for c in COLUMNS])
    return buf.getvalue()


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
