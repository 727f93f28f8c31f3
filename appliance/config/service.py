"""The hardware profile's ``[service]`` table: the supplier's service levels, from which each
letter's dispatch-by time is worked out (``appliance.core.deadlines``)::

    [service]
    timezone = "Europe/London"       # cut-offs are wall-clock times here (DST by zoneinfo)
    intake_cutoff = "14:00"          # letters listed later count from the next working day
    collection_cutoff = "17:30"      # the carrier's collection: the dispatch-by time of a day
    working_days = ["Mon", "Tue", "Wed", "Thu", "Fri"]
    bank_holidays = ["2026-12-25", "2026-12-28"]
    at_risk_lead_minutes = 60        # alert this long before a cut-off a letter will miss
    order = "edf"                    # earliest deadline first; "fifo" = first come first served
    default_dispatch_days = 1        # a postage class the table below does not name
    [service.dispatch_days]          # postage id -> working days it may wait before dispatch
    first-class = 0
    economy = 1

Without ``[service]`` the defaults above apply (no bank holidays), so older profiles work.
"""

from __future__ import annotations

from datetime import date, datetime
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.core.deadlines import DEFAULT_DISPATCH_DAYS, WEEKDAYS, ServiceTable, parse_days
from appliance.core.errors import ConfigError
from appliance.core.tables import table, typed_table

_KEYS = {"timezone": str, "intake_cutoff": str, "collection_cutoff": str, "working_days": list,
         "bank_holidays": list, "at_risk_lead_minutes": int, "order": str, "default_dispatch_days": int,
         "dispatch_days": dict}


def _clock(where: str, key: str, value: str) -> clock_time:
    try:
        return datetime.strptime(value, "%H:%M").time()
    except ValueError:
        raise ConfigError(f'{where} {key}: {value!r} is not a time of day; write it as "HH:MM", '
                          'e.g. "17:30"') from None


def _days(where: str, key: str, value: Any, most: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= most:
        raise ConfigError(f"{where} {key}: expected a whole number of working days 0-{most}, got {value!r}")
    return value


def parse_service(path: Path, data: Any) -> ServiceTable:
    if data is None:
        return ServiceTable()
    where = f"{path}: [service]"
    raw = table(where, data, "write [service] then its keys")
    dispatch = raw.get("dispatch_days", {})
    if not isinstance(dispatch, dict):
        raise ConfigError(f"{where} dispatch_days: must be a table; write [service.dispatch_days] then "
                          "economy = 1")
    data = typed_table(where, {k: v for k, v in raw.items() if k != "dispatch_days"}, _KEYS)
    tz = data.get("timezone", "Europe/London")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f'{where} timezone: unknown time zone {tz!r}; use an IANA name such as '
                          '"Europe/London"') from None
    intake = _clock(where, "intake_cutoff", data.get("intake_cutoff", "14:00"))
    collection = _clock(where, "collection_cutoff", data.get("collection_cutoff", "17:30"))
    if intake > collection:
        raise ConfigError(f"{where} intake_cutoff: {intake:%H:%M} is after collection_cutoff "
                          f"{collection:%H:%M}; a same-day letter could not make the collection: set it earlier")
    try:
        working = parse_days(data.get("working_days", WEEKDAYS[:5]))
    except ValueError as e:
        raise ConfigError(f"{where} working_days: {str(e)!r} is not a day; use {', '.join(WEEKDAYS)}") from None
    if not working:
        raise ConfigError(f'{where} working_days: empty; list at least one, e.g. ["Mon", "Tue", "Wed", '
                          '"Thu", "Fri"]')
    holidays = set()
    for d in data.get("bank_holidays", []):
        try:
            holidays.add(date.fromisoformat(d))
        except ValueError:
            raise ConfigError(f'{where} bank_holidays: {d!r} is not a date; write it as "YYYY-MM-DD"') from None
    lead = data.get("at_risk_lead_minutes", 60)
    if not 0 <= lead <= 24 * 60:
        raise ConfigError(f"{where} at_risk_lead_minutes: expected 0-1440 minutes, got {lead}")
    order = data.get("order", "edf")
    if order not in ("edf", "fifo"):
        raise ConfigError(f'{where} order: must be "edf" (earliest deadline first) or "fifo", got {order!r}')
    days = dict(DEFAULT_DISPATCH_DAYS)
    for postage, n in dispatch.items():
        days[postage] = _days(f"{where.removesuffix(']')}.dispatch_days]", postage, n, 30)
    return ServiceTable(timezone=tz, intake_cutoff=intake, collection_cutoff=collection,
                        working_days=working, bank_holidays=frozenset(holidays), dispatch_days=days,
                        default_dispatch_days=_days(where, "default_dispatch_days",
                                                    data.get("default_dispatch_days", 1), 30),
                        at_risk_lead_minutes=lead, order=order)
