"""The key map, one screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEY_MAP = """\
[b]Keys[/b]  ↑ ↓ PgUp PgDn Home End scroll this help; Esc, ? or q close it
[b]Everywhere[/b]  (F-keys work while typing in a field)
  1 / F1  Dashboard           2 / F2  Letters
  3 / F3  Returns desk        4 / F4  Log (events, alerts)
  5 / F5  MI (management information of a day)
  6 / F6  Audit (inserter batches: enclosed, diverted, reprinted, held)
  ?       This help           q       Quit the console (printing goes on)
[b]Dashboard[/b]  (arrow keys pick a device; Tab moves to the alerts)
  p  pause     u  resume     d  drain (finish queue, take nothing new)
  alerts, most severe first: Enter opens its letter or device,
  a  acknowledge it (recorded with your login name)
[b]Letters[/b]
  /  search by id
  f  filter: status=… group=… spec=… device=… stage=… refused=yes
  Enter  letter detail   space  mark   x  mark FAILED (the marked ones)
[b]Letter detail[/b]   Esc  back
  r  reprint   c  cancel   h  resolve a held piece   t  return it
  x  mark FAILED (pick one of the agreed reasons, or type why)
  s  send again (refused by Notify, held at intake)
  n  mark handled at Notify, with a note
[b]Returns desk[/b]
  scan or type the letter id, Enter; pick R01-R10, Enter; y sends it
  Esc  clear and leave the id field (then 1-6 switch screens)
  Esc again: dashboard       i  back to the id field
[b]Audit[/b]
  r  refresh   (CSV export: appliance audit --csv FILE)
[b]MI[/b]
  [ / ]  previous / next day   r  refresh   s  submit the day to Notify
All actions ask first: y / n, or a pick from a list (Esc cancels).
"""


class HelpScreen(ModalScreen[None]):
    """Taller than 24 lines: it scrolls (its first line and border say so), by keys too."""

    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "Close")]

    def compose(self) -> ComposeResult:
        box = VerticalScroll(id="dialog")
        box.border_title = "Help"
        box.border_subtitle = "↑↓ PgUp PgDn scroll · Esc closes"
        with box:
            yield Static(KEY_MAP, id="help-text")

    def on_mount(self) -> None:
        self.query_one("#dialog", VerticalScroll).focus()  # so the arrow keys scroll it
