"""The outbox book: every status update from queued to proven, in memory (``Store`` keeps
it durable with the letters).

A 202 from Notify means "on its queue", not "applied" (the server applies updates later
and may lose one silently), so an update lives here until a read-back proves it::

    unsent --202--> sent --read back shows it--> proven (dropped)
       ^              |
       +----lost------+      (read back shows an older status long after the 202)

An update Notify refuses (400/404/422) stays, marked ``refused``; it and every later update
of that letter wait until an operator retries it or marks it handled, so what leaves for a
letter never goes out of order and nothing refused is ever taken for done.

Entries are plain dicts (written to hot.json and its journal as they are): ``seq``, ``letter_id``,
``status``, ``reason_code``, ``reason_text``, ``created``; optionally ``deadline`` (an
ACCEPTED that must be answered 202 before then), ``tried`` (when a request carrying it last
left), ``sent`` (when it was answered 202) and ``refused`` ({status, detail, at}).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable


class OutboxBook:
    def __init__(self) -> None:
        self.entries: dict[int, dict[str, Any]] = {}  # seq -> entry, in seq order
        self._unsent: dict[int, None] = {}  # seqs waiting to leave, in seq order once sorted
        self._unsorted = False
        self._by_letter: dict[str, list[int]] = {}  # letter -> its seqs, in order
        self.refused: dict[str, int] = {}  # letter -> seq of its refused update
        self.touched: set[str] = set()  # letters whose entries changed since take_touched()

    # --- building ------------------------------------------------------------------------

    def take_touched(self) -> set[str]:
        """Letters whose entries were added, changed or removed since the last call (what the
        store's next journal line must carry)."""
        touched, self.touched = self.touched, set()
        return touched

    def add(self, entry: dict[str, Any]) -> None:
        seq = entry["seq"]
        self.touched.add(entry["letter_id"])
        self.entries[seq] = entry
        self._by_letter.setdefault(entry["letter_id"], []).append(seq)
        if entry.get("refused"):
            self.refused[entry["letter_id"]] = seq
        elif not entry.get("sent"):
            if self._unsent and seq < next(reversed(self._unsent)):
                self._unsorted = True
            self._unsent[seq] = None

    def load(self, entries: Iterable[dict[str, Any]]) -> None:
        for entry in sorted(entries, key=lambda e: e["seq"]):
            self.add(entry)
        self.touched.clear()  # as on disk

    def remove(self, seq: int) -> dict[str, Any] | None:
        entry = self.entries.pop(seq, None)
        if entry is None:
            return None
        self.touched.add(entry["letter_id"])
        self._unsent.pop(seq, None)
        seqs = self._by_letter.get(entry["letter_id"], [])
        if seq in seqs:
            seqs.remove(seq)
        if not seqs:
            self._by_letter.pop(entry["letter_id"], None)
        if self.refused.get(entry["letter_id"]) == seq:
            del self.refused[entry["letter_id"]]
        return entry

    # --- reading -------------------------------------------------------------------------

    def has(self, letter_id: str) -> bool:
        return letter_id in self._by_letter

    def of_letter(self, letter_id: str) -> list[dict[str, Any]]:
        return [self.entries[s] for s in self._by_letter.get(letter_id, ())]

    def unsent(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Updates ready to leave, in order; none of a letter with a refused update."""
        if self._unsorted:
            self._unsent = dict.fromkeys(sorted(self._unsent))
            self._unsorted = False
        out = []
        for seq in self._unsent:
            if limit is not None and len(out) >= limit:
                break
            entry = self.entries[seq]
            if entry["letter_id"] not in self.refused:
                out.append(entry)
        return out

    def settled(self, before: float, limit: int, *, moving: Callable[[str], bool] | None = None,
                moving_before: float = float("inf")) -> list[str]:
        """Letters worth reading back: every update of theirs was answered 202, the last
        one at or before ``before`` (``moving_before`` for letters ``moving`` says will
        change again soon); oldest first (by their oldest unproven update)."""
        out: list[str] = []
        seen: set[str] = set()
        for entry in self.entries.values():
            letter_id = entry["letter_id"]
            if letter_id in seen:
                continue
            seen.add(letter_id)
            mine = self.of_letter(letter_id)
            if not all(e.get("sent") for e in mine):
                continue
            last = max(e["sent"] for e in mine)
            if last <= before and (last <= moving_before or moving is None or not moving(letter_id)):
                out.append(letter_id)
                if len(out) >= limit:
                    break
        return out

    def counts(self) -> dict[str, int]:
        sent = sum(1 for e in self.entries.values() if e.get("sent"))
        return {"unsent": len(self._unsent), "sent": sent, "refused": len(self.refused),
                "total": len(self.entries)}

    def oldest_sent(self) -> float | None:
        """When the oldest update still unproven was answered 202 (None: none waits)."""
        times = [e["sent"] for e in self.entries.values() if e.get("sent")]
        return min(times) if times else None

    # --- moving --------------------------------------------------------------------------

    def mark_tried(self, seqs: Iterable[int], at: float | None) -> None:
        for seq in seqs:
            if seq in self.entries:
                self.touched.add(self.entries[seq]["letter_id"])
                if at is None:
                    self.entries[seq].pop("tried", None)
                else:
                    self.entries[seq]["tried"] = at

    def mark_sent(self, seqs: Iterable[int], at: float) -> list[dict[str, Any]]:
        done = []
        for seq in seqs:
            entry = self.entries.get(seq)
            if entry is None or entry.get("sent") or entry.get("refused"):
                continue
            entry["sent"] = at
            self.touched.add(entry["letter_id"])
            self._unsent.pop(seq, None)
            done.append(entry)
        return done

    def mark_unsent(self, seq: int) -> None:
        """Send it again (lost on Notify's side, or an operator's retry of a refusal)."""
        entry = self.entries[seq]
        self.touched.add(entry["letter_id"])
        entry.pop("sent", None)
        entry.pop("tried", None)
        entry.pop("refused", None)
        if self.refused.get(entry["letter_id"]) == seq:
            del self.refused[entry["letter_id"]]
        if seq not in self._unsent:
            self._unsent[seq] = None
            self._unsorted = True

    def mark_refused(self, seq: int, status: int, detail: str, at: float) -> dict[str, Any]:
        entry = self.entries[seq]
        self.touched.add(entry["letter_id"])
        entry["refused"] = {"status": status, "detail": detail, "at": at}
        self._unsent.pop(seq, None)
        self.refused[entry["letter_id"]] = seq
        return entry
