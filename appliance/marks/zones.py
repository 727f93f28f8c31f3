"""Where sheet marks go: the profile's ``[marks]`` table and the geometry of a clear zone.

Pure: no I/O.  A clear zone is a square the pack's artwork keeps empty, measured in
millimetres from the page's TOP-LEFT corner as the page is seen (print engineers measure
that way)::

    [marks]
    default = { x_mm = 5, y_mm = 250, size_mm = 14 }          # any pack without its own zone
    [marks.zone."notify-c5"]
    x_mm = 190
    y_mm = 5
    size_mm = 14

A printer prints marks only with ``marks = true`` in its ``[[printer]]`` table.  The code
(QR, error correction M, 4-module quiet zone) fills the zone's square; a module smaller
than ``MIN_MODULE_MM`` would not read back reliably, so such a zone is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import segno

from appliance.core.errors import ConfigError
from appliance.core.tables import known_keys

MIN_MODULE_MM = 0.33
QUIET_MODULES = 4  # the QR standard's quiet zone, drawn white inside the clear zone
ERROR_LEVEL = "M"
MM = 72 / 25.4  # PDF points per millimetre
#: The payload a zone must carry at load time: a 32-character letter id, sheet 99 of 99,
#: run 999999.  A longer id at print time is checked again (and held if it cannot fit).
TYPICAL_PAYLOAD = "NL1:" + "x" * 32 + ":99:99:999999"
#: Sheet sizes (mm, portrait) for checking a zone against its pack's paper at load time.
PAPER_MM = {"A3": (297.0, 420.0), "A4": (210.0, 297.0), "A5": (148.0, 210.0),
            "LETTER": (215.9, 279.4), "LEGAL": (215.9, 355.6)}
_ZONE_KEYS = ("x_mm", "y_mm", "size_mm")


@dataclass(frozen=True)
class ClearZone:
    x_mm: float  # from the left edge of the page as seen
    y_mm: float  # from the top edge of the page as seen
    size_mm: float  # side of the square

    def describe(self) -> str:
        return f"{{ x_mm = {self.x_mm:g}, y_mm = {self.y_mm:g}, size_mm = {self.size_mm:g} }}"


@dataclass(frozen=True)
class MarksSettings:
    default: ClearZone | None = None
    zones: dict[str, ClearZone] = field(default_factory=dict)  # pack specification id -> zone

    def zone_for(self, specification_id: str) -> ClearZone | None:
        return self.zones.get(specification_id, self.default)

    @property
    def any(self) -> bool:
        return self.default is not None or bool(self.zones)


def qr_matrix(text: str) -> list[bytearray]:
    """The QR code's modules, rows top to bottom, 1 = dark (no quiet zone)."""
    qr = segno.make(text, error=ERROR_LEVEL, boost_error=False, micro=False)
    return [bytearray(row) for row in qr.matrix]


def module_mm(zone: ClearZone, modules: int) -> float:
    return zone.size_mm / (modules + 2 * QUIET_MODULES)


def fit_problem(zone: ClearZone, text: str, modules: int | None = None) -> str | None:
    """Why a code carrying ``text`` (``modules`` wide, if already made) cannot be printed
    readably in ``zone``, or None."""
    modules = modules or len(qr_matrix(text))
    got = module_mm(zone, modules)
    if got < MIN_MODULE_MM:
        need = MIN_MODULE_MM * (modules + 2 * QUIET_MODULES)
        return (f"zone {zone.describe()} is too small for a {len(text)}-character mark: modules would be "
                f"{got:.3f} mm (at least {MIN_MODULE_MM} mm reads reliably); make size_mm at least "
                f"{math.ceil(need * 10) / 10:g}")
    return None


def outside_problem(zone: ClearZone, width_mm: float, height_mm: float) -> str | None:
    """Why ``zone`` does not lie on a page of this size (as seen), or None."""
    if zone.x_mm + zone.size_mm > width_mm + 1e-6 or zone.y_mm + zone.size_mm > height_mm + 1e-6:
        return (f"zone {zone.describe()} lies outside the {round(width_mm, 1):g} x {round(height_mm, 1):g} mm page; "
                "move it or make it smaller")
    return None


def zone_in_user_space(zone: ClearZone, mediabox: tuple[float, float, float, float],
                       rotate: int, user_unit: float = 1.0) -> tuple[float, float, float]:
    """(x, y, side) of the zone's square in the page's default user space.

    ``mediabox`` is (x0, y0, x1, y1); ``rotate`` the page's /Rotate (clockwise, as shown).
    Raises ConfigError if the zone does not lie on the page.
    """
    x0, y0, x1, y1 = min(mediabox[0], mediabox[2]), min(mediabox[1], mediabox[3]), \
        max(mediabox[0], mediabox[2]), max(mediabox[1], mediabox[3])
    rotate %= 360
    if rotate % 90:
        raise ConfigError(f"page /Rotate {rotate} is not a multiple of 90; cannot place a sheet mark")
    unit = MM / user_unit  # user-space units per millimetre
    w, h = x1 - x0, y1 - y0
    seen_w, seen_h = (w, h) if rotate in (0, 180) else (h, w)
    problem = outside_problem(zone, seen_w / unit, seen_h / unit)
    if problem:
        raise ConfigError(problem)
    side = zone.size_mm * unit
    u0, v0 = zone.x_mm * unit, zone.y_mm * unit  # from the seen page's top-left corner
    u1, v1 = u0 + side, v0 + side

    def to_user(u: float, v: float) -> tuple[float, float]:
        if rotate == 0:
            return x0 + u, y1 - v
        if rotate == 90:  # seen top-left is the media's bottom-left
            return x0 + v, y0 + u
        if rotate == 180:
            return x1 - u, y0 + v
        return x1 - v, y1 - u  # 270

    (ax, ay), (bx, by) = to_user(u0, v0), to_user(u1, v1)
    return min(ax, bx), min(ay, by), side


def overlay_ops(matrix: list[bytearray], x: float, y: float, side: float) -> bytes:
    """Content-stream operators drawing a white square (x, y, side) with the code centred
    in it, dark modules as one filled path of rectangles (runs merged along each row, so
    no seams appear between modules when rendered)."""
    n = len(matrix)
    m = side / (n + 2 * QUIET_MODULES)
    ox, top = x + QUIET_MODULES * m, y + side - QUIET_MODULES * m
    ops = ["q", "1 g", f"{x:.3f} {y:.3f} {side:.3f} {side:.3f} re f", "0 g"]
    for r, row in enumerate(matrix):
        yr = top - (r + 1) * m
        c = 0
        while c < n:
            if not row[c]:
                c += 1
                continue
            start = c
            while c < n and row[c]:
                c += 1
            ops.append(f"{ox + start * m:.3f} {yr:.3f} {(c - start) * m:.3f} {m:.3f} re")
    ops += ["f", "Q"]
    return ("\n".join(ops) + "\n").encode("ascii")


# --- the profile's [marks] table ------------------------------------------------------


def _zone(where: str, value: Any) -> ClearZone:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a table like {{ x_mm = 5, y_mm = 250, size_mm = 14 }}")
    known_keys(where, value, _ZONE_KEYS, "x_mm, y_mm and size_mm")
    nums = {}
    for key in _ZONE_KEYS:
        if key not in value:
            raise ConfigError(f"{where} {key}: missing; add {key} = <millimetres>")
        v = value[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{where} {key}: expected a number of millimetres, got {v!r}")
        if v < 0 or (key == "size_mm" and v <= 0):
            raise ConfigError(f"{where} {key}: must be {'more than' if key == 'size_mm' else 'at least'} 0, "
                              f"got {v!r}")
        nums[key] = float(v)
    zone = ClearZone(**nums)
    problem = fit_problem(zone, TYPICAL_PAYLOAD)
    if problem:
        raise ConfigError(f"{where}: {problem}")
    return zone


def _check_on_paper(where: str, zone: ClearZone, paper_sizes: set[str]) -> None:
    for size in sorted(paper_sizes):
        dims = PAPER_MM.get(size.upper())
        problem = dims and outside_problem(zone, *dims)
        if problem:
            raise ConfigError(f"{where}: {problem} ({size})")


def parse_marks(path: Path, data: Any, pack_papers: dict[str, str] | None = None) -> MarksSettings:
    """The ``[marks]`` table (absent: no zones).  ``pack_papers`` (spec id -> paper size)
    lets zones be checked against the paper they will be printed on."""
    if data is None:
        return MarksSettings()
    where = f"{path}: [marks]"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a table; write [marks] then default = {{ ... }}")
    known_keys(where, data, ("default", "zone"), "default or zone")
    papers = pack_papers or {}
    default = None
    if "default" in data:
        default = _zone(f"{where} default", data["default"])
        _check_on_paper(f"{where} default", default, set(papers.values()))
    table = data.get("zone", {})
    if not isinstance(table, dict):
        raise ConfigError(f'{where} zone: write [marks.zone."<pack specification id>"] tables')
    zones = {}
    for spec, value in table.items():
        zw = f'{path}: [marks.zone."{spec}"]'
        zones[spec] = _zone(zw, value)
        if spec in papers:
            _check_on_paper(zw, zones[spec], {papers[spec]})
    return MarksSettings(default, zones)
