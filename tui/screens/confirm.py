"""Modal dialogs: yes/no confirmation, pick-one-from-a-list, a one-line note, and the
FAILED reason picker.  Every text in them may come from the daemon (letter ids, messages,
reason texts), so none is read as markup; labels wrap, so a letter id is never cut."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList
from textual.widgets.option_list import Option


def _label(text: str, classes: str = "wrap", **kwargs) -> Label:
    return Label(text, markup=False, classes=classes, **kwargs)


class ConfirmScreen(ModalScreen[bool]):
    """Ask before doing something to a device or a letter: y/Enter confirms, n/Esc cancels."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield _label(self.question, id="question")
            with Horizontal():
                yield Button("Yes (y)", id="yes", variant="primary")
                yield Button("No (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ChoiceScreen(ModalScreen[str | None]):
    """Pick one option (e.g. how to resolve a held piece): arrows and Enter, or its number;
    Esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, choices: list[tuple[str, str]]):
        super().__init__()
        self.title_text = title
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield _label(self.title_text, id="question")
            yield OptionList(*[Option(f"{i}  {label}" if i < 10 else label, id=key)
                               for i, (key, label) in enumerate(self.choices, start=1)], id="choices",
                             markup=False)
            yield _label("↑↓ and Enter, or the number; Esc cancels", classes="wrap hint")

    def on_mount(self) -> None:
        self.query_one("#choices", OptionList).focus()

    def on_key(self, event) -> None:
        if event.character and event.character.isdigit() and event.character != "0":
            n = int(event.character)
            if n <= len(self.choices):
                event.stop()
                self.dismiss(self.choices[n - 1][0])

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class NoteScreen(ModalScreen[str | None]):
    """Ask for a one-line note (e.g. how a refused letter was handled); Enter gives it,
    Esc cancels; an empty note is not accepted (the audit needs words)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, placeholder: str = "what was done, by whom"):
        super().__init__()
        self.question = question
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield _label(self.question, id="question")
            yield Input(placeholder=self.placeholder, id="note", max_length=200)
            yield _label("Enter gives it, Esc cancels", classes="wrap hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class FailReasonScreen(ChoiceScreen):
    """Mark FAILED: pick one of the profile's agreed reason codes (the daemon refuses any
    other).  Dismisses with the code, or None (Esc)."""

    def __init__(self, what: str, reasons: dict[str, str]):
        super().__init__(f"{what}\nWhy did it fail? (the agreed reasons)",
                         [(code, f"{code}: {text}") for code, text in reasons.items()])


async def ask_failure(app, what: str):
    """How a letter failed, as the daemon wants it: ``{"code": C}`` picked from the agreed
    codes, or ``{"reason": TEXT}`` typed where the profile has none; None when cancelled."""
    reasons = await app.failure_reasons()
    if reasons:
        code = await app.push_screen_wait(FailReasonScreen(what, reasons))
        return {"code": code} if code else None
    text = await app.push_screen_wait(NoteScreen(f"{what}\nWhy did it fail? (this floor has no agreed codes)",
                                                 placeholder="reason, e.g. damaged in the inserter"))
    return {"reason": text} if text else None
