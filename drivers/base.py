"""The one small interface every device driver implements, and the events they emit.

Drivers are the only code that touches devices.  The pipeline hands a driver ``Work``
(``submit``), and the driver reports what really happened through ``DeviceEvent``s passed
to the ``emit`` callback it was built with.  Event kinds are the normalised ones in
``appliance.core.status.EVENT_KINDS`` plus two device-level kinds: ``device.state`` (state or
counters changed) and ``device.alert`` (something a person must see).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from appliance.core.packs import Pack
from appliance.core.supervisor import Factory, Supervisor


@dataclass(frozen=True)
class DeviceEvent:
    device: str
    kind: str
    letter_id: str | None = None
    job: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    t: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Work:
    """One letter for one device: the verified PDF and what its pack asks for."""

    letter_id: str
    pdf: Path | None
    pack: Pack
    pages: int
    sheets: int
    run: int = 0  # print run whose sheets these are (sheet marks, read-backs); 0 = unknown
    order: tuple = ()  # where it stands in a device's own queue: (dispatch-by, ...), earliest first


@dataclass
class Health:
    state: str  # idle | busy | paused | stopped | offline
    detail: str = ""
    queue_depth: int = 0
    counters: dict[str, int] = field(default_factory=dict)


Emit = Callable[[DeviceEvent], None]


class Driver(ABC):
    """Base for printers, inserters and franking machines.

    ``SETTINGS`` declares the driver-specific profile keys: name -> (type, default).
    """

    family: ClassVar[str] = ""
    SETTINGS: ClassVar[dict[str, tuple[type, Any]]] = {}

    def __init__(self, name: str, settings: dict[str, Any], emit: Emit, *, state_dir: Path,
                 supervisor: Supervisor | None = None):
        self.name = name
        self.settings = settings
        self._emit = emit
        self.state_dir = state_dir
        self.paused = False
        # The daemon's supervisor (a driver built on its own gets one that alerts as the device).
        self._supervisor = supervisor or Supervisor(
            lambda source, message, letter_id=None: self.emit("device.alert", message=message))
        self._task_names: list[str] = []

    def spawn(self, what: str, factory: Factory) -> None:
        """Run one of this driver's long-running loops under the supervisor: a loop that
        raises is logged, alerted and started again, never lost silently."""
        name = f"{self.name}/{what}"
        self._supervisor.spawn(name, factory)
        self._task_names.append(name)

    async def stop_tasks(self) -> None:
        """Cancel every loop ``spawn`` started (call from ``stop``)."""
        names, self._task_names = self._task_names, []
        await self._supervisor.cancel(names)

    def emit(self, kind: str, letter_id: str | None = None, job: str | None = None, **detail: Any) -> None:
        self._emit(DeviceEvent(self.name, kind, letter_id, job, detail))

    async def start(self) -> None:
        """Open the device; called once before any submit."""

    async def stop(self) -> None:
        """Close the device; in-flight work is left for reconcile() after restart."""

    @abstractmethod
    async def submit(self, work: Work) -> str:
        """Hand one letter to the device; returns the device's reference for it."""

    async def reconcile(self, letter_ids: list[str]) -> dict[str, str]:
        """After a restart: which of these letters has the device already finished?

        Returns letter id -> event kind (e.g. ``job.completed``) for each one whose fate
        the device can prove; letters it cannot speak for are left out.
        """
        return {}

    async def withdraw(self, letter_id: str) -> str | None:
        """Take a letter back before the device works on it (an operator cancelled it).

        Returns None when it was withdrawn, else one line saying why not (already at work,
        part of a larger job, a device that cannot take work back)."""
        return "this device cannot take work back"

    def forget(self, letter_id: str) -> None:
        """The letter is final: drop any copy of its PDF this driver keeps (patient data is
        removed when no longer needed).  Cheap; called on the event loop."""

    async def pause(self) -> None:
        self.paused = True
        self.emit("device.state", state="paused")

    async def resume(self) -> None:
        self.paused = False
        self.emit("device.state", state="idle")

    @abstractmethod
    def health(self) -> Health:
        """Current state, queue depth and counters (cheap, no I/O)."""
