"""The base of the console's screens, which are kept and shown again (not built anew).

Textual restyles a screen's whole tree each time it is shown again (``ScreenResume``'s
``refresh_styles``), for a stylesheet that may have changed meanwhile: under full ingest
the dashboard's restyle took ~70 ms of a "1" key's key-to-repaint (tui_bench).  A screen
styled from the stylesheet as it stands (``_css_update_count``, as ``tui.app.styled_now``
keeps it) has nothing to restyle; after a theme change the stylesheet is newer and the
screen is restyled as before.  Changes of a widget's classes or focus restyle that widget
themselves, shown or not.
"""

from __future__ import annotations

from textual import events
from textual.screen import Screen


class KeptScreen(Screen):
    def _on_screen_resume(self, event: events.ScreenResume) -> None:
        if self._css_update_count == self.app._css_update_count:
            event.refresh_styles = False  # Screen's own handler (after this one) skips the restyle
