"""One letter: its fields and full timeline, and the actions an operator may take on it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from tui.screens.confirm import ChoiceScreen, ConfirmScreen
from tui.widgets.labels import clock, letter_status

FIELDS = ("status", "stage", "specification_id", "group_id", "printer", "device", "job", "pages",
          "sheets", "attempts", "reason_code", "reason_text", "hold_reason")
SKIP_IN_EVENT = {"t", "event"}


def timeline_text(rec: dict) -> Text:
    t = Text()
    t.append(f"{rec['id']}\n", style="bold")
    for f in FIELDS:
        if rec.get(f) not in (None, ""):
            value = letter_status(rec[f]) if f == "status" else Text(str(rec[f]))
            t.append(f"  {f:<17}")
            t.append(value)
            t.append("\n")
    t.append("\nTimeline\n", style="bold underline")
    for h in rec.get("history") or []:
        extra = " ".join(f"{k}={v}" for k, v in h.items() if k not in SKIP_IN_EVENT and v is not None)
        style = "green" if h.get("event") == "acked" else ""
        label = "API acknowledged" if h.get("event") == "acked" else h.get("event", "")
        t.append(f"  {clock(h.get('t'))}  {label:<22} {extra}\n", style=style)
    for e in rec.get("outbox") or []:
        t.append(f"  {clock(e.get('created'))}  waiting for API        status={e['status']}\n",
                 style="yellow")
    return t


class LetterDetailScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "act('reprint')", "Reprint"),
        Binding("c", "act('cancel')", "Cancel"),
        Binding("x", "act('fail')", "Mark FAILED"),
        Binding("h", "resolve", "Resolve hold"),
        Binding("t", "returns", "Return"),
    ]

    def __init__(self, letter_id: str):
        super().__init__()
        self.letter_id = letter_id

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="detail-body"):
            yield Static("loading…", id="detail")
        yield Footer(compact=True)

    async def on_mount(self) -> None:
        await self.reload()

    async def reload(self) -> None:
        rec = await self.app.call("letter", id=self.letter_id)
        if rec is None:
            return
        try:
            detail = self.query_one("#detail", Static)
        except NoMatches:  # an event for this letter came before the screen was built, or after it left
            return
        detail.update(timeline_text(rec))

    def on_daemon_event(self, ev: dict) -> None:
        if ev.get("event") == "letter" and (ev.get("data") or {}).get("id") == self.letter_id:
            self.run_worker(self.reload, group="reload", exclusive=True)

    def action_act(self, cmd: str) -> None:
        words = {"reprint": "Reprint", "cancel": "Cancel (CANCELLED)", "fail": "Mark FAILED"}
        args = {"id": self.letter_id}
        if cmd == "fail":
            args["reason"] = "Marked failed by operator"

        async def done(yes: bool | None) -> None:
            if yes:
                msg = await self.app.call(cmd, **args)
                if msg:
                    self.notify(msg)
                await self.reload()

        self.app.push_screen(ConfirmScreen(f"{words[cmd]} letter {self.letter_id}?"), done)

    def action_resolve(self) -> None:
        choices = [("enclosed", "it was enclosed (ENCLOSED)"), ("dispatched", "it went out (DISPATCHED)"),
                   ("reprint", "print it again"), ("fail", "it is lost (FAILED)")]

        async def picked(outcome: str | None) -> None:
            if outcome:
                async def done(yes: bool | None) -> None:
                    if yes:
                        msg = await self.app.call("resolve", id=self.letter_id, outcome=outcome)
                        if msg:
                            self.notify(msg)
                        await self.reload()

                self.app.push_screen(ConfirmScreen(f"Resolve {self.letter_id} as {outcome}?"), done)

        self.app.push_screen(ChoiceScreen("What happened to this piece?", choices), picked)

    def action_returns(self) -> None:
        self.app.pending_return_id = self.letter_id
        self.app.switch_mode("returns")
