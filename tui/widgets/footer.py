"""The footer every screen shows: Help and Quit first, so they stay visible at 80 columns.

Textual's Footer lists the focused widget's keys, then the screen's, then the app's, and
cuts what does not fit: at 80x24 "q Quit" and "? Help" fell off the right end.  Here they
come first, and below ``WIDE`` columns the mode keys (1-6, all in the help) are left out.

Textual's Footer rebuilds all its keys (a dozen widgets, each styled anew) whenever the
screen says its bindings may have changed: on every screen switch and focus change.  Here
it is rebuilt only when the keys it would show did change (in tui_bench's profile the
rebuilds were about a tenth of the console's CPU).
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
        self._shown: tuple | None = None  # what the keys now composed show (``_keys``)

    def _keys(self) -> tuple:
        """Everything the composed keys depend on: the bindings shown and the width class."""
        return (self.app.size.width >= WIDE, self.show_command_palette,
                tuple((b.key, b.key_display, b.description, b.action, b.group, enabled, tooltip)
                      for _, b, enabled, tooltip in self.screen.active_bindings.values() if b.show))

    def bindings_changed(self, screen) -> None:
        if self._bindings_ready and screen is self.screen and self._shown is not None \
                and self._keys() == self._shown:
            return
        super().bindings_changed(screen)

    def compose(self):
        self._shown = self._keys() if self._bindings_ready else None
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
