"""The key map, one screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEY_MAP = """\
[b]Everywhere[/b]
  1 / F1   Dashboard          2 / F2   Letters      (F-keys work while typing)
  3 / F3   Returns desk       4 / F4   Log (events, alerts)
  5 / F5   MI (management information of a day)
  6 / F6   Audit (inserter batches: enclosed, diverted, reprinted, held)
  ?        This help          q        Quit the console (printing goes on)
[b]Dashboard[/b]  (arrow keys pick a device)
  p  pause     u  resume     d  drain (finish queue, take nothing new)
[b]Letters[/b]
  /  search by id   f  filter (status=… group=… spec=… device=… stage=… refused=yes)
  Enter  letter detail
[b]Letter detail[/b]
  r  reprint   c  cancel   x  mark FAILED   h  resolve a held piece
  t  return (opens the returns desk)   Esc  back
  s  send again (refused by Notify, held at intake)   n  mark handled, with a note
[b]Returns desk[/b]
  scan or type the letter id, Enter; pick R01-R10, Enter; y to send RETURNED
[b]Audit[/b]
  r  refresh   (CSV export: appliance audit --csv FILE)
[b]MI[/b]
  [ / ]  previous / next day   r  refresh   s  submit the day to Notify
All actions ask for confirmation first (y / n).
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Static(KEY_MAP, id="help-text")
