"""Which letters are archived, with their status, rev and specification, newest first --
kept in a SQLite file instead of in memory.

``index.tsv`` (appended and fsynced with the archive) stays the truth; ``index.sqlite``
beside it is a cache of it.  The cache records how many bytes of the tsv it holds and the
bytes just before that point, so on open it catches up from the tsv's tail (lines a crash
left unapplied), and it is rebuilt from the whole tsv when it is missing, unreadable, of
another schema or of another tsv.  Why: a day's history (1 000 000 archived letters) held
as Python dicts cost 150 MB of the daemon's memory and a second of every start; in SQLite
it costs a page cache and an indexed lookup per question.

WAL with ``synchronous=NORMAL``: a power cut may lose the last commits, never corrupt the
file, and lost commits are lines the next open reads again from the tsv.

Letters archived and then brought back (a late status such as RETURNED) keep their row
until they are archived again; the store ``hide``s such rows so that listings and counts
show each letter once.  All access goes through one lock: the store's flush thread writes
while the event loop reads.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

from appliance.store.journal import open_private

log = logging.getLogger(__name__)

SCHEMA = 1
FINGERPRINT_BYTES = 64  # of the tsv just before the point the cache holds
CHUNK = 1 << 22

Row = tuple[str, str, int, "str | None"]  # id, status, rev, specification


def parse_lines(lines: Iterable[bytes]) -> Iterator[Row]:
    """Index rows from tsv lines ``id, status, rev, date[, specification]``; a line without
    the first three columns is skipped, a rev that is not a number counts as 0."""
    for line in lines:
        parts = line.split(b"\t")
        if len(parts) < 3 or not parts[0]:
            continue
        try:
            rev = int(parts[2])
        except ValueError:
            rev = 0
        spec = parts[4].decode("utf-8", "replace") if len(parts) > 4 and parts[4] else None
        yield parts[0].decode("utf-8", "replace"), parts[1].decode("utf-8", "replace"), rev, spec


def _fingerprint(tsv: Path, end: int) -> bytes:
    with open(tsv, "rb") as f:
        start = max(0, end - FINGERPRINT_BYTES)
        f.seek(start)
        return f.read(end - start)


def _rollback(db: sqlite3.Connection) -> None:
    """Roll back, if SQLite has not already (it does on some errors, such as a full disk),
    so that the error that caused it is the one raised."""
    if db.in_transaction:
        db.execute("ROLLBACK")


def _tsv_size(tsv: Path) -> int:
    try:
        return tsv.stat().st_size
    except FileNotFoundError:
        return 0


class ArchiveIndex:
    """The archive's id index (see the module docstring)."""

    def __init__(self, db_path: Path, tsv_path: Path, *, readonly: bool = False):
        self.db_path, self.tsv_path, self.readonly = Path(db_path), Path(tsv_path), readonly
        self._lock = threading.Lock()
        self._hidden: set[str] = set()
        self._db = self._open_readonly() if readonly else self._open_writable()
        self._db.execute("PRAGMA temp_store=MEMORY")  # letter ids in no temporary file
        self._db.execute("CREATE TEMP TABLE hidden (id TEXT PRIMARY KEY)")

    # --- opening ------------------------------------------------------------------------

    def _open_writable(self) -> sqlite3.Connection:
        for attempt in (1, 2):
            if not self.db_path.exists():
                open_private(self.db_path, "ab").close()  # 0600 before SQLite creates it (and its -wal)
            db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                self._prepare(db)
                return db
            except sqlite3.DatabaseError as e:
                db.close()
                if attempt == 2:
                    raise
                log.warning("%s is unreadable (%s); rebuilding it from %s",
                            self.db_path, e, self.tsv_path.name)
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.db_path}{suffix}").unlink(missing_ok=True)
        raise AssertionError("unreachable")

    def _open_readonly(self) -> sqlite3.Connection:
        """The daemon's cache if it holds the whole tsv; otherwise one built in memory (a
        read-only open must not write the daemon's files)."""
        if self.db_path.exists():
            try:
                db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, check_same_thread=False,
                                     isolation_level=None)
                held = self._held(db)
                if held is not None and held == _tsv_size(self.tsv_path):
                    return db
                db.close()
            except sqlite3.DatabaseError:
                pass
        db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self._prepare(db)
        return db

    def _held(self, db: sqlite3.Connection) -> int | None:
        """How many bytes of the tsv ``db`` holds; None if it is not a cache of this tsv."""
        try:
            meta = dict(db.execute("SELECT k, v FROM meta"))
        except sqlite3.OperationalError:  # no such table: a new file
            return None
        held = meta.get("tsv_bytes")
        if meta.get("schema") != SCHEMA or not isinstance(held, int) or held > _tsv_size(self.tsv_path):
            return None
        if held and _fingerprint(self.tsv_path, held) != meta.get("tsv_tail"):
            return None
        return held

    def _prepare(self, db: sqlite3.Connection) -> None:
        """Schema, then the tsv lines the cache does not hold yet (all of them if it is not
        this tsv's)."""
        held = self._held(db)
        db.execute("BEGIN IMMEDIATE")
        try:
            if held is None:
                db.execute("DROP TABLE IF EXISTS archived")
                db.execute("DROP TABLE IF EXISTS meta")
                db.execute("CREATE TABLE archived (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
                           " status TEXT NOT NULL, rev INTEGER NOT NULL, spec TEXT)")
                db.execute("CREATE INDEX archived_status ON archived (status, seq)")
                db.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, v)")
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA,))
                held = 0
            end = self._catch_up(db, held)
            if end != held or held == 0:
                self._set_held(db, end)
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        if end - held > CHUNK:
            log.info("archive index: read %d bytes of %s into %s", end - held, self.tsv_path.name,
                     self.db_path.name)

    def _catch_up(self, db: sqlite3.Connection, held: int) -> int:
        """Apply the tsv's complete lines after byte ``held``, a chunk at a time; the byte
        after the last complete line."""
        try:
            f = open(self.tsv_path, "rb")
        except FileNotFoundError:
            return held
        end = held
        with f:
            f.seek(held)
            tail = b""
            while chunk := f.read(CHUNK):
                data = tail + chunk
                cut = data.rfind(b"\n") + 1
                tail = data[cut:]  # unterminated: the next chunk completes it (or a torn tail)
                self._insert(db, parse_lines(data[:cut].split(b"\n")[:-1]))
                end += cut
        return end

    @staticmethod
    def _insert(db: sqlite3.Connection, rows: Iterable[Row]) -> None:
        # REPLACE: a later line of the same letter wins and becomes its newest row
        db.executemany("INSERT OR REPLACE INTO archived (id, status, rev, spec) VALUES (?, ?, ?, ?)", rows)

    def _set_held(self, db: sqlite3.Connection, end: int) -> None:
        db.execute("INSERT OR REPLACE INTO meta VALUES ('tsv_bytes', ?)", (end,))
        db.execute("INSERT OR REPLACE INTO meta VALUES ('tsv_tail', ?)",
                   (_fingerprint(self.tsv_path, end) if end else b"",))

    # --- writing ------------------------------------------------------------------------

    def added(self, rows: list[Row]) -> None:
        """These rows were just appended to the tsv (durably): hold them too."""
        if self.readonly:
            raise PermissionError(f"{self.db_path} was opened read-only")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._insert(self._db, rows)
                self._set_held(self._db, _tsv_size(self.tsv_path))
                self._db.execute("COMMIT")
            except BaseException:  # e.g. a full disk: the flush fails and is tried again
                _rollback(self._db)
                raise

    def hide(self, letter_id: str, hidden: bool = True) -> None:
        """Leave ``letter_id``'s row out of listings and counts (it is in flight again), or
        show it again."""
        with self._lock:
            if hidden and letter_id not in self._hidden:
                self._hidden.add(letter_id)
                self._db.execute("INSERT INTO hidden VALUES (?)", (letter_id,))
            elif not hidden and letter_id in self._hidden:
                self._hidden.discard(letter_id)
                self._db.execute("DELETE FROM hidden WHERE id = ?", (letter_id,))

    # --- reading ------------------------------------------------------------------------

    def row(self, letter_id: str) -> tuple[str, int, str | None] | None:
        """(status, rev, specification) of the letter's row, hidden or not; None if none."""
        with self._lock:
            return self._db.execute("SELECT status, rev, spec FROM archived WHERE id = ?",
                                    (letter_id,)).fetchone()

    def status_counts(self) -> Counter[str]:
        """Shown rows per status."""
        with self._lock:
            return Counter(dict(self._db.execute(
                "SELECT status, count(*) FROM archived WHERE id NOT IN (SELECT id FROM hidden)"
                " GROUP BY status")))

    @staticmethod
    def _where(q: str, status: str | None) -> tuple[str, list]:
        sql, args = ["id NOT IN (SELECT id FROM hidden)"], []
        if q:
            sql.append("instr(id, ?) > 0")  # a substring, as the console's search box means it
            args.append(q)
        if status:
            sql.append("status = ?")
            args.append(status)
        return " AND ".join(sql), args

    def count(self, q: str = "", status: str | None = None) -> int:
        where, args = self._where(q, status)
        with self._lock:
            return self._db.execute(f"SELECT count(*) FROM archived WHERE {where}", args).fetchone()[0]

    def page(self, q: str = "", status: str | None = None, start: int = 0,
             limit: int = 100) -> list[tuple[str, str, str | None]]:
        """(id, status, specification) of shown rows matching, newest first, from ``start``."""
        if limit <= 0:
            return []
        where, args = self._where(q, status)
        with self._lock:
            return self._db.execute(
                f"SELECT id, status, spec FROM archived WHERE {where} ORDER BY seq DESC LIMIT ? OFFSET ?",
                [*args, limit, max(0, start)]).fetchall()

    def shown_ids(self) -> set[str]:
        with self._lock:
            return {i for (i,) in self._db.execute(
                "SELECT id FROM archived WHERE id NOT IN (SELECT id FROM hidden)")}

    def close(self) -> None:
        with self._lock:
            self._db.close()


__all__ = ["ArchiveIndex", "parse_lines"]
