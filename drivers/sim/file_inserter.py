"""A simulated file-driven inserter: watches a hot folder for run data files, "inserts"
their pieces and writes result files back the way a machine does (temporary name, then
rename), so the driver is tested against files it did not write itself.

It takes each ``*.run.csv`` (oldest name first), moves it to ``<runs>/taken/`` as a
machine archives a job it accepted, handles the pieces in order and writes
``<batch>.result.csv`` - or, with ``chunk = N``, a result file per N pieces
(``<batch>.<k>.result.csv``).  Faults (``SimOptions``): divert piece k with a code, a
malformed line after piece k, a truncated result file, stop/start.

    python -m drivers.sim.file_inserter --runs DIR --results DIR [--option divert=3:E12 ...]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from drivers.files.format import RUN_COLUMNS, render_results


@dataclass
class SimOptions:
    piece_seconds: float = 0.002
    poll: float = 0.02
    divert: dict[int, str] = field(default_factory=dict)  # piece number (1, 2, ... over all batches) -> code
    bad_line_after: int = 0  # write a malformed line after piece N's record
    truncate_batch: int = 0  # the Nth batch's (last) result file is cut short mid-line
    chunk: int = 0  # a result file per this many pieces (0: one per batch)

    @classmethod
    def parse(cls, options: list[str]) -> "SimOptions":
        """From ["key=value", ...]; ``divert=3:E12`` (repeatable) diverts piece 3 with E12."""
        o = cls()
        names = {f.name: f.type for f in fields(cls)}
        for opt in options:
            key, _, value = opt.partition("=")
            try:
                if key == "divert":
                    n, _, code = value.partition(":")
                    if not code:
                        raise ValueError
                    o.divert[int(n)] = code
                elif key in names:
                    setattr(o, key, float(value) if names[key] == "float" else int(value))
                else:
                    raise KeyError(key)
            except KeyError:
                raise ValueError(f"unknown simulator option {key!r}; use one of {', '.join(names)}") from None
            except ValueError:
                raise ValueError(f"simulator option {opt!r}: bad value (e.g. piece_seconds=0.01, "
                                 "divert=3:E12, chunk=5)") from None
        return o


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")  # not *.result.csv: the driver ignores it
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class FileInserterSim:
    def __init__(self, runs: Path, results: Path, options: SimOptions | None = None):
        self.runs, self.results = Path(runs), Path(results)
        self.o = options or SimOptions()
        self.pieces = 0  # handled, over all batches
        self.batches = 0
        self.taken: list[str] = []  # run file names accepted, in order
        self.handled: list[tuple[str, int, str, str, str]] = []  # result rows written
        self._job: tuple[str, list[dict], int] | None = None  # (batch, rows, next index) across stop/start
        self._pending: list[tuple[str, int, str, str, str]] = []  # records not yet in a result file
        self._extra: list[tuple[int, str]] = []  # (after record number, raw malformed line)
        self._part = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def start(self) -> "FileInserterSim":
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="file-inserter-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the piece in hand; ``start()`` carries on with the same job."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._job is None:
                    self._take_next()
                if self._job is not None:
                    self._work()
                    continue
            except OSError as e:  # a folder went away: a real machine would wait too
                self.error = str(e)
            self._stop.wait(self.o.poll)

    def _take_next(self) -> None:
        runs = sorted(f for f in self.runs.glob("*.run.csv") if not f.name.startswith("."))
        if not runs:
            return
        f = runs[0]
        rows = list(csv.DictReader(io.StringIO(f.read_text(encoding="utf-8"))))
        taken = self.runs / "taken"
        taken.mkdir(exist_ok=True)
        os.replace(f, taken / f.name)
        self.taken.append(f.name)
        self.batches += 1
        if rows and list(rows[0]) != list(RUN_COLUMNS):
            self.error = f"{f.name}: unexpected columns {list(rows[0])}; job refused"
            return
        batch = rows[0]["batch"] if rows else f.name[:-len(".run.csv")]
        self._job = (batch, rows, 0)
        self._pending, self._extra, self._part = [], [], 0

    def _work(self) -> None:
        batch, rows, i = self._job
        while i < len(rows) and not self._stop.is_set():
            row = rows[i]
            time.sleep(self.o.piece_seconds)
            self.pieces += 1
            code = self.o.divert.get(self.pieces, "")
            rec = (row["batch"], int(row["seq"]), row["letter_id"], "diverted" if code else "inserted", code)
            self._pending.append(rec)
            if self.o.bad_line_after and self.pieces == self.o.bad_line_after:
                self._extra.append((len(self._pending), f"{row['batch']},{row['seq']},only-three-columns"))
            i += 1
            self._job = (batch, rows, i)
            if self.o.chunk and len(self._pending) >= self.o.chunk and i < len(rows):
                self._flush(batch, last=False)
        if i >= len(rows):
            self._flush(batch, last=True)
            self._job = None

    def _flush(self, batch: str, last: bool) -> None:
        self._part += 1
        name = f"{batch}.result.csv" if not self.o.chunk else f"{batch}.{self._part}.result.csv"
        lines = render_results(self._pending).decode().split("\r\n")[:-1]  # header + records
        for after, raw in reversed(self._extra):
            lines.insert(after + 1, raw)
        data = ("\r\n".join(lines) + "\r\n").encode()
        if last and self.o.truncate_batch and self.batches == self.o.truncate_batch:
            data = data[: len(data) - len(lines[-1]) // 2 - 2]  # cut in the middle of the last record
        self.results.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.results / name, data)
        self.handled += self._pending
        self._pending, self._extra = [], []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m drivers.sim.file_inserter",
                                description="Run a simulated file-driven inserter on two folders.")
    p.add_argument("--runs", required=True, help="the hot folder the appliance writes run data files to")
    p.add_argument("--results", required=True, help="the folder to write result files to")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="e.g. piece_seconds=0.01 divert=3:E12 chunk=5 bad_line_after=4 truncate_batch=2")
    args = p.parse_args(argv)
    try:
        options = SimOptions.parse(args.option)
    except ValueError as e:
        p.error(str(e))
    for d in (args.runs, args.results):
        Path(d).mkdir(parents=True, exist_ok=True)
    sim = FileInserterSim(Path(args.runs), Path(args.results), options).start()
    print(f"file inserter simulator: runs from {args.runs}, results to {args.results}; Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        print(f"handled {sim.pieces} pieces in {sim.batches} batches", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())


def start_simulator(runs: Path, results: Path, options: list[str]) -> FileInserterSim:
    """A simulated hot-folder inserter on these folders, started (``drivers.simulator``)."""
    return FileInserterSim(runs, results, SimOptions.parse(options)).start()
