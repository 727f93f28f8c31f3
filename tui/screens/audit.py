"""Audit screen: one row per inserter batch - pieces expected, enclosed, diverted (wrong
envelope or taken off the line), reprinted, held for an operator, still outstanding.

``r`` refreshes (it also refreshes with the status).  CSV: ``appliance audit --csv FILE``.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Header, Static

from tui.screens.kept import KeptScreen
from tui.widgets.fit_table import FitTable, clip
from tui.widgets.footer import ConsoleFooter
from tui.widgets.labels import clock

#: at 80 columns the last time and the reprinted count give way
COLUMNS = [("inserter", 10, 0), ("batch", 5, 0), ("expected", 8, 0), ("enclosed", 8, 0), ("diverted", 8, 0),
           ("reprinted", 9, 1), ("held", 6, 0), ("outstanding", 11, 0), ("last", 8, 2)]


class AuditScreen(KeptScreen):
    BINDINGS = [Binding("r", "refresh", "Refresh")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Audit: inserter batches", id="audit-title", classes="section-title")
        yield FitTable(COLUMNS, id="audit-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="audit-note")
        yield ConsoleFooter()

    async def on_screen_resume(self) -> None:
        await self.action_refresh()

    async def action_refresh(self) -> None:
        res = await self.app.call("audit")
        if res is not None:
            self.show(res["rows"])

    def show_status(self, status: dict) -> None:  # called with every status refresh
        self.run_worker(self.action_refresh(), exclusive=True, group="audit")

    def show(self, rows: list[dict]) -> None:
        self.query_one("#audit-table", FitTable).set_rows([
            (None, {"inserter": Text(clip(str(r["device"]), 10)), "batch": f"{r['batch']:04d}",
                    "expected": str(r["expected"]), "enclosed": str(r["enclosed"]),
                    "diverted": str(r["diverted"]),
                    "reprinted": str(r["reprinted"]),
                    "held": ("⚠ " if r["held"] or r["outstanding"] else "") + str(r["held"]),
                    "outstanding": str(r["outstanding"]), "last": clock(r["last"])})
            for r in rows])
        totals = {k: sum(r[k] for r in rows) for k in ("expected", "enclosed", "diverted", "reprinted", "held")}
        self.query_one("#audit-note", Static).update(
            f"{len(rows)} batch(es): {totals['expected']} expected, {totals['enclosed']} enclosed, "
            f"{totals['diverted']} diverted, {totals['reprinted']} reprinted, {totals['held']} held"
            "   CSV: appliance audit --csv FILE" if rows else "no inserter batches recorded yet")
