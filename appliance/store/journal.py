"""Durable private files: the one append-only journal, and the file primitives under it.

Everything the appliance writes holds letter state or patient data, so every file is
created 0600 in a 0700 folder whatever the umask (``private_dir``, ``open_private``).

``Journal`` is the only append-only writer: the archive's dated files and index, device
ledgers and journals (file printer, simulated finishing, serial machines), the MI event
journal and the inserter audit all go through it, so they share one rule for the line a
crash cut short -- a torn last line is never read, and is cut off before the next append --
and one choice of durability per journal:

* ``sync="each"``: every append is fsynced before it returns (a device's proof of work,
  the archive);
* ``sync="batch"``: appends are fsynced together at most ``batch_seconds`` later (MI and
  audit facts: a power cut may lose the last second, never corrupt a line);
* ``sync="none"``.

The drivers may import this module (and ``appliance.core``), nothing else of the appliance.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson

log = logging.getLogger(__name__)

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


def write_private(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Replace ``path`` with ``data`` through a temp file and a rename (0600): a crash leaves
    the old file or the new one, never half of one.  ``durable``: fsynced, file and folder."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open_private(tmp, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def complete_lines(data: bytes) -> list[bytes]:
    """Lines that were fully written (ended by a newline); a torn tail is dropped."""
    end = data.rfind(b"\n")
    return data[:end].split(b"\n") if end >= 0 else []


def _cut_torn_tail(fd: int) -> None:
    """Cut an unterminated last line (left by a crash mid-append) so appends start clean."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    keep, pos = 0, size
    while pos > 0:  # look back for the last newline, a block at a time
        start = max(0, pos - 65536)
        block = os.pread(fd, pos - start, start)
        i = block.rfind(b"\n")
        if i >= 0:
            keep = start + i + 1
            break
        pos = start
    os.ftruncate(fd, keep)


def dumps(record: Any) -> bytes:
    """Compact UTF-8 JSON, as every state file and journal line is written.  orjson, not
    json: encoding the letters that changed is most of a store flush's CPU, and orjson does
    it ~25 times faster (the same JSON values back)."""
    return orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS)


class Journal:
    """An append-only file of JSON lines (see the module docstring for ``sync``)."""

    def __init__(self, path: Path, *, sync: str = "each", batch_seconds: float = 1.0,
                 keep_open: bool = True):
        if sync not in ("each", "batch", "none"):
            raise ValueError(f"sync must be each, batch or none, not {sync!r}")
        self.path = Path(path)
        self.sync_mode = sync
        self.batch_seconds = batch_seconds
        self.keep_open = keep_open
        self._fd: int | None = None
        self._unsynced = False
        self._timer: asyncio.TimerHandle | None = None

    # --- writing ------------------------------------------------------------------------

    def _open(self) -> int:
        if self._fd is None:
            private_dir(self.path.parent)
            new = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
            os.fchmod(fd, PRIVATE_FILE)
            _cut_torn_tail(fd)
            if new:
                fsync_dir(self.path.parent)
            self._fd = fd
        return self._fd

    def append(self, *records: Any) -> None:
        """Append one JSON line per record (blocking when ``sync="each"``: call it from a
        worker thread on a busy event loop)."""
        self.append_lines(dumps(r) for r in records)

    def append_lines(self, lines: Iterable[bytes]) -> None:
        """Append pre-encoded lines (no newlines inside them)."""
        data = b"".join(line + b"\n" for line in lines)
        if not data:
            return
        fd = self._open()
        try:
            os.write(fd, data)
            self._synced_after_write()
        finally:
            if not self.keep_open:
                self.close()

    def _synced_after_write(self) -> None:
        if self.sync_mode == "each":
            os.fsync(self._fd)
        elif self.sync_mode == "batch":
            self._unsynced = True
            if self._timer is None:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:  # no loop (a CLI, a thread): durable at once
                    self.sync()
                    return
                self._timer = loop.call_later(self.batch_seconds, self.sync)

    def sync(self) -> None:
        self._timer = None
        if self._unsynced and self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError as e:
                log.warning("%s not synced: %s", self.path, e)
        self._unsynced = False

    def rewrite(self, records: Iterable[Any]) -> None:
        """Replace the whole journal (compaction), atomically and durably."""
        self.close()
        write_private(self.path, b"".join(dumps(r) + b"\n" for r in records), durable=True)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._fd is not None:
            if self._unsynced:
                self.sync()
            os.close(self._fd)
            self._fd = None

    # --- reading ------------------------------------------------------------------------

    def raw_lines(self) -> list[bytes]:
        try:
            return complete_lines(self.path.read_bytes())
        except FileNotFoundError:
            return []

    def records(self) -> Iterator[Any]:
        """Every complete line that is JSON, in order (a torn or garbled line is skipped)."""
        for line in self.raw_lines():
            try:
                yield orjson.loads(line)
            except ValueError:  # orjson.JSONDecodeError is one
                continue

    def read(self) -> list[Any]:
        return list(self.records())
