"""The hardware profile's ``[mi]`` and ``[failure_reasons]`` tables.

``[mi]`` says how counted device events become the supplier's invoice lines::

    [mi]
    timezone = "Europe/London"   # a day is a calendar day here (default Europe/London)
    submit_at = "06:00"          # the daemon submits every finished day at this time
    sheets = "sheets-a4-80gsm"   # one line item for every sheet printed ...
    [mi.sheets]                  # ... or one per paper id (use one form, not both)
    "paper-std-white-100" = "sheets-white"
    [mi.envelopes]               # envelope id -> line item
    "C5-window" = "envelope-c5"
    [mi.postage]                 # postage class -> line item
    economy = "postage-economy"
    [mi.inserts]                 # insert id -> line item
    "leaflet-1" = "insert-leaflet"
    [mi.stock]                   # line item -> declared stock, decremented by counted use
    "envelope-c5" = 20000                                   # counted from the first time seen
    "sheets-white" = { level = 50000, as_of = "2025-01-06T07:00:00Z" }

An item without a configured name gets a default (``envelope-<id>`` ...) so a preview is
always possible, but such lines are not submitted unless ``allow_default_names = true``:
the names must match the supplier's invoice lines.

``[failure_reasons]`` lists the FAILED reason codes agreed with Notify (code = "text").
When present, an operator's FAILED must use one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.core.errors import ConfigError
from appliance.core.tables import known_keys

#: kinds of counted use and the default line item pattern for each
KINDS = ("sheets", "envelope", "insert", "postage")
_TABLES = {"envelopes": "envelope", "postage": "postage", "inserts": "insert"}
_DEFAULT = {"sheets": "sheets-{}", "envelope": "envelope-{}", "insert": "insert-{}",
            "postage": "postage-{}"}
_ITEM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")
_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_KEYS = {"timezone", "submit_at", "sheets", "envelopes", "postage", "inserts", "stock",
         "allow_default_names"}


@dataclass(frozen=True)
class StockDeclaration:
    level: int
    as_of: float | None = None  # epoch seconds; None = from the first time the appliance saw it


@dataclass(frozen=True)
class MiSettings:
    timezone: str = "Europe/London"
    submit_at: time | None = None
    sheets: str | None = None  # one name for all sheets
    sheets_by_paper: dict[str, str] = field(default_factory=dict)
    names: dict[str, dict[str, str]] = field(default_factory=dict)  # kind -> id -> line item
    stock: dict[str, StockDeclaration] = field(default_factory=dict)
    allow_default_names: bool = False

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def line_item(self, kind: str, key: str) -> tuple[str, bool]:
        """(line item name, named in the profile?) for one kind of use, e.g. envelope C5."""
        if kind == "sheets":
            if self.sheets:
                return self.sheets, True
            if key in self.sheets_by_paper:
                return self.sheets_by_paper[key], True
        elif key in self.names.get(kind, {}):
            return self.names[kind][key], True
        return _DEFAULT[kind].format(key), False


def _name(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not _ITEM_NAME.match(value):
        raise ConfigError(f"{where} {key}: line item must be a short name (letters, digits, . _ : / -), "
                          f"got {value!r}; use the name on the supplier's invoice")
    return value


def _table(where: str, key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} {key}: must be a table of id = \"line item\"; write [mi.{key}]")
    return {str(k): _name(f"{where}.{key}]", repr(k), v) for k, v in value.items()}


def _when(where: str, value: Any) -> float:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            dt = None
    else:
        dt = None
    if dt is None or dt.tzinfo is None:
        raise ConfigError(f"{where} as_of: must be a date-time with a zone such as "
                          f"\"2025-01-06T07:00:00Z\", got {value!r}")
    return dt.astimezone(timezone.utc).timestamp()


def _stock(where: str, value: Any) -> dict[str, StockDeclaration]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} stock: must be a table of \"line item\" = level; write [mi.stock]")
    out = {}
    for item, decl in value.items():
        w = f"{where}.stock] {item!r}"
        if isinstance(decl, dict):
            extra = set(decl) - {"level", "as_of"}
            if extra or "level" not in decl:
                raise ConfigError(f"{w}: write {{ level = N, as_of = \"2025-01-06T07:00:00Z\" }}")
            level, as_of = decl["level"], _when(w, decl["as_of"]) if "as_of" in decl else None
        else:
            level, as_of = decl, None
        if not isinstance(level, int) or isinstance(level, bool) or level < 0:
            raise ConfigError(f"{w}: stock level must be a whole number 0 or more, got {level!r}")
        out[_name(f"{where}.stock]", "", item)] = StockDeclaration(level, as_of)
    return out


def parse_mi(path: Path, data: Any) -> MiSettings:
    where = f"{path}: [mi"
    if data is None:
        return MiSettings()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: mi must be a table: write [mi]")
    known_keys(f"{path}: [mi]", data, sorted(_KEYS))
    tz = data.get("timezone", "Europe/London")
    try:
        if not isinstance(tz, str):
            raise ZoneInfoNotFoundError
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{path}: [mi] timezone: unknown time zone {tz!r}; use a name such as "
                          "\"Europe/London\" or \"UTC\"") from None
    submit_at = data.get("submit_at")
    if submit_at is not None:
        if isinstance(submit_at, time):
            pass
        elif isinstance(submit_at, str) and re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", submit_at):
            submit_at = time(int(submit_at[:2]), int(submit_at[3:]))
        else:
            raise ConfigError(f"{path}: [mi] submit_at: must be a time of day \"HH:MM\" (24 h), "
                              f"got {submit_at!r}")
    sheets = data.get("sheets")
    one, by_paper = None, {}
    if isinstance(sheets, dict):
        by_paper = _table(where, "sheets", sheets)
    elif sheets is not None:
        one = _name(f"{path}: [mi]", "sheets", sheets)
    names = {kind: _table(where, key, data[key]) for key, kind in _TABLES.items() if key in data}
    allow = data.get("allow_default_names", False)
    if not isinstance(allow, bool):
        raise ConfigError(f"{path}: [mi] allow_default_names: expected true or false, got {allow!r}")
    return MiSettings(timezone=tz, submit_at=submit_at, sheets=one, sheets_by_paper=by_paper,
                      names=names, stock=_stock(where, data.get("stock", {})),
                      allow_default_names=allow)


def parse_failure_reasons(path: Path, data: Any) -> dict[str, str]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: failure_reasons must be a table: write [failure_reasons]")
    out = {}
    for code, text in data.items():
        if not _CODE.match(code):
            raise ConfigError(f"{path}: [failure_reasons] {code!r}: a code is 1-32 letters, digits, "
                              "_ or -; rename it")
        if not isinstance(text, str) or not text.strip() or len(text) > 200:
            raise ConfigError(f"{path}: [failure_reasons] {code}: the text must be 1-200 characters, "
                              f"got {text!r}")
        out[code] = text.strip()
    return out
