"""One letter: its fields and full timeline, and the actions an operator may take on it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import Header, Static

from appliance.core.verify import describe_coverage
from tui.screens.confirm import ChoiceScreen, ConfirmScreen, FailReasonScreen, NoteScreen, ask_failure
from tui.screens.kept import KeptScreen
from tui.widgets.footer import ConsoleFooter
from tui.widgets.labels import clock, letter_status

FIELDS = ("status", "stage", "specification_id", "group_id", "printer", "device", "job", "pages",
          "sheets", "attempts", "reason_code", "reason_text", "hold_reason", "wait_envelope",
          "dispatch_by_local", "dispatch_rule", "at_risk")
SKIP_IN_EVENT = {"t", "event"}


#: history event -> (label, style): what the API said about an update, told apart.
EVENT_LABELS = {
    "sent": ("sent to Notify (202)", ""),
    "proven": ("applied at Notify", "green"),
    "superseded": ("applied (superseded)", "green"),
    "refused": ("refused by Notify", "bold red"),
}


def timeline_text(rec: dict) -> Text:
    t = Text()
    t.append(f"{rec['id']}\n", style="bold")
    for f in FIELDS:
        if rec.get(f) not in (None, ""):
            value = letter_status(rec[f]) if f == "status" else Text(str(rec[f]))
            t.append(f"  {f:<17}")
            t.append(value)
            t.append("\n")
    if describe_coverage(rec):
        t.append(f"  {'coverage':<17}{describe_coverage(rec)}\n")
    if rec.get("weight_g") is not None:  # computed before ACCEPTED against the postage's bounds
        t.append(f"  {'mailpiece':<17}{rec['weight_g']:.1f} g, {rec.get('thickness_mm') or 0:.1f} mm\n")
    t.append("\nTimeline\n", style="bold underline")
    for h in rec.get("history") or []:
        extra = " ".join(f"{k}={v}" for k, v in h.items() if k not in SKIP_IN_EVENT and v is not None)
        label, style = EVENT_LABELS.get(h.get("event"), (h.get("event", ""), ""))
        t.append(f"  {clock(h.get('t'))}  {label:<22} {extra}\n", style=style)
    for e in rec.get("outbox") or []:
        if e.get("refused"):
            label, style = "refused by Notify", "bold red"
        elif e.get("sent"):
            label, style = "sent, not yet proven", "yellow"
        else:
            label, style = "waiting for API", "yellow"
        t.append(f"  {clock(e.get('created'))}  {label:<22} status={e['status']}\n", style=style)
    if rec.get("refused"):
        r = rec["refused"]
        t.append(f"\nRefused by Notify ({r.get('http_status')}): {r.get('detail')}\n"
                 "  s = send it again, n = mark handled (with a note)\n", style="bold red")
    return t


class LetterDetailScreen(KeptScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "act('reprint')", "Reprint"),
        Binding("c", "act('cancel')", "Cancel"),
        Binding("x", "act('fail')", "Mark FAILED"),
        Binding("h", "resolve", "Resolve hold"),
        Binding("t", "returns", "Return"),
        Binding("s", "act('retry')", "Send again"),
        Binding("n", "handled", "Handled (note)"),
    ]

    def __init__(self, letter_id: str):
        super().__init__()
        self.letter_id = letter_id
        self._stale = False  # shown again for another (or the same) letter: load it on resume

    def show(self, letter_id: str) -> None:
        """Use this screen again for ``letter_id`` (the letters screen keeps one, installed,
        instead of building and tearing down a screen per letter); it loads on resume."""
        self.letter_id = letter_id
        self._stale = True
        try:
            self.query_one("#detail", Static).update("loading…")
            self.query_one("#detail-body", VerticalScroll).scroll_home(animate=False)
        except NoMatches:  # not built yet: on_mount loads it
            self._stale = False

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="detail-body"):
            yield Static("loading…", id="detail")
        yield ConsoleFooter()

    async def on_mount(self) -> None:
        await self.reload()

    async def on_screen_resume(self) -> None:
        if self._stale:
            self._stale = False
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
        if cmd == "fail":
            self.run_worker(self._fail(), group="act", exclusive=True)
            return
        words = {"reprint": "Reprint", "cancel": "Cancel (CANCELLED)",
                 "retry": "Send again (or retry intake) for"}

        async def done(yes: bool | None) -> None:
            if yes:
                msg = await self.app.call(cmd, id=self.letter_id)
                if msg:
                    self.notify(msg)
                await self.reload()

        self.app.push_screen(ConfirmScreen(f"{words[cmd]} letter\n{self.letter_id}?"), done)

    async def _fail(self) -> None:
        """FAILED with one of the profile's agreed codes (picked), or a typed reason."""
        how = await ask_failure(self.app, f"Mark letter\n{self.letter_id}\nFAILED")
        if how:
            msg = await self.app.call("fail", id=self.letter_id, **how)
            if msg:
                self.notify(msg)
            await self.reload()

    def action_resolve(self) -> None:
        self.run_worker(self._resolve(), group="act", exclusive=True)

    async def _resolve(self) -> None:
        choices = [("enclosed", "it was enclosed (ENCLOSED)"), ("dispatched", "it went out (DISPATCHED)"),
                   ("reprint", "print it again"), ("fail", "it is lost (FAILED)")]
        outcome = await self.app.push_screen_wait(
            ChoiceScreen(f"What happened to\n{self.letter_id}?", choices))
        if not outcome:
            return
        args: dict = {}
        if outcome == "fail":
            # the same agreed codes the CLI enforces: a hold's "it is lost" cannot bypass them
            reasons = await self.app.failure_reasons()
            if reasons:
                code = await self.app.push_screen_wait(
                    FailReasonScreen(f"Letter\n{self.letter_id}\nis lost: FAILED", reasons))
                if not code:
                    return
                args["code"] = code
        if not args and not await self.app.push_screen_wait(
                ConfirmScreen(f"Resolve\n{self.letter_id}\nas {outcome}?")):
            return
        msg = await self.app.call("resolve", id=self.letter_id, outcome=outcome, **args)
        if msg:
            self.notify(msg)
        await self.reload()

    def action_handled(self) -> None:
        """A letter refused by Notify, settled outside the appliance: say how."""
        async def noted(note: str | None) -> None:
            if note:
                msg = await self.app.call("handled", id=self.letter_id, note=note)
                if msg:
                    self.notify(msg)
                await self.reload()

        self.app.push_screen(NoteScreen(f"How was\n{self.letter_id}\nhandled at Notify?"), noted)

    def action_returns(self) -> None:
        self.app.pending_return_id = self.letter_id
        self.app.switch_mode("returns")
