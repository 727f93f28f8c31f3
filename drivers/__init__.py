"""Device drivers, one module per family, all behind ``drivers.base.Driver``.

``REGISTRY`` maps (family, driver name in the profile) to ``module:Class``; classes are
imported only when a profile uses them, so the demo never needs pycups or a serial port.
"""

from __future__ import annotations

import importlib

REGISTRY: dict[tuple[str, str], str] = {
    ("printer", "file"): "drivers.files.printer:FilePrinter",
    ("printer", "cups"): "drivers.cups.printer:CupsPrinter",
    ("inserter", "serial"): "drivers.serial.finisher:SerialInserter",
    ("inserter", "files"): "drivers.files.inserter:FileInserter",
    ("franker", "serial"): "drivers.serial.finisher:SerialFranker",
    ("inserter", "sim"): "drivers.sim.finishing:SimInserter",
    ("franker", "sim"): "drivers.sim.finishing:SimFranker",
}


def driver_class(family: str, kind: str):
    target = REGISTRY[(family, kind)]
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def kinds(family: str) -> list[str]:
    return sorted(k for f, k in REGISTRY if f == family)
