"""One supervisor for every long-running task of the daemon: nothing stops silently.

A task that raises is logged with its traceback (once per distinct error; a repeat is one
line), raised as an alert, and started again after a backoff (1 s doubling to 30 s).  A
task that keeps failing -- more than ``limit`` failures within ``window`` seconds -- makes
the supervisor unhealthy: the daemon then stops petting the systemd watchdog, so systemd
restarts the whole process, and ``appliance status`` says which task failed and why.  A
task that has run cleanly for ``window`` seconds is forgiven its old failures.

A loop returning on its own is a failure too (none of them is meant to end).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Callable

log = logging.getLogger("appliance.core.supervisor")

Factory = Callable[[], Awaitable[None]]


@dataclass
class TaskState:
    name: str
    factory: Factory
    task: asyncio.Task | None = None
    failures: deque = field(default_factory=deque)  # times of recent failures
    restarts: int = 0
    last_error: str = ""
    state: str = "running"  # running | restarting | failing
    logged: set = field(default_factory=set)


class Supervisor:
    def __init__(self, alert: Callable[..., None] | None = None, *, limit: int = 5, window: float = 300.0,
                 backoff_first: float = 1.0, backoff_max: float = 30.0, clock=time.monotonic):
        self.alert = alert or (lambda *a, **k: None)
        self.limit = limit
        self.window = window
        self.backoff_first = backoff_first
        self.backoff_max = backoff_max
        self.clock = clock
        self.tasks: dict[str, TaskState] = {}
        self._stopping = False

    def spawn(self, name: str, factory: Factory) -> None:
        """Run ``factory()`` as task ``name`` and keep it running."""
        if name in self.tasks:
            raise ValueError(f"task {name} already supervised")
        st = TaskState(name, factory)
        self.tasks[name] = st
        st.task = asyncio.create_task(self._keep(st), name=name)

    async def _keep(self, st: TaskState) -> None:
        delay = self.backoff_first
        while True:
            started = self.clock()
            st.state = "running"
            try:
                await st.factory()
                error, trace = f"task {st.name} ended on its own", None
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the point of the supervisor
                error = f"{type(e).__name__}: {e}"[:300]
                trace = e
            if self._stopping:
                return
            now = self.clock()
            if now - started > self.window:
                delay = self.backoff_first  # it ran well for a while: start the backoff over
            st.failures.append(now)
            while st.failures and now - st.failures[0] > self.window:
                st.failures.popleft()
            st.restarts += 1
            st.last_error = error
            st.state = "failing" if len(st.failures) > self.limit else "restarting"
            if error not in st.logged:  # the traceback once; repeats are one line
                st.logged.add(error)
                log.error("task %s failed: %s", st.name, error, exc_info=trace)
            else:
                log.error("task %s failed again: %s", st.name, error)
            self.alert("supervisor", f"task {st.name} failed ({error}); restarting in {delay:.0f} s"
                       + ("; failing repeatedly, the watchdog will restart the daemon"
                          if st.state == "failing" else ""))
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    async def cancel(self, names) -> None:
        """Stop these tasks (a driver stopping its own loops) without counting a failure."""
        tasks = []
        for name in names:
            st = self.tasks.pop(name, None)
            if st is not None and st.task is not None:
                st.task.cancel()
                tasks.append(st.task)
        await asyncio.gather(*tasks, return_exceptions=True)

    def healthy(self) -> bool:
        now = self.clock()
        return not any(st.state == "failing" and st.failures and now - st.failures[-1] <= self.window
                       for st in self.tasks.values())

    def report(self) -> list[dict]:
        """Every task that is not simply running, for ``appliance status`` and the console."""
        return [{"name": st.name, "state": st.state, "restarts": st.restarts, "last_error": st.last_error}
                for st in self.tasks.values() if st.restarts]

    async def stop(self) -> None:
        self._stopping = True
        tasks = [st.task for st in self.tasks.values() if st.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.tasks.clear()
        self._stopping = False
