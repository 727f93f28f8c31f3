"""Inserters driven by files: a run data file per batch into the machine's hot folder, a
result file per batch (or part of one) back.

High-end inserters take their work as a job/run data file dropped into a watched folder
and write what happened to each piece into a result folder.  This driver collects the
pieces handed to it into batches of one (envelope, postage) each; a batch closes when it
holds ``batch_size`` pieces or nothing new came for ``batch_idle`` seconds, and is written
as ``<batch>.run.csv`` into ``outbox_dir`` (written to ``.<batch>.run.csv.tmp``, fsynced,
then renamed, so the machine never sees half a file).  Formats: drivers/files/format.py.

Results: every ``*.result.csv`` in ``results_dir`` is read, oldest first.  The machine
must write each one under another name (e.g. ``<batch>.result.csv.tmp`` or a dot-name)
and rename it into place; as a second guard a file whose last line has no line end is
left alone while it still grows, and read as truncated once it stops.  Each record is
matched to its piece by (batch, seq) AND letter id, with the serial path's rules:
inserted -> ``piece.inserted`` (ENCLOSED); diverted with a code listed in ``reasons`` ->
``piece.diverted`` (FAILED with that reason); a divert code not listed, an outcome that
is neither, a letter id that is not the piece at that place, or no result within
``piece_timeout`` -> ``piece.unknown`` (operator hold; never advanced on a guess).  Bad
lines (wrong column count, not UTF-8, unknown batch, ...) raise one alert per file naming
the lines; the good lines still count.  A processed file moves to ``results_dir/done/``;
one with nothing usable (bad header, too big, no good line) to ``results_dir/rejected/``.

Durable: the book (batches written, each piece's outcome) is saved atomically to
``<state_dir>/devices/<name>/file-inserter.json`` before a run file appears and before
any piece event is emitted, so after kill -9 ``reconcile()`` answers for every letter and
a result file read again settles nothing twice.
"""

# Size: the hot-folder inserter's protocol (run files out, result files in, the book that makes
# it restart-safe); its file formats and book are in format.py and book.py.

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import drivers
from appliance.core.errors import ConfigError
from appliance.store.journal import fsync_dir, open_private, private_dir, write_private
from drivers.base import Driver, Health, Work
from drivers.batching import finishing_key
from drivers.files.book import Book, BookPiece
from drivers.files.format import RunRecord, parse_results, render_run

log = logging.getLogger("drivers.files.inserter")

STATE_FILE = "file-inserter.json"
ALERT_LINES = 3  # bad lines quoted in one alert; the rest are counted


def _folder(settings: dict[str, Any], key: str) -> Path | None:
    value = settings.get(key) or ""
    if not value:
        return None
    p = Path(value).expanduser()
    if not p.is_absolute() and settings.get("_profile_dir"):
        p = Path(settings["_profile_dir"]) / p
    return p


def folder_problem(path: Path, where: str, key: str) -> str | None:
    """One line naming the folder and the fix, or None if the appliance can use it."""
    if not path.exists():
        return f"{where} {key}: {path} does not exist; create it (mkdir -p {path}) or fix the path"
    if not path.is_dir():
        return f"{where} {key}: {path} is not a folder; point {key} at a folder"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{where} {key}: {path} is not writable by this user; fix its owner or permissions"
    return None


class FileInserter(Driver):
    family = "inserter"
    SETTINGS: dict[str, tuple[type, Any]] = {
        "outbox_dir": (str, ""),  # the machine's hot folder: run data files go here
        "results_dir": (str, ""),  # where the machine writes result files
        "batch_size": (int, 200),  # close a batch at this many pieces ...
        "batch_idle": (float, 5.0),  # ... or when nothing new came for this long (seconds)
        "poll_seconds": (float, 1.0),  # look for result files this often
        "piece_timeout": (float, 1800.0),  # no result this long after the run file -> operator hold
        "reasons": (dict, {}),  # divert code -> reason text; unlisted codes go to a person
        "max_result_bytes": (int, 8 * 1024 * 1024),  # bigger result files are rejected unread
        "simulate": (bool, False),  # run the built-in simulator on the two folders
        "sim_options": (list, []),  # simulator options, e.g. ["divert=3:E12", "piece_seconds=0.01"]
    }

    @classmethod
    def check_settings(cls, where: str, settings: dict[str, Any]) -> None:
        """Static checks at profile load (the folders themselves are checked at start and by doctor)."""
        for key, low in (("batch_size", 1), ("batch_idle", 0), ("poll_seconds", 0.001),
                         ("piece_timeout", 0.001), ("max_result_bytes", 1)):
            if settings[key] < low:
                raise ConfigError(f"{where} {key}: must be at least {low}, got {settings[key]}")
        for key in ("outbox_dir", "results_dir"):
            if not settings.get(key) and not settings.get("simulate"):
                raise ConfigError(f"{where} {key}: missing; name the folder, e.g. {key} = \"/srv/inserter/"
                                  f"{'jobs' if key == 'outbox_dir' else 'results'}\" (or simulate = true)")
        for code, text in settings["reasons"].items():
            if not code.strip() or not isinstance(text, str) or not text.strip():
                raise ConfigError(f"{where} reasons: {code!r} = {text!r}: write CODE = \"reason text\"")
        if settings.get("simulate"):
            try:
                drivers.simulator("files-options").parse(settings.get("sim_options") or [])
            except ValueError as e:
                raise ConfigError(f"{where} sim_options: {e}") from None

    def __init__(self, name: str, settings: dict[str, Any], emit, *, state_dir: Path, **kw):
        super().__init__(name, settings, emit, state_dir=state_dir, **kw)
        self.where = f"[[inserter]] {name!r}"
        full = {k: settings.get(k, default) for k, (_, default) in self.SETTINGS.items()}
        self.check_settings(self.where, full)
        self.cfg = full
        self.device_dir = state_dir / "devices" / name
        private_dir(self.device_dir)
        self.simulate = bool(full["simulate"])
        self.outbox = _folder(full, "outbox_dir") or self.device_dir / "runs"
        self.results = _folder(full, "results_dir") or self.device_dir / "results"
        if self.simulate:
            self.outbox.mkdir(parents=True, exist_ok=True)
            self.results.mkdir(parents=True, exist_ok=True)
        for key, path in (("outbox_dir", self.outbox), ("results_dir", self.results)):
            problem = folder_problem(path, self.where, key)
            if problem:
                raise ConfigError(problem)
        self.reasons: dict[str, str] = dict(full["reasons"])
        self.state_path = self.device_dir / STATE_FILE
        self.book = self._load_book()
        self.open: list[Work] = []  # pieces of the batch being collected (not yet durable)
        self.counters: dict[str, int] = {}
        self.folders_ok = True
        self._last_submit = time.monotonic()
        self._clocks_from = time.time()
        self._growing: dict[str, tuple[int, float]] = {}  # result file -> (size, mtime) last seen
        self._published: str | None = None
        self._wake = asyncio.Event()
        self.sim = None

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self._finish_run_files)
        if self.simulate:
            self.sim = drivers.simulator("files")(self.outbox, self.results, list(self.cfg["sim_options"]))
        self._publish()
        self.spawn("files", self._run)

    async def stop(self) -> None:
        await self.stop_tasks()
        if self.sim:
            await asyncio.to_thread(self.sim.stop)
        # Pieces still collecting were never written out: reconcile() calls them absent.

    async def submit(self, work: Work) -> str:
        self.open.append(work)
        self._last_submit = time.monotonic()
        if len(self.open) >= self.cfg["batch_size"]:
            self._wake.set()
        self._publish()
        return f"{self.name}:{work.letter_id}"

    async def pause(self) -> None:
        self.paused = True  # no new run files; the machine finishes what it has
        self._publish()

    async def resume(self) -> None:
        self.paused = False
        self._clocks_from = time.time()  # waiting while paused does not count
        self._publish()
        self._wake.set()

    async def reconcile(self, letter_ids: list[str]) -> dict[str, str]:
        """Settled pieces by the book; written out, no result yet: "job.queued" (the machine
        still has it); never written to a run file: "absent".  Unknown pieces are left out."""
        pieces = self.book.by_letter()
        collecting = {w.letter_id for w in self.open}
        out = {}
        for lid in letter_ids:
            p = pieces.get(lid)
            if lid in collecting or (p is not None and p.outcome is None):
                out[lid] = "job.queued"
            elif p is None:
                out[lid] = "absent"
            elif p.outcome in ("piece.inserted", "piece.diverted"):
                out[lid] = p.outcome
        return out

    # --- the loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # never lose the loop; the next tick tries again
                log.exception("%s: tick failed", self.name)
                self._count("errors")
                self.emit("device.alert", message=f"unexpected error: {e}")
            # Plain sleeps, not wait_for: a cancel must always end this task (gh-86296).
            deadline = loop.time() + self.cfg["poll_seconds"]
            while loop.time() < deadline and not self._wake.is_set():
                await asyncio.sleep(min(0.02, self.cfg["poll_seconds"]))
            self._wake.clear()

    async def _tick(self) -> None:
        self._check_folders()
        if self.folders_ok:
            while self._batch_due():
                if not await self._write_batch():
                    break
            await self._read_results()
        late = self.book.overdue(time.time(), self.cfg["piece_timeout"], self._clocks_from)
        if late:
            await self._save()
            for p in late:
                self._unknown(p, f"no result within {self.cfg['piece_timeout']:.0f} s of the run file")
        self._publish()

    def _check_folders(self) -> None:
        problems = [p for key, path in (("outbox_dir", self.outbox), ("results_dir", self.results))
                    if (p := folder_problem(path, self.where, key))]
        ok = not problems
        if ok != self.folders_ok:
            self.folders_ok = ok
            if not ok:
                self._count("folder_lost")
                self.emit("device.alert", message=f"{problems[0]}; offline until it is back")
        self._publish()

    def _batch_due(self) -> bool:
        if not self.open or self.paused:
            return False
        return (len(self._next_run()) >= self.cfg["batch_size"]
                or time.monotonic() - self._last_submit >= self.cfg["batch_idle"])

    def _next_run(self) -> list[Work]:
        """The pieces of the next run file: the oldest piece's (envelope, postage) and, in
        print order, the others that share both, so a run never mixes envelopes or tariffs
        (the machine loads one envelope and the franker applies one tariff per run)."""
        key = finishing_key(self.open[0])
        return [w for w in self.open if finishing_key(w) == key][: self.cfg["batch_size"]]

    # --- run data files ---------------------------------------------------------------

    async def _write_batch(self) -> bool:
        """Close the batch: the file is fsynced under a temporary name, then the book records
        it, then it is renamed into the hot folder.  A crash at any point leaves each piece
        either unknown to the book (absent: sent again) or in a run file the machine gets."""
        works = self._next_run()
        batch = self.book.next_batch_id()
        records = [RunRecord(batch, seq, w.letter_id, w.sheets, tuple(w.pack.insert_ids),
                             w.pack.envelope_id or "", w.pack.postage_id) for seq, w in enumerate(works, 1)]
        tmp = self.outbox / f".{batch}.run.csv.tmp"
        try:
            await asyncio.to_thread(_write_synced, tmp, render_run(records))
        except OSError as e:
            self._count("write_failed")
            self.emit("device.alert", message=f"cannot write run file {tmp.name} in {self.outbox}: {e}")
            return False
        b = self.book.add_batch([w.letter_id for w in works], time.time())
        taken = {w.letter_id for w in works}
        self.open = [w for w in self.open if w.letter_id not in taken]
        await self._save()
        await asyncio.to_thread(self._finish_run_files)
        self._count("batches")
        self._count("pieces_written", len(works))
        log.info("%s: wrote %s.run.csv (%d pieces)", self.name, batch, len(b.pieces))
        return True

    def _finish_run_files(self) -> None:
        """Rename every recorded run file still under its temporary name; remove temporary
        files the book does not know (a crash before the book recorded them)."""
        changed = False
        for b in self.book.batches.values():
            if b.file_done:
                continue
            tmp = self.outbox / f".{b.batch}.run.csv.tmp"
            try:
                if tmp.exists():
                    os.replace(tmp, self.outbox / f"{b.batch}.run.csv")
                    fsync_dir(self.outbox)
                # absent: renamed before a crash and maybe already taken by the machine
                b.file_done = changed = True
            except OSError as e:
                log.warning("%s: cannot rename %s: %s", self.name, tmp, e)
        try:
            for f in self.outbox.glob(".*.run.csv.tmp"):
                if f.name[1:-len(".run.csv.tmp")] not in self.book.batches:
                    f.unlink(missing_ok=True)
        except OSError:
            pass
        if changed:
            _write_json(self.state_path, self.book.to_json())

    # --- result files -----------------------------------------------------------------

    def _result_files(self) -> list[Path]:
        """Complete result files, oldest first (a machine may write several per batch)."""
        found = []
        try:
            for f in self.results.iterdir():
                if f.name.endswith(".result.csv") and not f.name.startswith("."):
                    try:
                        found.append((f.stat().st_mtime, f.name, f))
                    except FileNotFoundError:
                        continue
        except OSError:
            return []
        return [f for _, _, f in sorted(found)]

    async def _read_results(self) -> None:
        for f in await asyncio.to_thread(self._result_files):
            try:
                st = f.stat()
            except FileNotFoundError:
                continue
            if st.st_size > self.cfg["max_result_bytes"]:
                await self._reject(f, f"too big ({st.st_size} bytes, limit max_result_bytes = "
                                      f"{self.cfg['max_result_bytes']}); not read")
                continue
            try:
                data = await asyncio.to_thread(f.read_bytes)
            except OSError as e:
                self._count("read_failed")
                log.warning("%s: cannot read %s: %s", self.name, f, e)
                continue
            if data and not data.endswith(b"\n") and self._growing.get(f.name) != (st.st_size, st.st_mtime):
                self._growing[f.name] = (st.st_size, st.st_mtime)  # may still be written: next poll
                continue
            self._growing.pop(f.name, None)
            await self._apply_file(f, data)

    async def _apply_file(self, f: Path, data: bytes) -> None:
        self._count("result_files")
        parsed = parse_results(data)
        if parsed.fatal:
            await self._reject(f, parsed.fatal)
            return
        problems = list(parsed.problems)
        decisions = []
        for rec in parsed.records:
            d = self.book.apply(rec, self.reasons)
            decisions.append(d)
            if d.kind == "problem" or d.line_problem:
                problems.append((rec.line, d.why))
        settled = [d for d in decisions if d.kind in ("inserted", "diverted", "unknown")]
        repeats = sum(d.kind == "repeat" for d in decisions)
        self._count("repeats", repeats)
        if settled:
            await self._save()  # the book first: a crash from here on replays nothing twice
        for d in settled:
            if d.kind == "inserted":
                self._done(d.piece, "piece.inserted")
            elif d.kind == "diverted":
                self._done(d.piece, "piece.diverted", reason=f"diverted by {self.name}: {d.reason} (code {d.code})",
                           code=d.code)
            else:
                self._unknown(d.piece, d.why)
        if problems:
            self._count("bad_lines", len(problems))
            problems.sort()
            shown = "; ".join(f"line {n}: {why}" for n, why in problems[:ALERT_LINES])
            more = f" (and {len(problems) - ALERT_LINES} more)" if len(problems) > ALERT_LINES else ""
            self.emit("device.alert", message=f"result file {f.name}: {len(problems)} bad line(s): {shown}{more}; "
                                              f"{len(settled) + repeats} good line(s) applied")
        usable = settled or repeats
        await asyncio.to_thread(_move, f, self.results / ("done" if usable else "rejected"))
        if not usable:
            self._count("rejected_files")

    async def _reject(self, f: Path, why: str) -> None:
        self._count("rejected_files")
        self.emit("device.alert", message=f"result file {f.name}: {why}; moved to {self.results.name}/rejected/, "
                                          "nothing applied")
        try:
            await asyncio.to_thread(_move, f, self.results / "rejected")
        except OSError as e:
            log.warning("%s: cannot move %s: %s", self.name, f, e)

    # --- events -----------------------------------------------------------------------

    def _count(self, key: str, n: int = 1) -> None:
        if n:
            self.counters[key] = self.counters.get(key, 0) + n

    def _done(self, piece: BookPiece, kind: str, **detail: Any) -> None:
        self._count(kind.split(".")[1])
        self.emit(kind, piece.letter_id, piece.job, batch=piece.batch, seq=piece.seq, **detail)

    def _unknown(self, piece: BookPiece, why: str) -> None:
        self._count("unknown")
        self.emit("piece.unknown", piece.letter_id, piece.job, reason=f"piece {piece.job}: {why}")

    async def _save(self) -> None:
        self.book.prune()
        await asyncio.to_thread(_write_json, self.state_path, self.book.to_json())

    def _load_book(self) -> Book:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return Book(self.name)
        except (OSError, ValueError) as e:
            raise ConfigError(f"{self.state_path}: unreadable driver state ({e}); restore it from a backup, "
                              "or move it away to start afresh (pieces at the machine then need a person)") from None
        try:
            return Book.from_json(self.name, data)
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{self.state_path}: not a file-inserter state file ({e}); move it away") from None

    # --- state for the pipeline, the CLI and the TUI ----------------------------------

    def public_state(self) -> str:
        if not self.folders_ok:
            return "offline"
        if self.paused:
            return "paused"
        return "busy" if self.open or self.book.outstanding() else "idle"

    def _publish(self) -> None:
        state = self.public_state()
        if state != self._published:
            self._published = state
            self.emit("device.state", state=state)

    def health(self) -> Health:
        detail = f"run files to {self.outbox}, results from {self.results}"
        return Health(self.public_state(), detail, len(self.open) + self.book.outstanding(), dict(self.counters))


# --- small file helpers (run in worker threads) ---------------------------------------



def _write_synced(path: Path, data: bytes) -> None:
    with open_private(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _write_json(path: Path, data: dict) -> None:
    write_private(path, json.dumps(data, separators=(",", ":")).encode(), durable=True)


def _move(f: Path, folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    dest = folder / f.name
    n = 1
    while dest.exists():  # the machine may reuse a name: keep both
        n += 1
        dest = folder / f"{f.name[:-len('.csv')]}.{n}.csv"
    os.replace(f, dest)


def doctor_checks(profile, config=None) -> list:
    """``appliance doctor``: both folders of each file-driven inserter exist and are writable."""
    from appliance.core.checks import Check

    out = []
    for spec in profile.inserters:
        if spec.driver != "files":
            continue
        where = f"[[inserter]] {spec.name!r}"
        if spec.settings.get("simulate"):
            out.append(Check(True, f"inserter {spec.name}", "simulated (folders under the state directory)"))
            continue
        for key in ("outbox_dir", "results_dir"):
            path = _folder(spec.settings, key)
            problem = folder_problem(path, where, key) if path else f"{where} {key}: missing"
            out.append(Check(problem is None, f"inserter {spec.name} {key}", problem or f"{path} is writable"))
    return out
