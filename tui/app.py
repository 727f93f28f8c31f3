"""The console application: connections to the daemon, modes, global keys."""

from __future__ import annotations

import gc
import os
import time
from collections import deque
from pathlib import Path
from typing import Callable

from textual._context import active_app
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from appliance.control.client import ControlClient, ControlError, DaemonNotRunning
from tui.screens.audit import AuditScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.help import HelpScreen
from tui.screens.letters import LettersScreen
from tui.screens.log import LogScreen
from tui.screens.mi import MiScreen
from tui.screens.returns import ReturnsScreen


def styled_now(screen_class: type[Screen]) -> Callable[[], Screen]:
    """A mode's screen, marked as styled with the app's CSS as it stands.

    Textual marks a mode's new screen as styled only once it is mounted, which it is not yet
    when the mode is first switched to: its first two visits each re-parsed and re-applied
    all the console's CSS (a third of such a visit's CPU in tui_bench's profile), though the
    screen is styled from the current stylesheet when it mounts.  A later theme change still
    restyles it on its visit.
    The console's first screen is left to Textual (its refresh puts the theme in place)."""
    def make() -> Screen:
        screen = screen_class()
        app = active_app.get()
        if app.screen_stack:  # not the first screen: that one's refresh sets the theme's variables
            screen._css_update_count = app._css_update_count
        return screen
    make.__name__ = f"{screen_class.__name__}_styled_now"
    return make


class ConsoleApp(App):
    """Attach to the daemon at ``socket_path``; closing the console never touches printing."""

    CSS_PATH = Path(__file__).with_name("console.tcss")
    TITLE = "Appliance console"
    MODES = {name: styled_now(screen) for name, screen in (
        ("dashboard", DashboardScreen), ("letters", LettersScreen), ("returns", ReturnsScreen),
        ("log", LogScreen), ("mi", MiScreen), ("audit", AuditScreen))}
    DEFAULT_MODE = "dashboard"
    BINDINGS = [
        Binding("1", "switch_mode('dashboard')", "Dash"),
        Binding("2", "switch_mode('letters')", "Letters"),
        Binding("3", "switch_mode('returns')", "Returns"),
        Binding("4", "switch_mode('log')", "Log"),
        Binding("5", "switch_mode('mi')", "MI"),
        Binding("6", "switch_mode('audit')", "Audit", show=False),  # listed in help (?)
        # F-keys work even while typing in a search box or the returns desk
        *[Binding(f"f{i}", f"switch_mode('{m}')", m, show=False, priority=True)
          for i, m in enumerate(("dashboard", "letters", "returns", "log", "mi", "audit"), start=1)],
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, socket_path: str, refresh_seconds: float = 2.0):
        super().__init__()
        self.socket_path = socket_path
        self.refresh_seconds = refresh_seconds
        self.client = ControlClient(socket_path)
        self.status: dict = {}
        self.events: deque[dict] = deque(maxlen=1000)
        self.events_received = 0  # every event so far (``events`` keeps the last 1000)
        self.connected = False
        self.pending_return_id: str | None = None

    async def on_mount(self) -> None:
        # Everything built so far (modules, Textual, the first screen) lives as long as the
        # console: out of the cyclic collector's way.  Its full passes walked all of it and
        # stopped the console for 100-200 ms at a time under ingest (tui_bench).
        gc.freeze()
        self.call_after_refresh(self._first_screen_styled)
        self.run_worker(self._follow_events(), name="events", exclusive=True, group="events")
        self.set_interval(self.refresh_seconds, self.refresh_status)
        await self.refresh_status()

    def switch_mode(self, mode: str):
        """Textual holds every repaint for 50 ms on a mode switch (``delay_update``), to hide a
        new screen while it is built.  The console keeps its screens: one visited before is
        built already, so it is shown at once (the hold was over half of a mode key's
        key-to-repaint at idle in tui_bench).  A first visit keeps the hold."""
        if mode not in self._screen_stacks:
            return super().switch_mode(mode)
        self._showing_kept = True
        try:
            return super().switch_mode(mode)
        finally:
            self._showing_kept = False

    _showing_kept = False  # switching to a mode whose screen is built: no repaint hold

    def delay_update(self, delay: float = 0.05) -> None:
        if not self._showing_kept:
            super().delay_update(delay)

    def _first_screen_styled(self) -> None:
        """The first screen is styled (theme included) by now; see ``styled_now``."""
        if self.screen_stack and self.screen.is_mounted:
            self.screen._css_update_count = self._css_update_count

    async def on_unmount(self) -> None:
        await self.client.close()
        gc.unfreeze()  # a console started again in this process (tests) freezes anew

    def notify(self, message: str, *, title: str = "", severity="information", timeout=None,
               markup: bool = False) -> None:
        """Never markup: what the console notifies comes from the daemon, and text such as
        "(the profile's [failure_reasons])" was eaten as a markup tag."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    @property
    def operator(self) -> str:
        """Who acknowledges alerts from this console: the login name, else "console"."""
        return os.environ.get("USER") or os.environ.get("LOGNAME") or "console"

    async def failure_reasons(self) -> dict[str, str]:
        """The profile's agreed FAILED codes: from the snapshot, else asked (older daemons
        send them only on request), else none (a daemon from before the codes)."""
        if isinstance(self.status.get("failure_reasons"), dict):
            return self.status["failure_reasons"]
        try:
            got = await self.client.call("failure_reasons")
        except (ControlError, DaemonNotRunning, OSError):
            return {}
        return got if isinstance(got, dict) else {}

    async def call(self, cmd: str, **args):
        """Ask the daemon; on refusal show its one-line reason and return None."""
        try:
            result = await self.client.call(cmd, **args)
        except ControlError as e:
            self.notify(str(e), severity="error", timeout=8)
            return None
        except (DaemonNotRunning, OSError) as e:
            self._lost(str(e))
            await self.client.close()
            return None
        self.connected = True
        return result

    def _lost(self, why: str) -> None:
        if self.connected:
            self.notify(f"lost the daemon: {why}", severity="error", timeout=8)
        self.connected = False
        self.sub_title = "DISCONNECTED"

    async def refresh_status(self) -> None:
        s = await self.call("status")
        if s is None:
            return
        self.status = s
        self.sub_title = f"{self.socket_path}  API {'ok' if s.get('api_ok') else 'UNREACHABLE'}"
        refresh = getattr(self._top_screen(), "show_status", None)
        if refresh:
            refresh(s)

    async def _follow_events(self) -> None:
        """One subscribed connection; every event goes to the log and the current screen."""
        import asyncio

        while True:
            try:
                async with ControlClient(self.socket_path) as sub:
                    async for ev in sub.events():
                        self.take_event(ev)
            except (DaemonNotRunning, OSError, ValueError) as e:
                self._lost(str(e))
            await asyncio.sleep(1.0)

    def take_event(self, ev: dict) -> None:
        """One event from the daemon: into the log's buffer and to the screen on top."""
        ev.setdefault("received", time.time())  # the log's time when data has none
        self.events.append(ev)
        self.events_received += 1
        handler = getattr(self._top_screen(), "on_daemon_event", None)
        if handler:
            handler(ev)

    def _top_screen(self):
        """The screen on top, or None while the console is quitting (events still arrive)."""
        return self.screen_stack[-1] if self.screen_stack else None

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())
