"""Alerts with a life cycle: one model for the daemon, the control socket and the consoles.

An alert is one *cause* (its key: ``device:<name>:<condition>``, ``letter:<id>:<condition>``
or ``<area>:<condition>``), not one message: it opens once, a repeat while it is open only
bumps ``count`` and ``last_seen`` (and takes the newest message), and it closes when its
condition clears or a person acknowledges it.  A repeat after that opens a new one.  Open
alerts are never dropped for lack of room (a floor of 2 000 letters must not hide the one
cause behind 20 symptoms); closed ones age out, newest kept.  Pure: the clock is passed in.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator

SEVERITIES = ("critical", "warning", "info")
RANK = {s: i for i, s in enumerate(SEVERITIES)}
PUBLISH_EVERY = 1.0  # seconds: count updates of one alert are told to consoles at most this often

#: Device conditions (from a driver's message) that hold while the device is not ready:
#: they close when it reports ready again.  Each with its severity.
_DEVICE_RULES: tuple[tuple[str, str, str], ...] = (
    (r"\bjam\b", "jam", "critical"),
    (r"\berror (\w+)", "error-{0}", "warning"),
    (r"\bout of (\w+)", "out-of-{0}", "critical"),
    (r"\b(\w+) low\b", "{0}-low", "warning"),
    (r"\blink lost\b|no answer yet|offline|unreachable|does not answer", "offline", "critical"),
    (r"\bstopped\b", "stopped", "critical"),
)

#: Conditions of a device that hold only while it is not ready (closed when it is).
DEVICE_STATE_CONDITIONS = re.compile(
    r"^(jam|out-of-.*|offline|stopped|error-.*|state.*|unreachable|missing)$")

_CRITICAL = ("hold", "intake-hold", "no-printer", "no-inserter", "no-franker", "out-of", "jam",
             "offline", "stopped", "missing", "unreachable", "accept-unsure", "refused", "conflict")
_INFO = ("reprint", "reroute", "relisted", "resent")


def severity_for(condition: str) -> str:
    """critical: a device down, jammed or out of stock, letters held; info: the floor
    handled it itself (a reprint, a reroute); warning: everything else (retries, the API)."""
    c = condition.lower()
    if any(c == w or c.startswith(w + "-") or c.startswith(w + ":") for w in _CRITICAL):
        return "critical"
    if any(c == w or c.startswith(w + "-") for w in _INFO):
        return "info"
    return "warning"


def slug(text: str, limit: int = 40) -> str:
    """A stable key part from free text: lower case, digits and quoted bits dropped, so
    the same cause with a different count or id is the same key."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"|\([^)]*\)|\d+", "", text.lower())
    return re.sub(r"[^a-z]+", "-", text).strip("-")[:limit].strip("-") or "alert"


def device_condition(message: str) -> tuple[str, str]:
    """(condition, severity) for a device's free-text alert (drivers send only a message)."""
    low = message.lower()
    for pattern, name, severity in _DEVICE_RULES:
        m = re.search(pattern, low)
        if m:
            return name.format(*m.groups()), severity
    return slug(message), "warning"


@dataclass
class Alert:
    key: str
    severity: str
    source: str
    message: str
    letter_id: str | None
    device: str | None
    opened: float
    last_seen: float
    count: int = 1
    state: str = "open"
    closed_at: float | None = None
    closed_by: str | None = None
    published: float = 0.0  # when consoles were last told of it (count updates are throttled)

    def as_dict(self) -> dict[str, Any]:
        d = {"key": self.key, "severity": self.severity, "source": self.source, "message": self.message,
             "letter_id": self.letter_id, "device": self.device, "opened": self.opened,
             "t": self.last_seen, "last_seen": self.last_seen, "count": self.count, "state": self.state}
        if self.state == "closed":
            d.update(closed_at=self.closed_at, closed_by=self.closed_by)
        return d


@dataclass(frozen=True)
class Said:
    """One raise as it happened (the log of what the floor said, repeats included)."""

    t: float
    key: str
    severity: str
    source: str
    message: str
    letter_id: str | None


class Alerts:
    """The open alerts by key, the newest ``keep_closed`` closed ones, and the last
    ``keep_said`` raises as said (iterating the model walks those: a log, not the state)."""

    def __init__(self, keep_closed: int = 200, keep_said: int = 500):
        self.open: dict[str, Alert] = {}
        self.closed: deque[Alert] = deque(maxlen=keep_closed)
        self.said: deque[Said] = deque(maxlen=keep_said)

    def raise_(self, key: str, source: str, message: str, now: float, *, severity: str = "warning",
               letter_id: str | None = None, device: str | None = None) -> tuple[Alert, bool]:
        """Open ``key`` or update it; (alert, tell consoles now?)."""
        if severity not in RANK:
            raise ValueError(f"severity {severity!r}: use one of {', '.join(SEVERITIES)}")
        self.said.append(Said(now, key, severity, source, message, letter_id))
        a = self.open.get(key)
        if a is None:
            a = self.open[key] = Alert(key, severity, source, message, letter_id, device, now, now,
                                       published=now)
            return a, True
        a.count += 1
        a.last_seen = now
        a.message = message
        if RANK[severity] < RANK[a.severity]:
            a.severity = severity  # a condition that grew worse says so
        if now - a.published >= PUBLISH_EVERY:
            a.published = now
            return a, True
        return a, False

    def close(self, key: str, now: float, by: str = "cleared") -> Alert | None:
        a = self.open.pop(key, None)
        if a is not None:
            a.state, a.closed_at, a.closed_by = "closed", now, by
            self.closed.append(a)
        return a

    def close_where(self, test: Callable[[Alert], bool], now: float, by: str = "cleared") -> list[Alert]:
        return [a for a in (self.close(k, now, by) for k in [k for k, a in self.open.items() if test(a)])
                if a is not None]

    def get(self, key: str) -> Alert | None:
        return self.open.get(key)

    def open_alerts(self) -> list[Alert]:
        """Most severe first, then newest."""
        return sorted(self.open.values(), key=lambda a: (RANK[a.severity], -a.last_seen))

    def closed_alerts(self, limit: int | None = None) -> list[Alert]:
        """Newest closed first."""
        items = list(reversed(self.closed))
        return items if limit is None else items[:limit]

    def counts(self) -> dict[str, int]:
        c = dict.fromkeys(SEVERITIES, 0)
        for a in self.open.values():
            c[a.severity] += 1
        return c

    def __len__(self) -> int:
        return len(self.said)

    def __iter__(self) -> Iterator[Said]:
        return iter(list(self.said))
