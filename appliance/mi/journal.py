"""Management information: count what the devices really used, per day and line item.

``MiJournal`` is a pipeline listener.  Each real device event that used material (a job
printed, a piece enclosed, a piece franked) becomes one line in an append-only journal,
``<state_dir>/mi/events-YYYY-MM-DD.jsonl`` (the day in the profile's ``[mi] timezone``).
The line is appended (``appliance.store.journal.Journal``, one ``write()`` on an O_APPEND
descriptor) as the event arrives, so a killed process loses nothing already counted;
``fsync`` follows within ``SYNC_SECONDS`` (a power cut may lose that last fraction of a
second, and a line it cut short is never read).  The journal keeps
raw ids (paper, envelope, insert, postage class); line item names come from the profile
when a day is aggregated, so a naming fix applies to every day not yet submitted.

``day_report`` folds a day's journal into lines per (specification, group, line item)
with ``stockRemaining``: the last level an inserter reported for that item that day, or
else a profile-declared level minus the use counted since it was declared.

This module never touches the store's hot.json; submission lives in appliance.mi.ledger.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import date as Date
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

from appliance.core.packs import Pack
from appliance.mi.settings import MiSettings
from appliance.store.journal import Journal, private_dir
from appliance.store.storage import atomic_write_bytes

log = logging.getLogger("appliance.mi.journal")

SYNC_SECONDS = 0.5
#: Device events that use material, and what they use.
COUNTED_KINDS = ("job.completed", "piece.inserted", "piece.franked")


def mi_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "mi"


def day_of(t: float, settings: MiSettings) -> str:
    return datetime.fromtimestamp(t, settings.tz).date().isoformat()


def day_bounds(day: str, settings: MiSettings) -> tuple[float, float]:
    """[start, end) of a calendar day in the profile's time zone, as epoch seconds."""
    d = Date.fromisoformat(day)
    start = datetime(d.year, d.month, d.day, tzinfo=settings.tz)
    nxt = d + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=settings.tz)
    return start.timestamp(), end.timestamp()


def iso_utc(t: float) -> str:
    """ISO-8601 with milliseconds and Z, as the API's examples write timestamps."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def usage_of(data: dict[str, Any], pack: Pack | None) -> tuple[dict[str, int], dict[str, int]]:
    """(use, stock) of one device event, keyed ``kind:id``.  The device's own detail wins;
    the letter's pack fills what a device does not report."""
    kind = data.get("kind")
    use: dict[str, int] = {}
    stock: dict[str, int] = {}
    if kind == "job.completed":
        sheets = data.get("sheets")
        if not isinstance(sheets, int) and pack is not None and isinstance(data.get("pages"), int):
            sheets = pack.sheets_for(data["pages"])
        if isinstance(sheets, int) and sheets > 0:
            use[f"sheets:{pack.paper_id if pack else 'unknown'}"] = sheets
    elif kind == "piece.inserted":
        envelope = data.get("envelope") or (pack.envelope_id if pack else None)
        if envelope:
            use[f"envelope:{envelope}"] = 1
            level = data.get("stock_remaining")
            if isinstance(level, int) and not isinstance(level, bool):
                stock[f"envelope:{envelope}"] = level
        inserts = data.get("inserts")
        if inserts is None:
            inserts = list(pack.insert_ids) if pack else []
        for insert in inserts:
            use[f"insert:{insert}"] = use.get(f"insert:{insert}", 0) + 1
    elif kind == "piece.franked":
        postage = data.get("postage") or (pack.postage_id if pack else None)
        if postage:
            use[f"postage:{postage}"] = 1
    return use, stock


class MiJournal:
    """Pipeline listener that journals material use; also reads journals back."""

    def __init__(self, state_dir: Path, settings: MiSettings, packs: dict[str, Pack]):
        self.dir = private_dir(mi_dir(state_dir))
        self.settings = settings
        self.packs = packs
        self._days: dict[str, Journal] = {}  # day -> its open journal
        self.recorded = 0
        self.errors = 0
        self._counted: set | None = None  # (letter, kind) journalled lately; loaded on first replay

    # --- writing --------------------------------------------------------------------

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        """The pipeline listener.  Never raises: a full disk must not stop printing (it
        is logged and counted, and shows in the MI preview as journal errors)."""
        if kind != "device_event" or data.get("kind") not in COUNTED_KINDS:
            return
        try:
            if data.get("recovered") and self._already_counted(data):
                return  # replayed after a restart, and it was counted before the crash
            self.record(data)
        except Exception:
            self.errors += 1
            log.exception("MI journal could not record %s for %s", data.get("kind"), data.get("letter_id"))

    def record(self, data: dict[str, Any]) -> dict[str, Any] | None:
        pack = self.packs.get(data.get("specification_id") or "")
        use, stock = usage_of(data, pack)
        if not use:
            return None
        t = float(data.get("t") or time.time())
        line = {"t": round(t, 3), "device": data.get("device"), "kind": data.get("kind"),
                "letter_id": data.get("letter_id"), "specification_id": data.get("specification_id"),
                "group_id": data.get("group_id"), "use": use}
        if stock:
            line["stock"] = stock
        self._journal(day_of(t, self.settings)).append(line)
        self.recorded += 1
        return line

    def _already_counted(self, data: dict[str, Any]) -> bool:
        """Did a journal of the last week count this (letter, event kind) already?

        Only asked for events replayed after a restart: the device finished them either
        before the crash (then the live event was journalled) or while the appliance was
        down (then it was not, and must be counted now)."""
        if self._counted is None:
            self._counted = set()
            for path in sorted(self.dir.glob("events-*.jsonl"))[-8:]:
                for r in Journal(path).records():
                    if isinstance(r, dict):
                        self._counted.add((r.get("letter_id"), r.get("kind")))
        return (data.get("letter_id"), data.get("kind")) in self._counted

    def _journal(self, day: str) -> Journal:
        journal = self._days.get(day)
        if journal is None:
            for old in [d for d in self._days if d < day]:  # a new day: close finished ones
                self._days.pop(old).close()
            journal = self._days[day] = Journal(self.dir / f"events-{day}.jsonl", sync="batch",
                                                batch_seconds=SYNC_SECONDS)
        return journal

    def sync(self) -> None:
        for journal in self._days.values():
            journal.sync()

    def close(self) -> None:
        while self._days:
            self._days.popitem()[1].close()

    # --- reading --------------------------------------------------------------------

    def days(self) -> list[str]:
        return sorted(p.name[len("events-"):-len(".jsonl")] for p in self.dir.glob("events-*.jsonl"))

    def read_day(self, day: str) -> list[dict[str, Any]]:
        return read_journal(self.dir / f"events-{day}.jsonl")

    def report(self, day: str) -> "DayReport":
        return day_report(self, day, StockBook(self.dir, self.settings))




def read_journal(path: Path) -> list[dict[str, Any]]:
    return [r for r in Journal(path).records() if isinstance(r, dict) and isinstance(r.get("use"), dict)]


# --- declared stock ------------------------------------------------------------------


class StockBook:
    """When each declared stock level took effect (``mi/stock.json``, atomic replace).

    A level declared without ``as_of`` counts from the first time the appliance saw that
    level; declaring a new number (a restock) starts the count again from then.
    """

    def __init__(self, directory: Path, settings: MiSettings, clock=time.time):
        self.path = Path(directory) / "stock.json"
        self.settings = settings
        self.clock = clock

    def since(self) -> dict[str, tuple[int, float]]:
        """line item -> (declared level, counted from epoch seconds)."""
        try:
            known = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            known = {}
        out, changed = {}, False
        for item, decl in self.settings.stock.items():
            if decl.as_of is not None:
                out[item] = (decl.level, decl.as_of)
                continue
            seen = known.get(item)
            if not seen or seen.get("level") != decl.level:
                seen = {"level": decl.level, "since": round(self.clock(), 3)}
                known[item] = seen
                changed = True
            out[item] = (decl.level, float(seen["since"]))
        if changed:
            try:
                atomic_write_bytes(self.path, json.dumps(known, indent=1).encode(), keep_backup=False)
            except OSError as e:  # read-only inspection: the numbers are still right for now
                log.warning("cannot record stock declarations in %s: %s", self.path, e)
        return out


# --- aggregation -------------------------------------------------------------------------


@dataclass
class MiLine:
    day: str
    specification_id: str | None
    group_id: str | None
    line_item: str
    named: bool  # the profile names this line item (else a default name)
    quantity: int
    stock_remaining: int | None
    last_t: float  # the latest event counted in this line

    @property
    def key(self) -> str:
        return "/".join((self.day, self.specification_id or "-", self.group_id or "-", self.line_item))

    @property
    def timestamp(self) -> str:
        return iso_utc(self.last_t)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "key": self.key, "timestamp": self.timestamp}


@dataclass
class DayReport:
    day: str
    timezone: str
    events: int
    lines: list[MiLine]
    devices: dict[str, dict[str, int]]  # device -> kind -> events (for checking by eye)

    def as_dict(self) -> dict[str, Any]:
        return {"day": self.day, "timezone": self.timezone, "events": self.events,
                "devices": self.devices, "lines": [l.as_dict() for l in self.lines]}


def _names(settings: MiSettings, keys: Iterable[str]) -> dict[str, tuple[str, bool]]:
    return {k: settings.line_item(*k.split(":", 1)) for k in keys}


def day_report(journal: MiJournal, day: str, stock_book: StockBook) -> DayReport:
    settings = journal.settings
    records = journal.read_day(day)
    qty: dict[tuple, int] = defaultdict(int)
    last: dict[tuple, float] = {}
    named: dict[str, bool] = {}
    reported: dict[str, tuple[float, int]] = {}  # line item -> (t, level) last reported
    devices: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for rec in records:
        devices[rec.get("device") or "?"][rec.get("kind") or "?"] += 1
        names = _names(settings, list(rec["use"]) + list(rec.get("stock", {})))
        for k, n in rec["use"].items():
            item, is_named = names[k]
            key = (rec.get("specification_id"), rec.get("group_id"), item)
            qty[key] += int(n)
            last[key] = max(last.get(key, 0.0), rec["t"])
            named[item] = is_named
        for k, level in rec.get("stock", {}).items():
            item = names[k][0]
            if item not in reported or rec["t"] >= reported[item][0]:
                reported[item] = (rec["t"], int(level))
    remaining = {item: level for item, (_, level) in reported.items()}
    declared = stock_book.since()
    for item, (level, since) in declared.items():
        if item not in remaining and any(k[2] == item for k in qty):
            remaining[item] = max(0, level - _use_since(journal, item, since, day_bounds(day, settings)[1]))
    lines = [MiLine(day, spec, group, item, named[item], n, remaining.get(item), last[(spec, group, item)])
             for (spec, group, item), n in qty.items()]
    lines.sort(key=lambda l: (l.line_item, l.specification_id or "", l.group_id or ""))
    return DayReport(day, settings.timezone, len(records), lines,
                     {d: dict(k) for d, k in sorted(devices.items())})


def _use_since(journal: MiJournal, item: str, since: float, until: float) -> int:
    """Use of one line item counted in [since, until)."""
    settings = journal.settings
    first = day_of(since, settings)
    total = 0
    for day in journal.days():
        if day < first or day_bounds(day, settings)[0] >= until:
            continue
        for rec in journal.read_day(day):
            if not since <= rec["t"] < until:
                continue
            for k, n in rec["use"].items():
                if settings.line_item(*k.split(":", 1))[0] == item:
                    total += int(n)
    return total
