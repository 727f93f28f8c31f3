"""Everything the daemon has told this console: device changes, letter changes, alerts."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, RichLog

from ..widgets.labels import clock


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


class LogScreen(Screen):
    def compose(self) -> ComposeResult:
        yield Header()
        yield RichLog(id="log", wrap=True, max_lines=2000)
        yield Footer(compact=True)

    def on_screen_resume(self) -> None:
        # One write for the whole buffer: a write per event cost ~0.1 s for 1 000 events.
        log = self.query_one(RichLog)
        log.clear()
        if self.app.events:
            log.write("\n".join(describe(ev) for ev in self.app.events))

    def on_daemon_event(self, ev: dict) -> None:
        self.query_one(RichLog).write(describe(ev))
