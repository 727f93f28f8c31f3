"""The intake worker pool: disposable processes with limits, seen from the daemon.

Built on pebble's ``ProcessPool``: it runs each task in a worker process, kills the worker
when the task overruns its timeout, notices a worker that died (SIGXCPU from its CPU
limit, the kernel's OOM killer, a crash) and starts a new one, and recycles workers after
a number of tasks.  Chosen over loky and ``concurrent.futures``, which have no per-task
timeout that kills only the task's own worker; a pool that breaks as a whole when one
worker dies (``BrokenProcessPool``) would let one letter cost all of them.

Workers come from a ``forkserver``: a clean interpreter that has imported only the worker
code, so a worker inherits none of the daemon's memory, sockets or locks.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import threading
from concurrent.futures import TimeoutError as TaskTimeout
from typing import Any, Callable

from pebble import ProcessExpired, ProcessPool

from appliance.core.errors import WorkerDied
from appliance.intake.settings import IntakeSettings

log = logging.getLogger("appliance.intake")

#: Module the forkserver imports once, so each new worker starts warm.
WORKER_MODULE = "appliance.intake.worker"

_SIGNALS = {int(s): s.name for s in signal.Signals}
_preload_lock = threading.Lock()


def _why(exitcode: int | None, settings: IntakeSettings) -> tuple[str, str]:
    if exitcode is not None and exitcode < 0:
        sig = _SIGNALS.get(-exitcode, f"signal {-exitcode}")
        if sig == "SIGXCPU":
            return "cpu", f"worker hit its CPU limit ({settings.cpu_seconds:g} s)"
        if sig == "SIGKILL":
            return "killed", (f"worker was killed (SIGKILL: out of memory, over "
                              f"{settings.memory_mb} MB, or by an operator)")
        if sig == "SIGSEGV":
            return "crashed", "worker crashed (SIGSEGV)"
        return "killed", f"worker ended by {sig}"
    return "crashed", f"worker exited unexpectedly (status {exitcode})"


class IntakePool:
    """``await pool.run(fn, job)``: a result dict, or ``WorkerDied``."""

    def __init__(self, settings: IntakeSettings):
        self.settings = settings
        self._pool: ProcessPool | None = None
        self.tasks = 0
        self.deaths = 0  # workers that died or were killed mid-task (each one replaced)
        self.rebuilds = 0  # whole pools replaced because pebble's manager broke
        self.busy = 0

    def start(self) -> None:
        ctx = multiprocessing.get_context("forkserver")
        with _preload_lock:
            ctx.set_forkserver_preload([WORKER_MODULE])
        from appliance.intake import worker

        self._pool = ProcessPool(
            max_workers=self.settings.processes, max_tasks=self.settings.tasks_per_worker,
            initializer=worker.init_worker, initargs=(self.settings.memory_mb * 1024 * 1024, self.settings.nice),
            context=ctx)

    async def run(self, fn: Callable[[dict], dict], job: dict[str, Any],
                  timeout: float | None = None, cpu_seconds: float | None = None) -> dict:
        if self._pool is None:
            raise RuntimeError("intake pool not started")
        cpu = self.settings.cpu_seconds if cpu_seconds is None else cpu_seconds
        job = {**job, "cpu_seconds": cpu, "memory_mb": self.settings.memory_mb}
        self.tasks += 1
        self.busy += 1
        try:
            future = self._schedule(fn, job, timeout or self.settings.task_seconds)
        except BaseException:
            self.busy -= 1
            raise
        try:
            return await asyncio.wrap_future(future)
        except TaskTimeout:
            self.deaths += 1
            raise WorkerDied("timeout", f"worker overran its deadline "
                                        f"({timeout or self.settings.task_seconds:g} s)") from None
        except ProcessExpired as e:
            self.deaths += 1
            kind, detail = _why(e.exitcode, self.settings)
            raise WorkerDied(kind, detail) from None
        except asyncio.CancelledError:
            future.cancel()  # pebble stops that worker; the pool starts another
            raise
        finally:
            self.busy -= 1

    def _schedule(self, fn, job, timeout):
        try:
            return self._pool.schedule(fn, args=(job,), timeout=timeout)
        except RuntimeError as e:
            # pebble's pool manager itself broke (several workers killed at once can do it):
            # every letter would fail from here on, so build a new pool and go on.
            self.rebuilds += 1
            log.error("intake pool broken (%s); starting a new one", e)
            old, self._pool = self._pool, None
            threading.Thread(target=_stop_quietly, args=(old,), daemon=True).start()
            self.start()
            return self._pool.schedule(fn, args=(job,), timeout=timeout)

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for an operator's ``kill``, and the tests)."""
        if self._pool is None:
            return []
        manager = getattr(self._pool, "_pool_manager", None)  # pebble keeps them here
        workers = getattr(getattr(manager, "worker_manager", None), "workers", {})
        return [w.pid for w in workers.values() if w.pid]

    def stats(self) -> dict[str, int]:
        return {"workers": self.settings.processes, "busy": self.busy, "tasks": self.tasks,
                "worker_deaths": self.deaths, "pool_rebuilds": self.rebuilds}

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool.join(timeout=10)
            self._pool = None


def _stop_quietly(pool: ProcessPool) -> None:
    try:
        pool.stop()
        pool.join(timeout=10)
    except Exception:  # a broken pool may fail to stop cleanly; its processes are orphans of it
        log.exception("stopping a broken intake pool")
