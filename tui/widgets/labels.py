"""State and status labels that carry a symbol and a word, so colour is never the only cue."""

from __future__ import annotations

import time

from rich.text import Text

#: device state -> (symbol, word, style)
DEVICE_STATES = {
    "idle": ("●", "idle", "green"),
    "busy": ("▶", "busy", "cyan"),
    "paused": ("‖", "PAUSED", "bold yellow"),
    "draining": ("↓", "draining", "yellow"),
    "stopped": ("■", "STOPPED", "bold red"),
    "offline": ("✖", "OFFLINE", "bold red"),
    "error": ("✖", "ERROR", "bold red"),
}

#: letter status -> style (the status word itself is always shown)
STATUS_STYLE = {
    "PENDING": "dim", "ACCEPTED": "cyan", "PRINTED": "cyan", "ENCLOSED": "cyan",
    "DISPATCHED": "green", "DELIVERED": "green", "FORWARDED": "green",
    "REJECTED": "bold red", "FAILED": "bold red", "CANCELLED": "yellow", "RETURNED": "magenta",
}

#: alert severity -> (symbol, word, style)
SEVERITIES = {
    "critical": ("✖", "CRIT", "bold red"),
    "warning": ("⚠", "warn", "yellow"),
    "info": ("ℹ", "info", ""),
}

SPARK = " ▁▂▃▄▅▆▇█"


def device_state(state: str | None) -> Text:
    sym, word, style = DEVICE_STATES.get(state or "", ("?", (state or "unknown").upper(), "bold red"))
    return Text(f"{sym} {word}", style=style)


def letter_status(status: str | None) -> Text:
    s = status or "?"
    mark = "✖ " if s in ("REJECTED", "FAILED") else ""
    return Text(mark + s, style=STATUS_STYLE.get(s, ""))


def severity_label(severity: str | None) -> Text:
    """An alert's severity; an older daemon sends none: shown as a warning."""
    sym, word, style = SEVERITIES.get(severity or "warning", ("?", (severity or "?")[:4], "yellow"))
    return Text(f"{sym} {word}", style=style)


def sparkline(values: list[int]) -> str:
    top = max(values or [0]) or 1
    return "".join(SPARK[min(8, round(v * 8 / top))] if v else SPARK[0] for v in values)


def clock(t: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) if t else ""
