"""What a file-driven inserter was given and what it answered: pure bookkeeping.

The book holds every run data file written (batch -> pieces by seq) and each piece's
settled outcome.  It decides what a result record means - the same rules the serial
tracker applies to a machine's bytes - and it is saved as JSON (atomically, by the
driver) before any event it implies is emitted, so a restarted driver never reports a
piece twice and can answer ``reconcile()`` for every letter it ever wrote out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drivers.files.format import ResultRecord

SETTLED_BATCHES_KEPT = 50  # fully settled batches remembered (late duplicates, reconcile)


@dataclass
class BookPiece:
    letter_id: str
    batch: str
    seq: int
    outcome: str | None = None  # None (at the machine) | piece.inserted | piece.diverted | piece.unknown

    @property
    def job(self) -> str:
        return f"{self.batch}/{self.seq}"


@dataclass
class BookBatch:
    batch: str
    written_at: float  # wall clock, when the run file was made durable
    pieces: dict[int, BookPiece]
    file_done: bool = False  # renamed into the outbox (False: a .tmp may still be waiting)

    def settled(self) -> bool:
        return all(p.outcome for p in self.pieces.values())


@dataclass
class Decision:
    """What one result record does.  ``kind``: inserted | diverted | unknown (the piece goes
    to a person) | repeat (already applied, nothing to do) | problem (settles nothing)."""

    kind: str
    piece: BookPiece | None = None
    why: str = ""  # unknown: why its fate is unknown; problem: what is wrong with the line
    reason: str = ""  # diverted: the reason text
    code: str = ""
    line_problem: bool = False  # also report the line as malformed


@dataclass
class Book:
    device: str
    next_batch: int = 1
    batches: dict[str, BookBatch] = field(default_factory=dict)

    # --- writing run files ------------------------------------------------------------

    def next_batch_id(self) -> str:
        """The name the next batch gets; taken by ``add_batch``."""
        return f"{self.device}-{self.next_batch:06d}"

    def add_batch(self, letter_ids: list[str], now: float) -> BookBatch:
        batch = self.next_batch_id()
        self.next_batch += 1
        b = BookBatch(batch, now, {seq: BookPiece(lid, batch, seq) for seq, lid in enumerate(letter_ids, 1)})
        self.batches[batch] = b
        return b

    # --- reading results --------------------------------------------------------------

    def apply(self, rec: ResultRecord, reasons: dict[str, str]) -> Decision:
        """Match a record to its piece by (batch, seq) AND letter id, then settle it."""
        b = self.batches.get(rec.batch)
        if b is None:
            return Decision("problem", why=f"batch {rec.batch[:40]!r} is not one this appliance has open")
        piece = b.pieces.get(rec.seq)
        if piece is None:
            return Decision("problem", why=f"batch {rec.batch} has no piece {rec.seq} (it has {len(b.pieces)})")
        mismatch = rec.letter_id != piece.letter_id
        outcome = {"inserted": "piece.inserted", "diverted": "piece.diverted"}.get(rec.outcome)
        if piece.outcome is not None:
            if not mismatch and outcome == piece.outcome:
                return Decision("repeat", piece)
            return Decision("problem", piece, f"contradicts the result already applied to {piece.job} "
                                              f"({piece.outcome.split('.')[1]}); ignored")
        if mismatch:
            return self._unknown(piece, f"result names {rec.letter_id[:40]}, expected {piece.letter_id}",
                                 line_problem=True)
        if outcome is None:
            return self._unknown(piece, f"outcome {rec.outcome[:20]!r} is not inserted or diverted",
                                 line_problem=True)
        if outcome == "piece.inserted":
            piece.outcome = outcome
            return Decision("inserted", piece)
        reason = reasons.get(rec.reason_code)
        if reason is None:
            why = (f"diverted with code {rec.reason_code[:20]}, which the profile's reasons do not list"
                   if rec.reason_code else "diverted without a reason code")
            return self._unknown(piece, why)
        piece.outcome = outcome
        return Decision("diverted", piece, reason=reason, code=rec.reason_code)

    def _unknown(self, piece: BookPiece, why: str, line_problem: bool = False) -> Decision:
        piece.outcome = "piece.unknown"
        return Decision("unknown", piece, why, line_problem=line_problem)

    def overdue(self, now: float, timeout: float, clocks_from: float) -> list[BookPiece]:
        """Pieces written out more than ``timeout`` seconds ago (counting from ``clocks_from``
        at the latest: after a restart or a pause) without a result.  They become unknown."""
        late = []
        for b in self.batches.values():
            if now - max(b.written_at, clocks_from) > timeout:
                for p in b.pieces.values():
                    if p.outcome is None:
                        p.outcome = "piece.unknown"
                        late.append(p)
        return late

    # --- questions --------------------------------------------------------------------

    def outstanding(self) -> int:
        return sum(p.outcome is None for b in self.batches.values() for p in b.pieces.values())

    def by_letter(self) -> dict[str, BookPiece]:
        """The latest piece per letter (a resubmitted letter may appear in two batches)."""
        out: dict[str, BookPiece] = {}
        for b in self.batches.values():  # insertion order = the order written
            for p in b.pieces.values():
                out[p.letter_id] = p
        return out

    def prune(self) -> None:
        settled = [k for k, b in self.batches.items() if b.settled() and b.file_done]
        for k in settled[:-SETTLED_BATCHES_KEPT] if len(settled) > SETTLED_BATCHES_KEPT else []:
            del self.batches[k]

    # --- persistence ------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "device": self.device, "next_batch": self.next_batch,
                "batches": [{"batch": b.batch, "written_at": b.written_at, "file_done": b.file_done,
                             "pieces": [[p.seq, p.letter_id, p.outcome] for p in b.pieces.values()]}
                            for b in self.batches.values()]}

    @classmethod
    def from_json(cls, device: str, data: dict[str, Any]) -> "Book":
        book = cls(device, int(data.get("next_batch", 1)))
        for b in data.get("batches", []):
            pieces = {seq: BookPiece(lid, b["batch"], seq, outcome) for seq, lid, outcome in b["pieces"]}
            book.batches[b["batch"]] = BookBatch(b["batch"], b["written_at"], pieces, b.get("file_done", True))
        return book
