"""The letter store: letters, their status history, and the outbox of unacknowledged updates.

Layout of ``state_dir``::

    hot.json             tinydb database (tables letters, outbox, meta): only in-flight letters
    hot.journal          what changed since hot.json was written, one line per flush
    hot.json.bak         the previous generation of hot.json (automatic fallback) ...
    hot.journal.bak      ... and the journal that followed it (``appliance.store.hotlog``)
    archive/YYYY-MM-DD.jsonl   finished letters, one full record per line (append-only)
    archive/index.tsv    id, status, rev, date per archived letter (cheap to load)

Why: a status change must not rewrite a file that grows with every letter ever seen, so
the hot file holds only letters the appliance still works on (or whose status updates the
API has not yet acknowledged).  Everything else is appended once to the archive.

Group commit: mutations only change memory and set ``dirty``; ``flush()`` makes them durable
in one go (archive appends fsynced first, then one fsynced journal line with just the
letters and outbox entries that changed; hot.json is rewritten atomically only when the
journal outgrows it, and on close).  The pipeline calls ``flush()`` before every side
effect.  A crash between the archive append and the journal line leaves a letter in both
places; on open the copy with the higher ``rev`` (bumped on every mutation) wins, so
nothing is lost or resurrected.

One process owns a state directory (``store.lock``, flock); ``Store(dir, readonly=True)``
reads without the lock and refuses to flush (for CLI inspection while the daemon runs).
"""

# Size: one class on purpose: every mutation keeps the same invariants (rev bumped, outbox
# counted, archive queued, dirty set) and a crash-safety argument is easier to check in one place.

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections import Counter, deque
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from tinydb import TinyDB

from appliance.core.errors import StateError, UnknownLetter
from appliance.core.status import (
    NEEDS_REASON,
    REJECT_REASONS,
    RETURN_REASONS,
    Status,
    TransitionError,
    check_transition,
    is_final,
    validate_reason,
)
from appliance.store import hotlog
from appliance.store.journal import Journal, dumps, fsync_dir, private_dir
from appliance.store.outbox import OutboxBook
from appliance.store.storage import Archive, AtomicJSONStorage, CorruptFile, bak_path

log = logging.getLogger(__name__)

HOT_NAME = "hot.json"
SCHEMA = 1
#: The journal is folded into hot.json once it is larger than this or than hot.json.
COMPACT_MIN_BYTES = 1 << 20
#: Fields ``update()`` may not touch: identity, status (use set_status) and bookkeeping.
PROTECTED_FIELDS = frozenset({"id", "status", "history", "rev", "created", "updated"})


class Store:
    """Durable letter state for one appliance (one process per ``state_dir``)."""

    def __init__(self, state_dir: Path, *, clock: Callable[[], float] = time.time,
                 readonly: bool = False):
        self.state_dir = Path(state_dir)
        self.clock = clock
        self.readonly = readonly
        self.hot_path = self.state_dir / HOT_NAME
        self.journal_path = self.state_dir / hotlog.JOURNAL_NAME
        self._lock_fd: int | None = None
        if not readonly:
            private_dir(self.state_dir)
            self._lock()
        try:
            self._open(readonly)
        except BaseException:
            self._unlock()  # a refused open must not keep the directory locked
            raise

    def _open(self, readonly: bool) -> None:
        self._db = TinyDB(self.hot_path, storage=AtomicJSONStorage, readonly=readonly)
        self._storage: AtomicJSONStorage = self._db.storage  # type: ignore[assignment]
        self._archive = Archive(self.state_dir / "archive", create=not readonly)

        self._letters: dict[str, dict[str, Any]] = {}      # hot letters by id
        self._doc_ids: dict[str, int] = {}                  # id -> tinydb doc id in hot.json
        self._book = OutboxBook()                           # status updates until proven
        self._to_archive: dict[str, dict[str, Any]] = {}    # finished, not yet appended
        # Archived letters (on disk, in self._archive.index, or queued) per status, as listed
        self._archived_counts: Counter[str] = Counter()
        self._next_seq = 1
        self._next_doc = 1
        self._next_run = 1
        self._dirty = False
        self._writing: dict[str, dict[str, Any]] = {}  # archived, being appended by a flush
        self._write_lock = threading.Lock()
        self._fragments: dict[str, tuple[int, bytes]] = {}  # id -> (rev, JSON) of hot letters
        self._changed: set[str] = set()  # letters added, changed or dropped since the last flush
        # Hot letters by stage and status, and those in flight, kept as records change: the
        # pipeline asks on every poll, and a walk over 2 500 letters each time added up.
        self._indexed: dict[str, tuple[str, str, bool]] = {}  # id -> (stage, status, in flight)
        self._stage_counts: Counter[str] = Counter()
        self._status_counts: Counter[str] = Counter()
        self._flying: dict[str, None] = {}
        self._journal = Journal(self.journal_path)
        self._gen = 0                    # generation of hot.json; journal lines carry it
        self._have_base = False          # hot.json holds a snapshot to journal against
        self._compact_next = False       # the next flush rewrites hot.json
        self._journal_bytes = 0          # journal written since the last compaction
        self._base_bytes = 0             # size of the last snapshot
        self._pending: deque[tuple] = deque()  # prepared writes, in order (see prepare_flush)
        self._queue_lock = threading.Lock()
        self._load()

    # --- opening ------------------------------------------------------------------------

    def _lock(self) -> None:
        fd = os.open(self.state_dir / "store.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateError(
                f"state directory {self.state_dir} is in use by another appliance process; "
                "stop it first (or open read-only)"
            ) from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _read_hot(self) -> dict[str, Any]:
        """hot.json, or hot.json.bak if hot.json is unreadable (with a warning)."""
        try:
            doc = self._storage.read()
            if doc is not None:
                return doc
            problem = None
        except CorruptFile as e:
            problem = e
        bak = bak_path(self.hot_path)
        try:
            backup = AtomicJSONStorage(bak, readonly=True).read()
        except CorruptFile:
            backup = None
        if problem is None:  # hot.json missing
            if backup is None:
                return {}
            log.warning("%s is missing; continuing from %s", self.hot_path, bak)
        elif backup is None:
            raise StateError(
                f"{self.hot_path} is corrupt ({problem.detail}) and there is no usable {bak.name}; "
                f"restore {self.hot_path} from a backup of the state directory"
            )
        else:
            log.warning("%s is corrupt (%s); continuing from the previous generation %s",
                        self.hot_path, problem.detail, bak)
            if not self.readonly:  # keep the evidence, never rotate it into .bak
                os.replace(self.hot_path, self.hot_path.with_name(HOT_NAME + ".corrupt"))
        self._dirty = self._compact_next = not self.readonly
        return backup

    def _load(self) -> None:
        doc = self._read_hot()
        self._have_base = bool(doc)
        try:
            doc = self._replay_journal(doc)
            self._load_hot(doc)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise StateError(f"{self.hot_path} is not an appliance state file ({e!r}); "
                             f"restore it from {bak_path(self.hot_path).name} or a backup") from None
        self._load_archive_index()

    def _replay_journal(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The snapshot with the journal lines that follow it applied (``hotlog``)."""
        journals = [Journal(p) for p in (bak_path(self.journal_path), self.journal_path)]
        lines = [rec for j in journals for rec in j.records()]
        self._base_bytes = self.hot_path.stat().st_size if self._have_base and self.hot_path.exists() else 0
        self._journal_bytes = self.journal_path.stat().st_size if self.journal_path.exists() else 0
        if not lines:
            return doc
        replayed, applied = hotlog.replay(doc, lines)
        if applied and not self._have_base:  # a journal with no snapshot under it: compact it
            self._compact_next = self._dirty = not self.readonly
        return replayed

    def _load_hot(self, doc: dict[str, Any]) -> None:
        meta = (doc.get("meta") or {}).get("1") or {}
        if meta.get("schema", SCHEMA) != SCHEMA:
            raise StateError(f"{self.hot_path} has schema {meta.get('schema')}, this "
                             f"appliance understands {SCHEMA}; upgrade the appliance")
        self._gen = int(meta.get("gen", 0))
        self._next_seq = int(meta.get("next_seq", 1))
        self._next_doc = int(meta.get("next_doc", 1))
        self._next_run = int(meta.get("next_run", 1))
        for doc_id, rec in (doc.get("letters") or {}).items():
            self._letters[rec["id"]] = rec
            self._doc_ids[rec["id"]] = int(doc_id)
            self._index(rec["id"])
            self._next_doc = max(self._next_doc, int(doc_id) + 1)
        entries = list((doc.get("outbox") or {}).values())
        self._book.load(entries)
        for entry in entries:
            self._next_seq = max(self._next_seq, int(entry["seq"]) + 1)

    def _load_archive_index(self) -> None:
        index = self._archive_index = self._archive.index
        # A letter in both places: the archive copy is newer unless the hot one was changed
        # after archiving (a late status such as RETURNED on a DISPATCHED letter).
        for letter_id in list(self._letters):
            row = index.row(letter_id)
            if row is None:
                continue
            if row[1] >= self._letters[letter_id].get("rev", 0):
                self._drop_hot(letter_id)
                self._dirty = not self.readonly
            else:
                index.hide(letter_id)
        self._archived_counts = index.status_counts()

    def _index(self, letter_id: str) -> None:
        """Bring the stage/status counts and the in-flight set up to date for one letter."""
        rec = self._letters.get(letter_id)
        new = None if rec is None else (
            rec["stage"], rec["status"], not is_final(rec["status"]) and rec["stage"] != "let-go")
        old = self._indexed.pop(letter_id, None)
        if old is not None:
            self._stage_counts[old[0]] -= 1
            self._status_counts[old[1]] -= 1
        if new is not None:
            self._indexed[letter_id] = new
            self._stage_counts[new[0]] += 1
            self._status_counts[new[1]] += 1
        if new is not None and new[2]:
            self._flying[letter_id] = None
        else:
            self._flying.pop(letter_id, None)

    def _drop_hot(self, letter_id: str) -> None:
        self._changed.add(letter_id)
        self._letters.pop(letter_id, None)
        self._index(letter_id)
        self._doc_ids.pop(letter_id, None)
        for entry in self._book.of_letter(letter_id):
            self._book.remove(entry["seq"])

    # --- reading ------------------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        return self._dirty

    def is_known(self, letter_id: str) -> bool:
        return (letter_id in self._letters or letter_id in self._to_archive or letter_id in self._writing
                or self._archive_index.row(letter_id) is not None)

    def _queued(self) -> list[dict[str, Any]]:
        """Finished letters not yet in the archive's index, newest first."""
        out, seen = [], set()
        for group in (self._to_archive, self._writing):
            for letter_id in reversed(list(group)):
                if letter_id not in seen and letter_id not in self._letters:
                    seen.add(letter_id)
                    out.append(group[letter_id])
        return out

    def archived_ids(self) -> set[str]:
        return self._archive_index.shown_ids() | {r["id"] for r in self._queued()}

    def archived_page(self, q: str = "", status: str | None = None, start: int = 0,
                      limit: int = 100) -> tuple[int, list[tuple[str, str, str | None]]]:
        """(how many archived letters match, up to ``limit`` of them from ``start`` as (id,
        status, specification)), most recently archived first.  ``q``: part of the id.

        Without an id search the total comes from the kept counts, and a page costs one
        indexed query: paging a day's history must cost about what the page holds."""
        queued = [(r["id"], r["status"], r.get("specification_id")) for r in self._queued()
                  if (not q or q in r["id"]) and (not status or r["status"] == status)]
        if q:
            total = len(queued) + self._archive_index.count(q, status)
        else:
            total = self._archived_counts[status] if status else sum(self._archived_counts.values())
        start, limit = max(0, start), max(0, limit)
        page = queued[start:start + limit]
        page += self._archive_index.page(q, status, max(0, start - len(queued)), limit - len(page))
        return total, page

    def archived_counts(self) -> dict[str, int]:
        return {status: n for status, n in self._archived_counts.items() if n > 0}

    def get(self, letter_id: str) -> dict[str, Any] | None:
        """A copy of the letter's record (hot first, then the archive), or None."""
        rec = self._letters.get(letter_id) or self._to_archive.get(letter_id) or self._writing.get(letter_id)
        if rec is None and self._archive_index.row(letter_id) is not None:
            rec = self._archive.find(letter_id)
        return _copy(rec) if rec is not None else None

    def peek(self, letter_id: str) -> Mapping[str, Any] | None:
        """A hot letter's live record, read-only, without the copy ``get`` makes (loops that
        only look at a field or two of many letters; do not keep it).  None for a letter
        not hot (archived ones: ``get``)."""
        rec = self._letters.get(letter_id)
        return MappingProxyType(rec) if rec is not None else None

    def in_flight(self) -> list[dict[str, Any]]:
        """Letters this appliance works on: not final, and not let go back to Notify."""
        return [_copy(r) for r in self._letters.values()
                if not is_final(r["status"]) and r["stage"] != "let-go"]

    def in_flight_ids(self) -> list[str]:
        """Ids of ``in_flight`` letters, without copying their records (hot loops)."""
        return list(self._flying)

    def in_flight_count(self) -> int:
        return len(self._flying)

    def letters(self, status: str | None = None, stage: str | None = None) -> list[dict[str, Any]]:
        return [_copy(r) for r in self._letters.values()
                if (status is None or r["status"] == status)
                and (stage is None or r["stage"] == stage)]

    def stage_count(self, stage: str) -> int:
        """Hot letters in ``stage``, without copying their records (hot loops)."""
        return self._stage_counts[stage]

    def counts(self) -> dict[str, int]:
        total = self._archived_counts + self._status_counts  # keeps only counts above 0
        return dict(total)

    def outbox_pending(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Every update not yet proven applied (unsent, sent or refused), in order."""
        out = []
        for entry in self._book.entries.values():
            if limit is not None and len(out) >= limit:
                break
            out.append(dict(entry))
        return out

    def outbox_unsent(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Updates ready to leave, in order (none of a letter with a refused update)."""
        return [dict(e) for e in self._book.unsent(limit)]

    def outbox_of(self, letter_id: str) -> list[dict[str, Any]]:
        return [dict(e) for e in self._book.of_letter(letter_id)]

    def outbox_settled(self, before: float, limit: int = 64,
                       moving_before: float | None = None) -> list[str]:
        """Letters whose updates were all answered 202, the last at or before ``before``
        (or ``moving_before`` for a letter not yet final): what the prover reads back,
        oldest first."""
        if moving_before is None:
            return self._book.settled(before, limit)
        return self._book.settled(before, limit, moving_before=moving_before,
                                  moving=lambda i: not is_final(self.get_status(i)))

    def outbox_counts(self) -> dict[str, Any]:
        """unsent / sent (202, not proven) / refused (letters) / total, and the age basis
        of the oldest unproven update (``oldest_sent``, a clock value or None)."""
        return {**self._book.counts(), "oldest_sent": self._book.oldest_sent()}

    def refused_letters(self) -> list[str]:
        return list(self._book.refused)

    # --- mutating -----------------------------------------------------------------------

    def _now(self) -> float:
        return round(float(self.clock()), 3)

    def add_letter(self, letter_id: str, specification_id: str, group_id: str,
                   sha256: str, listed_at: float | None = None) -> bool:
        """Record a newly listed letter; False (and no change) if it was ever seen before.
        ``listed_at``: when the listing that showed it was asked for (its visibility
        window at Notify starts no earlier)."""
        if not isinstance(letter_id, str) or not letter_id or any(c in letter_id for c in "\t\r\n"):
            raise ValueError(f"invalid letter id {letter_id!r}")
        if self.is_known(letter_id):
            return False
        now = self._now()
        self._letters[letter_id] = {
            "id": letter_id, "specification_id": specification_id, "group_id": group_id,
            "sha256": sha256, "status": Status.PENDING.value, "stage": "new", "printer": None,
            "job": None, "device": None, "reason_code": None, "reason_text": None, "pdf": None,
            "pages": None, "sheets": None, "attempts": 0, "created": now, "updated": now,
            "rev": 1, "history": [{"t": now, "event": "listed"}],
            "listed_at": round(listed_at, 3) if listed_at is not None else now,
        }
        self._assign_doc(letter_id)
        self._changed.add(letter_id)
        self._index(letter_id)
        self._dirty = True
        return True

    def _assign_doc(self, letter_id: str) -> None:
        self._doc_ids[letter_id] = self._next_doc
        self._next_doc += 1

    def _hot(self, letter_id: str) -> dict[str, Any]:
        """The live hot record, bringing it back from the archive if it was finished."""
        rec = self._letters.get(letter_id)
        if rec is not None:
            return rec
        rec = self._to_archive.pop(letter_id, None)
        if rec is None and letter_id in self._writing:  # a flush thread is appending it: copy
            rec = json.loads(dumps(self._writing[letter_id]))
        in_index = False
        if rec is None:
            in_index = self._archive_index.row(letter_id) is not None
            rec = self._archive.find(letter_id) if in_index else None
        if rec is None:
            raise UnknownLetter(letter_id)
        self._archived_counts[rec["status"]] -= 1  # no longer listed as archived
        self._letters[letter_id] = rec
        # A queued copy may have reached the index meanwhile: look after the line above (see
        # _write_item), unless the row is known already.
        if in_index or self._archive_index.row(letter_id) is not None:
            self._archive_index.hide(letter_id)
        if letter_id not in self._doc_ids:
            self._assign_doc(letter_id)
        self._index(letter_id)
        return rec

    def _touch(self, rec: dict[str, Any], now: float) -> None:
        rec["updated"] = now
        rec["rev"] = rec.get("rev", 0) + 1
        self._changed.add(rec["id"])
        self._index(rec["id"])
        self._dirty = True

    def update(self, letter_id: str, *, event: str | None = None, **fields: Any) -> dict[str, Any]:
        """Set fields (stage, printer, job, pdf, pages, ...); log ``event`` in the history."""
        bad = PROTECTED_FIELDS.intersection(fields)
        if bad:
            raise ValueError(f"update() cannot set {', '.join(sorted(bad))}"
                             " (use set_status for status)")
        rec = self._hot(letter_id)
        now = self._now()
        if "stage" in fields and fields["stage"] != rec.get("stage"):
            rec["stage_at"] = now  # how long a letter has been in its stage (appliance.core.stuck)
        rec.update(fields)
        if event is not None:
            rec["history"].append({"t": now, "event": event, **fields})
        self._touch(rec, now)
        return _copy(rec)

    def set_status(self, letter_id: str, status: str, reason_code: str | None = None,
                   reason_text: str | None = None, *, event: str | None = None,
                   deadline: float | None = None) -> bool:
        """Move the letter forward and queue the update for the API.

        Same status: False, nothing queued.  Backwards/unknown: TransitionError.  Statuses
        that need a reason get the standard text for a known code when none is given.
        ``deadline``: the update must be answered 202 before then or be withdrawn (an
        ACCEPTED within the listing's visibility window, see ``let_go``).
        """
        current = self.get_status(letter_id)
        if not check_transition(current, status):
            return False
        if reason_code is not None and reason_text is None:
            reason_text = REJECT_REASONS.get(reason_code) or RETURN_REASONS.get(reason_code)
        validate_reason(status, reason_code, reason_text)
        if status in NEEDS_REASON and not (reason_code and reason_text):
            raise TransitionError(f"{status} needs a reason code and reason text")
        rec = self._hot(letter_id)
        now = self._now()
        rec.update(status=str(status), reason_code=reason_code, reason_text=reason_text)
        entry = {"t": now, "event": event or "status", "status": str(status)}
        if reason_code is not None:
            entry.update(reason_code=reason_code, reason_text=reason_text)
        rec["history"].append(entry)
        self._queue_update(letter_id, str(status), reason_code, reason_text, now, deadline)
        self._touch(rec, now)
        return True

    def _queue_update(self, letter_id: str, status: str, code: str | None, text: str | None,
                      now: float, deadline: float | None = None) -> None:
        seq = self._next_seq
        self._next_seq += 1
        entry = {"seq": seq, "letter_id": letter_id, "status": status, "reason_code": code,
                 "reason_text": text, "created": now}
        if deadline is not None:
            entry["deadline"] = round(deadline, 3)
        self._book.add(entry)

    def next_print_run(self) -> int:
        """A new print-run number (printed in sheet marks): never reused, even across restarts,
        because it is saved with the intent that uses it."""
        run, self._next_run = self._next_run, self._next_run + 1
        self._dirty = True
        return run

    def get_status(self, letter_id: str) -> str:
        rec = self._letters.get(letter_id) or self._to_archive.get(letter_id) or self._writing.get(letter_id)
        if rec is not None:
            return rec["status"]
        row = self._archive_index.row(letter_id)
        if row is not None:
            return row[0]
        raise UnknownLetter(letter_id)

    def outbox_ack(self, seqs: Iterable[int]) -> None:
        """These updates are known applied at Notify (tests, and callers that know each one
        took): drop them at once, archiving letters left final with nothing to prove."""
        now = self._now()
        for seq in seqs:
            entry = self._book.remove(int(seq))
            if entry is not None:
                self._proved(entry["letter_id"], [(entry, "proven")], now)

    def outbox_tried(self, seqs: Iterable[int], *, clear: bool = False) -> None:
        """A request carrying these updates is about to leave (an ACCEPTED tried and not
        answered before its deadline may have reached Notify: see ``OutboxSender``);
        ``clear``: it was answered with an error, so it did not reach Notify's queue."""
        seqs = list(seqs)
        if seqs:
            self._book.mark_tried(seqs, None if clear else self._now())
            self._dirty = True

    def outbox_sent(self, seqs: Iterable[int]) -> list[dict[str, Any]]:
        """Notify answered 202 (queued, not applied): the entries now sent."""
        now = self._now()
        done = self._book.mark_sent(seqs, now)
        for entry in done:
            rec = self._letters.get(entry["letter_id"])
            if rec is not None:
                rec["history"].append({"t": now, "event": "sent", "status": entry["status"]})
                self._touch(rec, now)
        self._dirty = self._dirty or bool(done)
        return [dict(e) for e in done]

    def outbox_proven(self, letter_id: str, shown: str, upto: int) -> None:
        """A read-back showed ``shown``: the update ``upto`` set it and is proven; older ones
        of this letter are superseded (Notify's state no longer depends on them)."""
        now = self._now()
        done = []
        for entry in self._book.of_letter(letter_id):
            if entry["seq"] > upto:
                break
            self._book.remove(entry["seq"])
            done.append((entry, "proven" if entry["seq"] == upto else "superseded"))
        self._proved(letter_id, done, now, shown)

    def _proved(self, letter_id: str, done: list[tuple[dict, str]], now: float,
                shown: str | None = None) -> None:
        if not done:
            return
        self._dirty = True
        rec = self._letters.get(letter_id)
        if rec is None:
            return
        for entry, how in done:
            event = {"t": now, "event": how, "status": entry["status"]}
            if how == "proven" and shown is not None:
                event["at_notify"] = shown
            rec["history"].append(event)
        self._touch(rec, now)
        self._archive_if_done(letter_id)

    def _archive_if_done(self, letter_id: str) -> None:
        rec = self._letters.get(letter_id)
        if rec is not None and is_final(rec["status"]) and not self._book.has(letter_id):
            self._queue_archive(letter_id)

    def outbox_resend(self, letter_id: str, why: str) -> int:
        """Notify lost updates of this letter: send again, in order, everything of it not
        proven; if nothing is left to prove, its current status.  Returns how many.

        A resent ACCEPTED loses its deadline: it was answered 202 once, so the letter went on
        to be printed, and the correction must reach Notify however late it is."""
        rec = self._hot(letter_id)
        now = self._now()
        entries = [e for e in self._book.of_letter(letter_id) if not e.get("refused")]
        for entry in entries:
            self._book.mark_unsent(entry["seq"])
            entry.pop("deadline", None)
        if not entries and rec["status"] != Status.PENDING and not self._book.has(letter_id):
            self._queue_update(letter_id, rec["status"], rec.get("reason_code"),
                               rec.get("reason_text"), now)
            entries = self._book.of_letter(letter_id)
        rec["history"].append({"t": now, "event": f"resend: {why}",
                               "statuses": [e["status"] for e in entries]})
        self._touch(rec, now)
        return len(entries)

    def outbox_undeadline(self, seq: int) -> None:
        """Send this update whenever it can go, deadline or not (see ``OutboxSender._expire``)."""
        entry = self._book.entries.get(seq)
        if entry is not None:
            entry.pop("deadline", None)
            self._touch(self._hot(entry["letter_id"]), self._now())

    def outbox_refuse(self, seq: int, http_status: int, detail: str) -> dict[str, Any] | None:
        """Notify refused this update: it stays, marked, and holds back the letter's later
        updates until an operator resolves it (``resolve_refused``)."""
        if seq not in self._book.entries:
            return None
        now = self._now()
        entry = self._book.mark_refused(seq, http_status, detail, now)
        rec = self._hot(entry["letter_id"])
        rec["refused"] = {"status": entry["status"], "http_status": http_status,
                          "detail": detail, "at": now}
        rec["history"].append({"t": now, "event": "refused by Notify", "status": entry["status"],
                               "http_status": http_status, "detail": detail})
        self._touch(rec, now)
        return dict(entry)

    def resolve_refused(self, letter_id: str, action: str, note: str = "") -> str:
        """An operator's answer to a refused update: ``retry`` sends it again; ``handled``
        drops it (the operator dealt with it at Notify) and lets later updates leave."""
        seq = self._book.refused.get(letter_id)
        if seq is None:
            raise StateError(f"letter {letter_id} has no update refused by Notify")
        if action not in ("retry", "handled"):
            raise ValueError(f"unknown action {action!r}")
        rec = self._hot(letter_id)
        now = self._now()
        status = self._book.entries[seq]["status"]
        if action == "retry":
            self._book.mark_unsent(seq)
        else:
            self._book.remove(seq)
        rec["refused"] = None
        rec["history"].append({"t": now, "event": f"refused update {action} by operator",
                               "status": status, "note": note})
        self._touch(rec, now)
        if action == "handled":
            self._archive_if_done(letter_id)
        return status

    def let_go(self, letter_id: str, why: str) -> dict[str, Any]:
        """Give a listed letter back to Notify's queue: it was not ACCEPTED (answered 202)
        within its visibility window, so another appliance may list it now.  Its unsent
        updates are withdrawn; it is taken again only if this appliance lists it again."""
        rec = self._hot(letter_id)
        if any(e.get("sent") or e.get("tried") for e in self._book.of_letter(letter_id)):
            raise StateError(f"letter {letter_id}: an update already left; cannot let it go")
        for entry in self._book.of_letter(letter_id):
            self._book.remove(entry["seq"])
        now = self._now()
        if rec.get("stage") != "let-go":
            rec["stage_at"] = now
        rec.update(status=Status.PENDING.value, stage="let-go", reason_code=None, reason_text=None,
                   pdf=None, refused=None)
        rec["history"].append({"t": now, "event": f"let go: {why}"})
        self._touch(rec, now)
        return _copy(rec)

    def withdraw_unsure(self, letter_id: str) -> dict[str, Any]:
        """An ACCEPTED left but was not answered before its deadline: withdraw it (never
        sent again by itself) and put the letter before a person (stage accept-unsure)."""
        rec = self._hot(letter_id)
        for entry in self._book.of_letter(letter_id):
            if not entry.get("sent"):
                self._book.remove(entry["seq"])
        now = self._now()
        rec.update(stage="accept-unsure", stage_at=now)
        rec["history"].append({"t": now, "event": "ACCEPTED unanswered before its deadline: "
                                                 "Notify may or may not have it"})
        self._touch(rec, now)
        return _copy(rec)

    def forget_let_go(self, older_than: float) -> int:
        """Drop let-go letters untouched since ``older_than``: another appliance took them
        (or Notify did), and nothing of theirs is ours to keep.  Returns how many."""
        gone = [i for i, r in self._letters.items()
                if r["stage"] == "let-go" and (r.get("stage_at") or r["updated"]) < older_than]
        for letter_id in gone:
            self._drop_hot(letter_id)
        self._dirty = self._dirty or bool(gone)
        return len(gone)

    def retake(self, letter_id: str, listed_at: float) -> dict[str, Any]:
        """This appliance listed a let-go letter again: it is ours for a new window."""
        rec = self._hot(letter_id)
        now = self._now()
        rec.update(stage="new", stage_at=now, listed_at=round(listed_at, 3))
        rec["history"].append({"t": now, "event": "listed again"})
        self._touch(rec, now)
        return _copy(rec)

    def _queue_archive(self, letter_id: str) -> None:
        rec = self._letters.pop(letter_id)
        self._doc_ids.pop(letter_id, None)
        self._changed.add(letter_id)
        self._index(letter_id)
        self._to_archive[letter_id] = rec
        self._archived_counts[rec["status"]] += 1

    # --- durability ---------------------------------------------------------------------

    def flush(self, *, compact: bool = False) -> None:
        """Make every change so far durable: archive appends first, then a journal line
        (or, when due or ``compact``, a new hot.json)."""
        if compact and not self.readonly:
            self._compact_next = self._dirty = True
        write = self.prepare_flush()
        if write is not None:
            write()

    def prepare_flush(self) -> Callable[[], None] | None:
        """Encode what a flush must write (on the caller's thread: only what changed, unless
        a compaction is due) and return the writing itself, which touches only files and may
        run in a worker thread while the store changes on: those changes leave the store
        dirty for the next flush.  None: nothing to do.

        Prepared writes queue in order and any ``write`` writes every one queued so far, so
        journal lines reach the disk in the order they were encoded whichever thread runs
        first.  A write that fails leaves its items queued (the store dirty): the next
        flush tries them again, in order, before anything newer."""
        if not self._dirty:
            return None
        if self.readonly:
            raise PermissionError(f"{self.state_dir} was opened read-only")
        items: list[tuple] = []
        if self._to_archive:
            archived = dict(self._to_archive)
            self._to_archive.clear()
            self._writing.update(archived)  # still readable by get() until they are on disk
            items.append(("archive", time.strftime("%Y-%m-%d", time.gmtime(self.clock())), archived))
        if (self._compact_next or not self._have_base
                or self._journal_bytes > max(COMPACT_MIN_BYTES, self._base_bytes)):
            self._gen += 1
            text = self._serialize_hot()
            self._changed.clear()
            self._book.take_touched()
            self._compact_next, self._have_base = False, True
            self._journal_bytes, self._base_bytes = 0, len(text)
            items.append(("snapshot", text))
        else:
            line = self._journal_line()
            self._journal_bytes += len(line) + 1
            items.append(("line", line))
        self._dirty = False
        with self._queue_lock:
            self._pending.extend(items)
        return self._write_pending

    def _write_pending(self) -> None:
        with self._write_lock:  # one writer at a time, the queue in order
            while True:
                with self._queue_lock:
                    if not self._pending:
                        return
                    item = self._pending[0]
                try:
                    self._write_item(item)
                except BaseException:
                    self._journal.close()  # reopened with a torn tail cut before the next append
                    self._dirty = True
                    raise
                with self._queue_lock:
                    self._pending.popleft()

    def _write_item(self, item: tuple) -> None:
        kind = item[0]
        if kind == "archive":
            _, date, archived = item
            self._archive.append(date, list(archived.values()))
            for letter_id, rec in archived.items():
                if self._writing.get(letter_id) is rec:  # not a newer copy queued since
                    del self._writing[letter_id]
                # The new row shows unless the letter came back (or was queued again) meanwhile;
                # _hot puts a letter in _letters before it looks for a row, so either it sees
                # this row and hides it, or this sees the letter.
                self._archive_index.hide(letter_id, letter_id in self._letters or letter_id in self._to_archive
                                 or letter_id in self._writing)
        elif kind == "line":
            self._journal.append_lines([item[1]])
        else:  # snapshot: hot.json at the next generation, then the journal becomes .bak
            self._storage.write_serialized_bytes(item[1])
            self._journal.close()
            if self.journal_path.exists():
                os.replace(self.journal_path, bak_path(self.journal_path))
                fsync_dir(self.state_dir)

    def _journal_line(self) -> bytes:
        """The letters and outbox entries changed since the last flush, as one journal line."""
        changed = self._changed | self._book.take_touched()
        self._changed = set()
        puts, dels, outbox = [], [], {}
        for letter_id in changed:
            rec = self._letters.get(letter_id)
            if rec is None:
                dels.append(letter_id)
                self._fragments.pop(letter_id, None)
                continue
            puts.append((self._doc_ids[letter_id], self._fragment(letter_id, rec)))
            outbox[letter_id] = self._book.of_letter(letter_id)
        return hotlog.encode_line(self._gen, puts, dels, outbox, self._meta())

    def _meta(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "next_seq": self._next_seq, "next_doc": self._next_doc,
                "next_run": self._next_run}

    def _fragment(self, letter_id: str, rec: dict[str, Any]) -> bytes:
        """The letter's JSON, cached by ``rev`` (every mutation bumps it): a journal line and
        a compaction encode only the letters that changed since they were last encoded."""
        cached = self._fragments.get(letter_id)
        if cached is None or cached[0] != rec["rev"]:
            cached = self._fragments[letter_id] = (rec["rev"], dumps(rec))
        return cached[1]

    def _serialize_hot(self) -> bytes:
        """The hot tinydb document (a compaction's snapshot)."""
        parts = [b'"%d":%b' % (self._doc_ids[i], self._fragment(i, rec)) for i, rec in self._letters.items()]
        self._fragments = {i: self._fragments[i] for i in self._letters}  # none of letters gone
        outbox = dumps({str(seq): e for seq, e in self._book.entries.items()})
        meta = dumps({"1": {**self._meta(), "gen": self._gen}})
        return b'{"letters":{' + b",".join(parts) + b'},"outbox":' + outbox + b',"meta":' + meta + b"}"

    def close(self) -> None:
        """Flush and fold the journal into hot.json: a stopped appliance leaves one file."""
        if not self.readonly:
            self.flush(compact=self._journal_bytes > 0 or self._dirty)
            self._journal.close()
        self._db.close()
        self._archive.close()
        self._unlock()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



def _copy(rec: dict[str, Any]) -> dict[str, Any]:
    """A copy callers may keep or change without touching the store."""
    return {**rec, "history": [dict(h) for h in rec["history"]]}


__all__ = ["Store", "StateError", "UnknownLetter", "TransitionError"]
