"""Which piece does a device report mean?  Pure bookkeeping for the serial drivers.

Pieces are announced to the machine in print order, numbered 1, 2, 3... within a batch.
A report names a piece by that sequence number (the default) or by the letter id the
machine scanned.  Anything that does not fit - a report for another batch, a number
already settled, a scanned id that is not the piece expected at that place - settles
nothing; the driver counts it and, where a piece's fate became uncertain, puts that piece
before an operator.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Piece:
    letter_id: str
    batch: int
    seq: int
    sent_at: float
    sheets: int = 0  # what the piece should hold (read-backs)
    run: int = 0
    reads: list[str] = field(default_factory=list)  # sheet marks read for it, in order

    @property
    def job(self) -> str:
        return f"{self.batch:04d}/{self.seq:04d}"


@dataclass
class Resolution:
    piece: Piece | None = None
    skipped: list[Piece] = field(default_factory=list)  # earlier pieces whose report never came
    problem: str | None = None
    mismatch: bool = False  # piece found, but the report contradicts it: its fate is unknown


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class PieceTracker:
    def __init__(self, identify: str = "sequence"):
        self.identify = identify
        self.batch = 0
        self.open = False
        self.next_seq = 1
        self.outstanding: dict[int, Piece] = {}  # seq -> piece, in announcement order
        self.heard_diverted = 0  # divert reports heard in this batch (vs the machine's DIV count)

    def open_batch(self, number: int) -> None:
        self.batch, self.open, self.next_seq, self.heard_diverted = number, True, 1, 0

    def adopt(self, batch: int, pieces: list[Piece], next_seq: int, heard_diverted: int) -> None:
        """After an appliance restart: carry on with the batch the journal says was open,
        expecting the pieces announced in it that were never settled."""
        self.batch, self.open, self.next_seq, self.heard_diverted = batch, True, next_seq, heard_diverted
        self.outstanding = {p.seq: p for p in sorted(pieces, key=lambda p: p.seq)}

    def close_batch(self) -> None:
        self.open = False

    def announce(self, letter_id: str, now: float) -> Piece:
        piece = Piece(letter_id, self.batch, self.next_seq, now)
        self.outstanding[piece.seq] = piece
        self.next_seq += 1
        return piece

    def resolve(self, groups: dict[str, str], settle_skipped: bool = True) -> Resolution:
        """The piece a report names.  With ``settle_skipped`` false (a resync is under way)
        earlier pieces without a report stay in flight: the machine's counters decide them."""
        batch = _int(groups.get("batch"))
        if batch is not None and batch != self.batch:
            return Resolution(problem=f"report for batch {batch}, current batch is {self.batch}")
        scanned = groups.get("id")
        if self.identify == "letter_id":
            if not scanned:
                return Resolution(problem="report without a scanned id")
            piece = next((p for p in self.outstanding.values() if p.letter_id == scanned), None)
            if piece is None:
                return Resolution(problem=f"scanned id {scanned} is not a piece in flight")
            del self.outstanding[piece.seq]
            return Resolution(piece)
        seq = _int(groups.get("seq"))
        if seq is None:
            return Resolution(problem="report without a sequence number")
        piece = self.outstanding.pop(seq, None)
        if piece is None:
            return Resolution(problem=f"piece {seq} is not in flight (repeated or unknown report)")
        skipped = [p for s, p in self.outstanding.items() if s < seq] if settle_skipped else []
        for p in skipped:
            del self.outstanding[p.seq]
        if scanned and scanned != piece.letter_id:
            return Resolution(piece, skipped, f"scanned id {scanned} at place {seq}, expected {piece.letter_id}",
                              mismatch=True)
        return Resolution(piece, skipped)

    def peek(self, groups: dict[str, str]) -> Piece | None:
        """The piece in flight a sheet read names (by batch and sequence), left in flight."""
        batch, seq = _int(groups.get("batch")), _int(groups.get("seq"))
        if batch is not None and batch != self.batch:
            return None
        return self.outstanding.get(seq) if seq is not None else None

    def resync(self, device_batch: int | None, device_count: int | None) -> list[Piece]:
        """After the link came back: pieces the device says it handled while we could not
        hear are unknown; if it cannot say (other batch, no counters) all in flight are."""
        if device_batch == self.batch and device_count is not None:
            lost = [p for s, p in self.outstanding.items() if s <= device_count]
        else:
            lost = list(self.outstanding.values())
            self.open = False  # the device has forgotten this batch: start a new one
        for p in lost:
            del self.outstanding[p.seq]
        return lost

    def overdue(self, now: float, timeout: float) -> list[Piece]:
        late = [p for p in self.outstanding.values() if now - p.sent_at > timeout]
        for p in late:
            del self.outstanding[p.seq]
        return late

    def restart_clocks(self, now: float) -> None:
        """The device was stopped (jam, empty hopper): waiting time does not count."""
        for p in self.outstanding.values():
            p.sent_at = now

    def take_all(self) -> list[Piece]:
        lost = list(self.outstanding.values())
        self.outstanding.clear()
        return lost


def prove_unheard(lost: list[Piece], device_diverted: int | None, heard_diverted: int) -> tuple[list[Piece], list[Piece]]:
    """Split pieces the machine handled unheard into (proved done, still unknown).

    The machine counts diverts per batch.  If its count equals the diverts we heard, none
    of the unheard pieces was diverted, so each was inserted (or franked).  Otherwise it
    cannot say which were diverted: all stay unknown.  No count at all proves nothing.
    """
    if lost and device_diverted is not None and device_diverted == heard_diverted:
        return list(lost), []
    return [], list(lost)
