"""Everything the daemon has told this console: device changes, letter changes, alerts."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, RichLog

from tui.widgets.labels import clock


def describe(ev: dict) -> str:
    d = ev.get("data") or {}
    kind = ev.get("event")
    if kind == "alert":
        lid = f" ({d['letter_id']})" if d.get("letter_id") else ""
        return f"{clock(d.get('t'))} ALERT {d.get('source')}: {d.get('message')}{lid}"
    if kind == "device":
        return f"device {d.get('name')} -> {d.get('state')}"
    if kind == "letter":
        return f"letter {d.get('id')} {d.get('status')} ({d.get('stage')})"
    return str(ev)


#: Lines the log screen shows (the app keeps more events; a person reads the last screenfuls).
SHOWN = 120


class LogScreen(Screen):
    """Writes are batched: under full ingest a console gets hundreds of events a second, and
    one RichLog write each would keep the screen busy laying out lines instead of answering
    keys.  Lines are not wrapped for the same reason (wrapping re-measures every line)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[str] = []  # events may arrive before the screen is mounted

    def compose(self) -> ComposeResult:
        yield Header()
        yield RichLog(id="log", wrap=False, max_lines=SHOWN * 2)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.set_interval(0.2, self._flush)

    def on_screen_resume(self) -> None:
        log = self.query_one(RichLog)
        log.clear()
        self._pending = []
        events = list(self.app.events)[-SHOWN:]
        if events:
            log.write("\n".join(describe(ev) for ev in events))

    def on_daemon_event(self, ev: dict) -> None:
        self._pending.append(describe(ev))

    def _flush(self) -> None:
        if self._pending and self.is_current:
            lines, self._pending = self._pending[-SHOWN:], []
            self.query_one(RichLog).write("\n".join(lines))
