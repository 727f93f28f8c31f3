"""Everything the daemon has told this console, one timestamped sentence each: device
changes, letter changes, alerts opening and closing (newest at the bottom)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Header, RichLog

from tui.screens.kept import KeptScreen
from tui.widgets.footer import ConsoleFooter
from tui.widgets.labels import clock

#: letter status -> what happened to it, in words a person on the floor uses
STATUS_WORDS = {
    "PENDING": "listed by Notify", "ACCEPTED": "accepted", "PRINTED": "printed", "ENCLOSED": "enclosed",
    "DISPATCHED": "dispatched", "REJECTED": "REJECTED", "FAILED": "marked FAILED", "CANCELLED": "cancelled",
    "RETURNED": "returned", "DELIVERED": "delivered", "FORWARDED": "forwarded",
}


def _when(ev: dict, *fields: str) -> str:
    d = ev.get("data") or {}
    return clock(next((d[f] for f in fields if isinstance(d.get(f), (int, float))), None)
                 or ev.get("received")) or "--:--:--"


def describe(ev: dict) -> Text:
    """One line a person reads: HH:MM:SS, the device, the letter, what happened.  Plain text
    (never markup): every word of it comes from the daemon."""
    d = ev.get("data") if isinstance(ev.get("data"), dict) else {}
    kind = ev.get("event")
    if kind == "alert":
        sev = (d.get("severity") or "alert").upper()
        where = " ".join(x for x in (d.get("device") or d.get("source"), d.get("letter_id")) if x)
        if d.get("state") == "closed":
            by = d.get("closed_by")
            how = "cleared" if by in (None, "cleared") else f"acknowledged by {by}"
            line = f"{_when(ev, 'closed_at', 't')}  {where}  alert {how}: {d.get('message')}"
            return Text(line, style="dim")
        times = f" (seen {d['count']} times)" if (d.get("count") or 0) > 1 else ""
        line = f"{_when(ev, 'last_seen', 't')}  {where}  {sev}: {d.get('message')}{times}"
        return Text(line, style="bold red" if sev == "CRITICAL" else "yellow")
    if kind == "device":
        state = (d.get("state") or "?")
        detail = f" ({d['detail']})" if d.get("detail") else ""
        return Text(f"{_when(ev, 't')}  {d.get('name')}  is now {state}{detail}")
    if kind == "letter":
        status = d.get("status")
        words = STATUS_WORDS.get(status or "", f"now {status}")
        where = f"{d['device']}  " if d.get("device") else ""
        why = f" ({d['reason_code']})" if d.get("reason_code") else ""
        stage = f", next {d['stage']}" if d.get("stage") and d.get("stage") != "done" else ""
        if d.get("refused"):
            stage = ", its update REFUSED by Notify"
        return Text(f"{_when(ev, 'updated')}  {where}letter {d.get('id')} {words}{why}{stage}",
                    style="bold red" if status in ("REJECTED", "FAILED") or d.get("refused") else "")
    return Text(f"{_when(ev)}  {kind or 'event'}: {', '.join(f'{k}={v}' for k, v in d.items())}")


def worth_a_line(ev: dict, open_keys: set) -> bool:
    """An alert's count updates (up to one a second while its condition holds) are not news:
    the log tells when it opened and when it closed; ``open_keys`` tracks which are open."""
    if ev.get("event") != "alert":
        return True
    d = ev.get("data") if isinstance(ev.get("data"), dict) else {}
    key = d.get("key")
    if not key:  # an older daemon's alert: each one is new
        return True
    if d.get("state") == "closed":
        open_keys.discard(key)
        return True
    if key in open_keys:
        return False
    open_keys.add(key)
    return True


#: Lines the log screen shows (the app keeps more events; a person reads the last screenfuls).
SHOWN = 120


class LogScreen(KeptScreen):
    """Writes are batched: under full ingest a console gets hundreds of events a second, and
    one RichLog write each would keep the screen busy laying out lines instead of answering
    keys.  Lines are not wrapped for the same reason (wrapping re-measures every line).

    The log is built once and kept between visits: coming back adds only the events that
    arrived meanwhile (it cleared and described all ~1000 the app keeps on every visit)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[Text] = []  # events may arrive before the screen is mounted
        self._open: set[str] = set()  # alert keys whose opening is in the log
        self._synced: int | None = None  # app.events_received when the log last took events

    def compose(self) -> ComposeResult:
        yield Header()
        yield RichLog(id="log", wrap=False, max_lines=SHOWN * 2)
        yield ConsoleFooter()

    def on_mount(self) -> None:
        self.set_interval(0.2, self._flush)

    def on_screen_resume(self) -> None:
        events = self.app.events
        received = getattr(self.app, "events_received", None)
        missed = None if received is None or self._synced is None else received - self._synced
        if missed is None or missed > len(events):  # first visit, or events lost meanwhile: rebuild
            self.query_one(RichLog).clear()
            self._pending = []
            self._open = set()
            new = list(events)
        else:
            new = list(events)[len(events) - missed:] if missed else []
        self._synced = received
        kept = [ev for ev in new if worth_a_line(ev, self._open)]  # in order: alerts' open/closed
        self._pending.extend(describe(ev) for ev in kept[-SHOWN:])
        self._flush()

    def on_daemon_event(self, ev: dict) -> None:
        self._synced = getattr(self.app, "events_received", None)
        if worth_a_line(ev, self._open):
            self._pending.append(describe(ev))

    def _flush(self) -> None:
        if self._pending and self.is_current:
            lines, self._pending = self._pending[-SHOWN:], []
            self.query_one(RichLog).write(Text("\n").join(lines))
