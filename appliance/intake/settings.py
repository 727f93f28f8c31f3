"""``[intake]`` settings: how many workers, and the budgets each one runs under."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from appliance.intake.faults import RetryPolicy


def default_workers() -> int:
    """Check slots: two more than the cores this process may run on (a Raspberry Pi 4: six).
    A check's round trip (handed to the pool, run, its result back on the event loop) is
    longer than its CPU time, so with one slot per core the cores idle between checks:
    on 2 cores, 2 slots ingested 114 letters/s and 4 slots 151 (BENCHMARKS.md)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, cores) + 2


@dataclass(frozen=True)
class IntakeSettings:
    workers: int = field(default_factory=default_workers)  # PDFs checked at once (CPU-bound)
    fetchers: int = 8  # downloads at once (I/O-bound: a slow storage server holds only these)
    memory_mb: int = 512  # address-space limit of each worker process
    cpu_seconds: float = 30.0  # CPU one task may use before the worker is killed
    task_seconds: float = 180.0  # wall clock for one task (download + check) before it is killed
    download_seconds: float = 120.0  # wall clock for one download (the worker reports a stall)
    min_rate_kbps: float = 8.0  # slower than this (averaged, after a 5 s grace) is a stall
    max_decoded_mb: float = 200.0  # all streams of one letter, decoded
    # A worker is replaced after this many tasks (a fresh heap); each replacement costs a fork
    # and a cold start: at 500, about 0.4 ms of CPU a letter at full ingest (BENCHMARKS.md).
    tasks_per_worker: int = 2000
    coverage: bool = True  # render each page to measure its ink coverage against the pack
    coverage_dpi: int = 36  # resolution of that render (accuracy: appliance.intake.coverage)
    # Workers run this much nicer than the daemon (os.nice, 0-19): their PDF work is batch
    # work, and what a person waits for (the daemon's event loop answering the console, the
    # console itself) goes first.  Nice only counts while the CPU is full.  Measured on an
    # otherwise quiet 2-core box, nice 10 against 0: ingest 100-114 against 93 letters/s
    # (the loop that feeds the workers goes first too), the console under full ingest p50
    # 96 against 120 ms (BENCHMARKS.md).  Beside other nice-0 work (a shared machine) the
    # workers yield to it as well, and ingest slows.
    nice: int = 10
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def processes(self) -> int:
        """Worker processes in the pool: one for every check and every download at once."""
        return self.workers + self.fetchers

    @property
    def fetch_seconds(self) -> float:
        """A download task's deadline: the download's own, plus the time to start a worker."""
        return self.download_seconds + 10.0
