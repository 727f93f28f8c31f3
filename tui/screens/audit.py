"""Audit screen: one row per inserter batch - pieces expected, enclosed, diverted (wrong
envelope or taken off the line), reprinted, held for an operator, still outstanding.

``r`` refreshes (it also refreshes with the status).  CSV: ``appliance audit --csv FILE``.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from tui.widgets.labels import clock

COLUMNS = ("inserter", "batch", "expected", "enclosed", "diverted", "reprinted", "held", "outstanding", "last")


class AuditScreen(Screen):
    BINDINGS = [Binding("r", "refresh", "Refresh")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Audit: inserter batches", id="audit-title", classes="section-title")
        table = DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table
        yield Static("", id="audit-note")
        yield Footer(compact=True)

    async def on_screen_resume(self) -> None:
        await self.action_refresh()

    async def action_refresh(self) -> None:
        res = await self.app.call("audit")
        if res is not None:
            self.show(res["rows"])

    def show_status(self, status: dict) -> None:  # called with every status refresh
        self.run_worker(self.action_refresh(), exclusive=True, group="audit")

    def show(self, rows: list[dict]) -> None:
        table = self.query_one("#audit-table", DataTable)
        keep = table.cursor_row
        table.clear()
        for r in rows:
            flag = "⚠ " if r["held"] or r["outstanding"] else ""
            table.add_row(r["device"], f"{r['batch']:04d}", str(r["expected"]), str(r["enclosed"]),
                          str(r["diverted"]), str(r["reprinted"]), f"{flag}{r['held']}",
                          str(r["outstanding"]), clock(r["last"]))
        if rows:
            table.move_cursor(row=min(keep, len(rows) - 1))
        totals = {k: sum(r[k] for r in rows) for k in ("expected", "enclosed", "diverted", "reprinted", "held")}
        self.query_one("#audit-note", Static).update(
            f"{len(rows)} batch(es): {totals['expected']} expected, {totals['enclosed']} enclosed, "
            f"{totals['diverted']} diverted, {totals['reprinted']} reprinted, {totals['held']} held"
            "   CSV: appliance audit --csv FILE" if rows else "no inserter batches recorded yet")
