"""MI screen: the day's management information lines and what has been sent to Notify.

``[`` / ``]`` step a day back / forward, ``r`` refreshes, ``s`` submits the day (after a
confirmation).  The numbers come from the daemon's journal of real device events.
"""

from __future__ import annotations

from datetime import date as Date
from datetime import timedelta

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Header, Static

from tui.screens.confirm import ConfirmScreen
from tui.screens.kept import KeptScreen
from tui.widgets.fit_table import FitTable, clip
from tui.widgets.footer import ConsoleFooter

#: at 80 columns: line item, specification, qty, sent, state (no scrolling right to see them)
COLUMNS = [("line item", 28, 0), ("specification", 14, 1), ("group", 10, 2), ("qty", 6, 0), ("stock", 6, 2),
           ("sent", 6, 0), ("state", 14, 0)]


def line_state(row: dict) -> str:
    states = [e["state"] for e in row.get("entries", [])]
    if not states:
        return "not sent" if row.get("named") else "✖ unnamed"
    if "uncertain" in states or "mismatch" in states:
        return "⚠ " + ",".join(states)
    if row.get("to_submit"):
        return f"+{row['to_submit']} to send"
    return "✔ " + ",".join(states)


class MiScreen(KeptScreen):
    BINDINGS = [Binding("r", "refresh", "Refresh"), Binding("left_square_bracket", "day(-1)", "Prev day", key_display="["),
                Binding("right_square_bracket", "day(1)", "Next day", key_display="]"),
                Binding("s", "submit", "Submit")]

    def __init__(self):
        super().__init__()
        self.day: str | None = None  # None: yesterday as the daemon sees it
        self.report: dict | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="mi-title", classes="section-title")
        yield FitTable(COLUMNS, grow="line item", id="mi-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="mi-note")
        yield ConsoleFooter()

    async def on_screen_resume(self) -> None:
        await self.action_refresh()

    async def action_refresh(self) -> None:
        rep = await self.app.call("mi_report", date=self.day or "yesterday")
        if rep is None:
            self.query_one("#mi-title", Static).update("MI not available from this daemon")
            self.query_one("#mi-table", FitTable).set_rows([])
            return
        self.report = rep
        self.day = rep["day"]
        self.show(rep)

    def show(self, rep: dict, result: str = "") -> None:
        self.query_one("#mi-title", Static).update(Text(
            f"MI {rep['day']} ({rep['timezone']})  {rep['events']} device events  "
            f"{len(rep['lines'])} lines  [ ] day  s submit"))
        self.query_one("#mi-table", FitTable).set_rows([
            (None, {"line item": Text(r["line_item"] + ("" if r["named"] else " *")),
                    "specification": Text(clip(r["specification_id"] or "-", 14)),
                    "group": Text(clip(r["group_id"] or "-", 10)), "qty": str(r["quantity"]),
                    "stock": "" if r["stock_remaining"] is None else str(r["stock_remaining"]),
                    "sent": str(r["submitted"]), "state": line_state(r)})
            for r in rep["lines"]])
        notes = [result] if result else []
        if rep.get("unnamed"):
            held = "" if rep.get("allow_default_names") else ", not submitted"
            notes.append(f"* default name{held}: {', '.join(rep['unnamed'])}")
        if rep.get("uncertain"):
            notes.append(f"⚠ {rep['uncertain']} uncertain line(s): check with Notify, then 'appliance mi resolve'")
        if not rep["lines"]:
            notes.append("no material used that day")
        self.query_one("#mi-note", Static).update(Text("\n".join(notes)))

    async def action_day(self, step: int) -> None:
        base = Date.fromisoformat(self.day) if self.day else Date.today() - timedelta(days=1)
        self.day = (base + timedelta(days=step)).isoformat()
        await self.action_refresh()

    def action_submit(self) -> None:
        if not self.report:
            return
        day = self.report["day"]
        partial = day == self.report.get("today")

        async def done(yes: bool | None) -> None:
            note = self.query_one("#mi-note", Static)
            if not yes:
                note.update(Text(f"MI {day}: nothing sent"))
                return
            res = await self.app.call("mi_submit", date=day, partial=partial)
            if res is not None:
                result = (f"MI {day}: {len(res['sent'])} sent, {len(res['verified'])} verified, "
                          f"{len(res['skipped'])} not sent, {len(res['problems'])} problem(s)"
                          + "".join(f"\n{p}" for p in (res["problems"] + res["skipped"])[:5]))
                note.update(Text(result))
                rep = await self.app.call("mi_report", date=day)
                if rep is not None:
                    self.report = rep
                    self.show(rep, result)

        what = " so far (today is not over)" if partial else ""
        self.app.push_screen(ConfirmScreen(f"Send MI for {day}{what} to Notify?"), done)
