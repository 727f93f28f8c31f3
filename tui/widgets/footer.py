"""The footer every screen shows: Help and Quit first, so they stay visible at 80 columns.

Textual's Footer lists the focused widget's keys, then the screen's, then the app's, and
cuts what does not fit: at 80x24 "q Quit" and "? Help" fell off the right end.  Here they
come first, and below ``WIDE`` columns the mode keys (1-6, all in the help) are left out.
"""

from __future__ import annotations

from textual.widgets import Footer
from textual.widgets._footer import FooterKey

WIDE = 110  # columns from which the mode keys 1-5 are shown too
FIRST = ("help", "quit")


class ConsoleFooter(Footer):
    def __init__(self, **kwargs) -> None:
        super().__init__(compact=True, show_command_palette=False, **kwargs)  # ^p still works
        self._wide: bool | None = None

    def compose(self):
        keys = list(super().compose())
        wide = self.app.size.width >= WIDE
        first = [k for k in keys if isinstance(k, FooterKey) and k.action in FIRST]
        rest = [k for k in keys if k not in first
                and (wide or not (isinstance(k, FooterKey) and k.action.startswith("switch_mode")))]
        self.styles.grid_size_columns = len(first) + len(rest)
        yield from first + rest

    def on_resize(self) -> None:
        wide = self.app.size.width >= WIDE
        if self._wide is not None and wide != self._wide:
            self.call_later(self.recompose)
        self._wide = wide
