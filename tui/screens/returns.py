"""Returns desk: scan (keyboard-wedge scanner types the id + Enter) or type an id, pick a
reason R01-R10, confirm, and RETURNED goes to the API."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Header, Input, OptionList, Static
from textual.widgets.option_list import Option

from appliance.core.status import RETURN_REASONS
from tui.screens.confirm import ConfirmScreen
from tui.screens.kept import KeptScreen
from tui.widgets.footer import ConsoleFooter


class ReturnsScreen(KeptScreen):
    """The id field has focus on arrival (a wedge scanner types into it), so digits typed
    there are part of an id; Esc clears it and leaves the field, after which 1-6 switch
    screens as everywhere; Esc again goes to the dashboard, ``i`` back to the field."""

    BINDINGS = [Binding("escape", "leave", "Clear/leave"), Binding("i", "focus_id", "Id field")]

    def __init__(self):
        super().__init__()
        self.letter_id: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Scan or type the letter id, then Enter", classes="section-title")
        yield Input(placeholder="letter id", id="returns-id")
        yield Static("", id="returns-letter")
        yield OptionList(*[Option(f"{code}  {text}", id=code) for code, text in RETURN_REASONS.items()],
                         id="reasons", disabled=True)
        yield Static("", id="returns-result")
        yield ConsoleFooter()

    def on_screen_resume(self) -> None:
        box = self.query_one("#returns-id", Input)
        pending = getattr(self.app, "pending_return_id", None)
        if pending:
            self.app.pending_return_id = None
            box.value = pending
            self.run_worker(self.look_up(pending), exclusive=True, group="lookup")
        else:
            box.focus()

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        await self.look_up(event.value.strip())

    async def look_up(self, letter_id: str) -> None:
        info = self.query_one("#returns-letter", Static)
        reasons = self.query_one("#reasons", OptionList)
        if not letter_id:
            return
        rec = await self.app.call("letter", id=letter_id)
        if rec is None:
            info.update(Text(f"✖ {letter_id}: not known here"))
            self.query_one("#returns-id", Input).focus()
            return
        self.letter_id = letter_id
        info.update(Text(f"{letter_id}  now {rec['status']}  ({rec.get('specification_id') or '-'})  "
                         "— pick a reason, Enter"))
        reasons.disabled = False
        reasons.highlighted = 0
        reasons.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        code, letter_id = event.option.id, self.letter_id
        if not letter_id or not code:
            return

        async def done(yes: bool | None) -> None:
            result = self.query_one("#returns-result", Static)
            if yes:
                msg = await self.app.call("return", id=letter_id, reason=code)
                result.update(Text(f"✔ {msg}" if msg else f"✖ {letter_id} not returned (see message)"))
            else:
                result.update(Text(f"{letter_id}: nothing sent"))
            self.reset()

        self.app.push_screen(
            ConfirmScreen(f"Send RETURNED {code} ({RETURN_REASONS[code]}) for\n{letter_id}?"), done)

    def action_leave(self) -> None:
        box = self.query_one("#returns-id", Input)
        if box.has_focus or self.letter_id or box.value:
            self.reset(focus=False)
            self.set_focus(None)  # digits now switch screens
            self.query_one("#returns-result", Static).update(
                "Esc again: dashboard   i: type or scan an id   1-6: screens")
        else:
            self.app.switch_mode("dashboard")

    def action_focus_id(self) -> None:
        self.query_one("#returns-id", Input).focus()

    def reset(self, focus: bool = True) -> None:
        self.letter_id = None
        box = self.query_one("#returns-id", Input)
        box.value = ""
        self.query_one("#returns-letter", Static).update("")
        self.query_one("#reasons", OptionList).disabled = True
        if focus:
            box.focus()
