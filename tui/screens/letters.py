"""Letters: search by id, filter by status/group/specification/device/stage/age/refused, page."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from tui.screens.detail import LetterDetailScreen
from tui.widgets.labels import letter_status

FILTER_KEYS = {"status": "status", "group": "group", "spec": "specification",
               "specification": "specification", "device": "device", "stage": "stage",
               "age": "min_age", "refused": "refused"}
PAGE = 100  # rows per page: enough for any screen, cheap to lay out (tui_bench)


def parse_filters(text: str) -> dict:
    """``status=accepted device=mono age=600`` -> control-socket arguments."""
    out: dict = {}
    for part in text.split():
        key, _, value = part.partition("=")
        name = FILTER_KEYS.get(key.lower())
        if not name or not value:
            continue
        if name == "status":
            value = value.upper()
        elif name == "refused":
            value = value.lower() in ("1", "yes", "y", "true")
        elif name == "min_age":
            try:
                value = float(value)
            except ValueError:
                continue
        out[name] = value
    return out


class LettersScreen(Screen):
    BINDINGS = [
        Binding("slash", "focus_search", "Search", key_display="/"),
        Binding("f", "focus_filter", "Filter"),
        Binding("n", "page(1)", "Next page"),
        Binding("b", "page(-1)", "Prev page"),
        Binding("escape", "focus_table", "Table", show=False),
    ]

    def __init__(self):
        super().__init__()
        self.page_start = 0
        self.shown_rows: list[tuple] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="letters-filters"):
            yield Input(placeholder="/ id contains…", id="search")
            yield Input(placeholder="f status=… group=… spec=… device=… age=s refused=yes", id="filter")
        table = DataTable(id="letters-table", cursor_type="row", zebra_stripes=True)
        for label, width in (("id", 32), ("status", 12), ("stage", 13), ("device", 16),
                             ("specification", 22)):
            table.add_column(label, width=width)  # fixed: no jumping columns, stable snapshots
        yield table
        yield Static("", id="letters-count")
        yield Footer(compact=True)

    async def on_screen_resume(self) -> None:
        await self.reload()
        self.query_one("#letters-table", DataTable).focus()

    async def reload(self) -> None:
        args = parse_filters(self.query_one("#filter", Input).value)
        res = await self.app.call("letters", q=self.query_one("#search", Input).value.strip(),
                                  limit=PAGE, offset=self.page_start, **args)
        if res is None:
            return
        # a letter refused by Notify says so where its stage would be: it needs a person
        rows = [(r["id"], r.get("status"), "REFUSED" if r.get("refused") else r.get("stage") or "",
                 r.get("device") or "",
                 r.get("specification_id") or "") for r in res["letters"]]
        if rows != self.shown_rows:  # unchanged: keep the table (rebuilding 200 rows costs ~30 ms)
            self.shown_rows = rows
            table = self.query_one("#letters-table", DataTable)
            cursor = table.cursor_row
            table.clear()
            for lid, status, *rest in rows:
                table.add_row(lid, letter_status(status), *rest, key=lid)
            if rows:
                table.move_cursor(row=min(cursor, len(rows) - 1))
        shown = len(res["letters"])
        first = self.page_start + 1 if shown else 0
        self.query_one("#letters-count", Static).update(
            f"{first}-{self.page_start + shown} of {res['total']} letters   (n/b page, Enter detail)")

    async def on_input_changed(self, event: Input.Changed) -> None:
        self.page_start = 0
        self.run_worker(self.reload, group="reload", exclusive=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#letters-table", DataTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.app.push_screen(LetterDetailScreen(event.row_key.value))

    def action_focus_table(self) -> None:
        self.query_one("#letters-table", DataTable).focus()

    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    async def action_page(self, step: int) -> None:
        self.page_start = max(0, self.page_start + step * PAGE)
        self.query_one("#letters-table", DataTable).move_cursor(row=0)  # a new page starts at its top
        await self.reload()
