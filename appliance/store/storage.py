"""Crash-safe files for the letter store.

Two kinds of file live here:

* ``AtomicJSONStorage`` -- a tinydb ``Storage`` that never overwrites its file in place.
  Plain ``tinydb.JSONStorage`` seeks to 0 and rewrites, so a crash mid-write leaves a
  half-written (unparseable) database.  We write a temp file, fsync it, keep the previous
  generation as ``<name>.bak`` (a hard link, so no copy), ``os.replace`` the temp file over
  the real one and fsync the directory.  At every instant the real file is a complete
  generation.
* ``Archive`` -- append-only, dated JSON-lines files (``YYYY-MM-DD.jsonl``) for finished
  letters, plus ``index.tsv`` (one short line per archived letter: id, status, rev, date,
  specification) so that the store need not parse archived records to know them; its
  ``index.sqlite`` cache answers the questions (``appliance.store.archive_index``).  Both are
  ``appliance.store.journal.Journal`` files: appends fsynced, a torn last line (crash
  mid-append) ignored when reading and cut off before the next append.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from tinydb.storages import Storage

from appliance.core.errors import CorruptFile
from appliance.store.archive_index import ArchiveIndex
from appliance.store.journal import Journal, complete_lines, dumps, fsync_dir, open_private, private_dir


def tmp_path(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def bak_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def atomic_write_bytes(path: Path, data: bytes, *, keep_backup: bool = True) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file."""
    tmp = tmp_path(path)
    with open_private(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if keep_backup and path.exists():
        _link_backup(path)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _link_backup(path: Path) -> None:
    """Make ``<path>.bak`` the current generation of ``path`` (hard link; copy if unsupported)."""
    bak, bak_tmp = bak_path(path), tmp_path(bak_path(path))
    try:
        bak_tmp.unlink(missing_ok=True)
        os.link(path, bak_tmp)
    except OSError:  # filesystem without hard links
        shutil.copyfile(path, bak_tmp)
        with open(bak_tmp, "rb+") as f:
            os.fsync(f.fileno())
    os.replace(bak_tmp, bak)


def read_json_document(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None if the file is missing; CorruptFile if unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    if not raw:
        raise CorruptFile(path, "file is empty")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptFile(path, f"not complete JSON ({e.msg} at byte {e.pos})") from None
    if not isinstance(doc, dict) or not all(isinstance(t, dict) for t in doc.values()):
        raise CorruptFile(path, "not a tinydb database (expected an object of tables)")
    return doc


class AtomicJSONStorage(Storage):
    """tinydb storage that replaces its JSON file atomically and keeps one backup generation.

    Usable directly with ``TinyDB(path, storage=AtomicJSONStorage)``.  A leftover
    ``<path>.tmp`` from a crashed write is removed on open (it never became the database).
    """

    def __init__(self, path: str | os.PathLike, *, create_dirs: bool = True,
                 keep_backup: bool = True, readonly: bool = False):
        super().__init__()
        self.path = Path(path)
        self.keep_backup = keep_backup
        self.readonly = readonly
        if not readonly:
            if create_dirs:
                private_dir(self.path.parent)
            tmp_path(self.path).unlink(missing_ok=True)
            tmp_path(bak_path(self.path)).unlink(missing_ok=True)

    def read(self) -> dict[str, dict[str, Any]] | None:
        return read_json_document(self.path)

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self.write_serialized(json.dumps(data, ensure_ascii=False, separators=(",", ":")))

    def write_serialized(self, text: str) -> None:
        """Write an already-serialised database document (lets callers cache fragments)."""
        self.write_serialized_bytes(text.encode("utf-8"))

    def write_serialized_bytes(self, data: bytes) -> None:
        if self.readonly:
            raise PermissionError(f"{self.path} was opened read-only")
        atomic_write_bytes(self.path, data, keep_backup=self.keep_backup)


# --- archive -----------------------------------------------------------------------------

INDEX_NAME = "index.tsv"
INDEX_DB_NAME = "index.sqlite"  # a cache of index.tsv (appliance.store.archive_index)


def _last_line_starting(path: Path, needle: bytes) -> dict[str, Any] | None:
    """The last complete line of ``path`` that starts with ``needle``, parsed, or None."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return None
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                end = len(mm)
                while True:
                    at = mm.rfind(needle, 0, end)
                    if at < 0:
                        return None
                    stop = mm.find(b"\n", at)
                    if (at == 0 or mm[at - 1] == 0x0A) and stop >= 0:  # whole line, not a torn tail
                        try:
                            return json.loads(mm[at:stop])
                        except json.JSONDecodeError:
                            pass
                    end = at
    except FileNotFoundError:
        return None


class Archive:
    """Dated append-only JSONL files of finished letters plus a compact id index."""

    def __init__(self, directory: Path, *, create: bool = True):
        self.dir = Path(directory)
        if create:
            private_dir(self.dir)
        self.index_path = self.dir / INDEX_NAME
        self.readonly = not create
        self._index: ArchiveIndex | None = None

    @property
    def index(self) -> ArchiveIndex:
        """The id index (opened, and caught up with the tsv, on first use: an Archive made
        only to read records never touches it)."""
        if self._index is None:
            self._index = ArchiveIndex(self.dir / INDEX_DB_NAME, self.index_path, readonly=self.readonly)
        return self._index

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    def append(self, date: str, records: list[dict[str, Any]]) -> None:
        """Durably append ``records`` (each with id/status/rev) to ``<date>.jsonl`` and the index.

        The JSONL lines are fsynced before the index lines, so an index line always points
        at a record that exists.
        """
        if not records:
            return
        lines, index, rows = [], [], []
        for rec in records:
            ordered = {"id": rec["id"], **rec}  # id first: lets find() match a line cheaply
            lines.append(dumps(ordered))
            row = (rec["id"], rec["status"], rec.get("rev", 0), rec.get("specification_id") or None)
            index.append(f"{row[0]}\t{row[1]}\t{row[2]}\t{date}\t{row[3] or ''}".encode())
            rows.append(row)
        Journal(self.dir / f"{date}.jsonl", keep_open=False).append_lines(lines)
        Journal(self.index_path, keep_open=False).append_lines(index)
        if self._index is not None:  # else it catches up from the tsv when it is opened
            self._index.added(rows)

    def dated_files(self) -> list[Path]:
        """Archive files, newest first."""
        return sorted(self.dir.glob("????-??-??.jsonl"), reverse=True)

    def find(self, letter_id: str) -> dict[str, Any] | None:
        """The latest archived record for ``letter_id`` (newest file first, last line wins).

        Searched backwards in a memory map: a day's file of 100 000 letters is read by the
        kernel's page cache, not copied into Python, and the newest line is found first."""
        needle = b'{"id":' + json.dumps(letter_id, ensure_ascii=False).encode() + b","
        for path in self.dated_files():
            found = _last_line_starting(path, needle)
            if found is not None:
                return found
        return None

    def records(self) -> Iterator[dict[str, Any]]:
        """Every complete archived line, oldest file first (for export/inspection)."""
        for path in reversed(self.dated_files()):
            for line in complete_lines(path.read_bytes()):
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue
