"""Device drivers, one package per family, all behind ``drivers.base.Driver``.

The registry, in the manner of Moonraker's component loader: everything the appliance asks
of a family goes through here, and a family's module is imported only when a profile uses
it (the demo never needs pycups or a serial port).

* ``REGISTRY`` maps (family, driver name in the profile) to ``module:Class``;
* ``DOCTOR`` maps a driver name to its ``doctor_checks(profile, config)``;
* ``SIMULATORS`` maps a simulated device kind to the function that starts it: a real
  driver asks ``simulator(kind)`` for a profile's ``port = "sim:..."`` or
  ``simulate = true``, and never imports ``drivers.sim`` itself.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

REGISTRY: dict[tuple[str, str], str] = {
    ("printer", "file"): "drivers.files.printer:FilePrinter",
    ("printer", "cups"): "drivers.cups.printer:CupsPrinter",
    ("inserter", "serial"): "drivers.serial.finisher:SerialInserter",
    ("inserter", "files"): "drivers.files.inserter:FileInserter",
    ("franker", "serial"): "drivers.serial.finisher:SerialFranker",
    ("inserter", "sim"): "drivers.sim.finishing:SimInserter",
    ("franker", "sim"): "drivers.sim.finishing:SimFranker",
}

DOCTOR: dict[str, str] = {
    "cups": "drivers.cups.admin:doctor_checks",
    "serial": "drivers.serial.doctor:doctor_checks",
    "files": "drivers.files.inserter:doctor_checks",
}

SIMULATORS: dict[str, str] = {
    "serial": "drivers.sim.serial_devices:start_simulator",  # (kind, link, options, framing)
    "files": "drivers.sim.file_inserter:start_simulator",  # (outbox, results, options)
    "files-options": "drivers.sim.file_inserter:SimOptions",  # .parse(options): checks them
}


def _load(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def driver_class(family: str, kind: str):
    return _load(REGISTRY[(family, kind)])


def kinds(family: str) -> list[str]:
    return sorted(k for f, k in REGISTRY if f == family)


def doctor_checks(driver: str) -> Callable | None:
    """The family's ``doctor_checks(profile, config)``, or None if it has none."""
    return _load(DOCTOR[driver]) if driver in DOCTOR else None


def simulator(kind: str) -> Any:
    return _load(SIMULATORS[kind])
