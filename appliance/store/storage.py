"""Crash-safe files for the letter store.

Two kinds of file live here:

* ``AtomicJSONStorage`` -- a tinydb ``Storage`` that never overwrites its file in place.
  Plain ``tinydb.JSONStorage`` seeks to 0 and rewrites, so a crash mid-write leaves a
  half-written (unparseable) database.  We write a temp file, fsync it, keep the previous
  generation as ``<name>.bak`` (a hard link, so no copy), ``os.replace`` the temp file over
  the real one and fsync the directory.  At every instant the real file is a complete
  generation.
* ``Archive`` -- append-only, dated JSON-lines files (``YYYY-MM-DD.jsonl``) for finished
  letters, plus ``index.tsv`` (one short line per archived letter: id, status, rev, date)
  so that opening the store does not have to parse every archived record.  Appends are
  fsynced; a torn last line (crash mid-append) is ignored when reading and cut off before
  the next append.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Iterator

from tinydb.storages import Storage

from appliance.core.errors import CorruptFile


def fsync_dir(path: Path) -> None:
    """Make a rename/create inside ``path`` durable (no-op where directories can't be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


PRIVATE_FILE = 0o600  # patient data and letter state: the service user only, whatever the umask
PRIVATE_DIR = 0o700


def private_dir(path: Path) -> Path:
    """``path`` as a folder only its owner can enter (made if missing, tightened if not)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    if path.stat().st_mode & 0o077:
        os.chmod(path, PRIVATE_DIR)
    return path


def open_private(path: Path, mode: str = "ab", encoding: str | None = None):
    """``open(path, mode)`` for w/a/x modes, the file created (or left) 0600."""
    flags = {"w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
             "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL}[mode[0]]
    if "+" in mode:
        flags = (flags & ~os.O_WRONLY) | os.O_RDWR
    fd = os.open(path, flags, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
        return os.fdopen(fd, mode, encoding=encoding)
    except BaseException:
        os.close(fd)
        raise


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (temp file + rename; 0600), without fsync: for state a
    crash may lose but must never leave half-written."""
    tmp = tmp_path(path)
    with open_private(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


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
        if self.readonly:
            raise PermissionError(f"{self.path} was opened read-only")
        atomic_write_bytes(self.path, text.encode("utf-8"), keep_backup=self.keep_backup)


# --- archive -----------------------------------------------------------------------------

INDEX_NAME = "index.tsv"


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


def _complete_lines(data: bytes) -> list[bytes]:
    """Lines that were fully written (ended by a newline); a torn tail is dropped."""
    end = data.rfind(b"\n")
    return data[:end].split(b"\n") if end >= 0 else []


def _drop_torn_tail(f) -> None:
    """Cut an unterminated last line (left by a crash mid-append) so appends start clean."""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return
    f.seek(size - 1)
    if f.read(1) == b"\n":
        return
    f.seek(0)
    data = f.read()
    f.truncate(data.rfind(b"\n") + 1)
    f.seek(0, os.SEEK_END)


def append_lines(path: Path, lines: Iterable[bytes]) -> None:
    """Append newline-terminated lines and fsync (and the directory if the file is new)."""
    new = not path.exists()
    with open_private(path, "ab+") as f:
        _drop_torn_tail(f)
        f.write(b"".join(line + b"\n" for line in lines))
        f.flush()
        os.fsync(f.fileno())
    if new:
        fsync_dir(path.parent)


class Archive:
    """Dated append-only JSONL files of finished letters plus a compact id index."""

    def __init__(self, directory: Path, *, create: bool = True):
        self.dir = Path(directory)
        if create:
            private_dir(self.dir)
        self.index_path = self.dir / INDEX_NAME

    def append(self, date: str, records: list[dict[str, Any]]) -> None:
        """Durably append ``records`` (each with id/status/rev) to ``<date>.jsonl`` and the index.

        The JSONL lines are fsynced before the index lines, so an index line always points
        at a record that exists.
        """
        if not records:
            return
        lines, index = [], []
        for rec in records:
            ordered = {"id": rec["id"], **rec}  # id first: lets find() match a line cheaply
            lines.append(json.dumps(ordered, ensure_ascii=False, separators=(",", ":")).encode())
            index.append(f"{rec['id']}\t{rec['status']}\t{rec.get('rev', 0)}\t{date}".encode())
        append_lines(self.dir / f"{date}.jsonl", lines)
        append_lines(self.index_path, index)

    def scan_index(self, want_rev: set[str] | frozenset[str] = frozenset()
                   ) -> tuple[dict[str, str], dict[str, int]]:
        """(id -> status, id -> rev for ids in ``want_rev``); later lines win.

        Reads one short line per archived letter: 100 000 letters is a few MB.
        """
        try:
            data = self.index_path.read_bytes()
        except FileNotFoundError:
            return {}, {}
        statuses: dict[str, str] = {}
        revs: dict[str, int] = {}
        interned: dict[str, str] = {}
        for line in _complete_lines(data):
            parts = line.decode("utf-8", "replace").split("\t")
            if len(parts) < 3:
                continue
            letter_id, status, rev = parts[0], parts[1], parts[2]
            statuses[letter_id] = interned.setdefault(status, status)
            if letter_id in want_rev:
                try:
                    revs[letter_id] = int(rev)
                except ValueError:
                    continue
        return statuses, revs

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
            for line in _complete_lines(path.read_bytes()):
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue
