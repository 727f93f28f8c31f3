"""Dashboard: every device, letter counts, throughput, and alerts that need a person."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from tui.screens.confirm import ConfirmScreen
from tui.widgets.labels import clock, device_state, sparkline

ORDER = ("PENDING", "ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED", "REJECTED", "FAILED",
         "CANCELLED", "RETURNED")


def stock_text(counters: dict) -> str:
    """Stock the device reports (serial: stock_<item>; simulators: stock), e.g. 'env 480'."""
    items = {k[6:]: v for k, v in counters.items() if k.startswith("stock_")}
    if "stock" in counters:
        items.setdefault("", counters["stock"])
    return " ".join(f"{k[:5]} {v}".strip() for k, v in sorted(items.items()))


def summary_text(s: dict) -> Text:
    counts = s.get("counts") or {}
    t = Text()
    if s.get("api_ok", True):
        t.append("API ✔ ok", style="green")
    else:
        t.append("API ✖ UNREACHABLE", style="bold red")
    outbox = s.get("outbox", 0)
    t.append(f"   outbox {outbox}", style="bold yellow" if outbox > 500 else "")
    held = s.get("held", 0)
    t.append(f"   held {held}", style="bold yellow" if held else "")
    refused = (s.get("updates") or {}).get("refused", 0)  # always shown: each needs a person
    t.append(f"   refused by Notify {refused}", style="bold red" if refused else "")
    tp = s.get("throughput") or []
    t.append(f"   final/min {tp[-1] if tp else 0} {sparkline(tp)}\n")
    t.append("  ".join(f"{k} {counts[k]}" for k in ORDER if counts.get(k)) or "no letters yet")
    return t


class DashboardScreen(Screen):
    BINDINGS = [
        Binding("p", "device('pause')", "Pause"),
        Binding("u", "device('resume')", "Resume"),
        Binding("d", "device('drain')", "Drain"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("connecting…", id="summary")
        table = DataTable(id="devices", cursor_type="row", zebra_stripes=True)
        # Fixed widths: columns do not jump about on every refresh, and fit 80 columns.
        for label, width in (("device", 17), ("kind", 8), ("state", 10), ("load", 4), ("queue", 5),
                             ("stock", 6), ("detail", 22)):
            table.add_column(label, width=width)
        yield table
        yield Static("Alerts needing a person", id="alerts-title")
        alerts = DataTable(id="alerts", cursor_type="row")
        for label, width in (("time", 8), ("source", 16), ("message", 44), ("letter", 32)):
            alerts.add_column(label, width=width)
        yield alerts
        yield Footer(compact=True)

    def on_screen_resume(self) -> None:
        if self.app.status:
            self.show_status(self.app.status)
        self.query_one("#devices", DataTable).focus()

    def show_status(self, s: dict) -> None:
        self.query_one("#summary", Static).update(summary_text(s))
        table = self.query_one("#devices", DataTable)
        row = table.cursor_row
        table.clear()
        for name, d in (s.get("devices") or {}).items():
            table.add_row(name, d.get("family", ""), device_state(d.get("state")), str(d.get("load", 0)),
                          str(d.get("queue_depth", 0)), stock_text(d.get("counters") or {}),
                          (d.get("detail") or "")[-22:], key=name)
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))
        alerts = self.query_one("#alerts", DataTable)
        alerts.clear()
        for a in reversed(s.get("alerts") or []):
            alerts.add_row(clock(a.get("t")), a.get("source") or "", Text(a.get("message") or ""),
                           a.get("letter_id") or "")

    def on_daemon_event(self, ev: dict) -> None:
        if ev.get("event") in ("device", "alert"):
            self.run_worker(self.app.refresh_status, group="refresh", exclusive=True)

    def selected_device(self) -> str | None:
        table = self.query_one("#devices", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value

    def action_device(self, what: str) -> None:
        name = self.selected_device()
        if not name:
            self.notify("no device selected")
            return

        async def done(yes: bool | None) -> None:
            if yes:
                msg = await self.app.call(what, device=name)
                if msg:
                    self.notify(msg)
                await self.app.refresh_status()

        self.app.push_screen(ConfirmScreen(f"{what.capitalize()} {name}?"), done)
