"""Letters: search by id, filter by status/group/specification/device/stage/age/refused, page."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Header, Input, Static

from tui.screens.confirm import ask_failure
from tui.screens.detail import LetterDetailScreen
from tui.screens.kept import KeptScreen
from tui.widgets.fit_table import FitTable
from tui.widgets.footer import ConsoleFooter
from tui.widgets.labels import letter_status

FILTER_KEYS = {"status": "status", "group": "group", "spec": "specification",
               "specification": "specification", "device": "device", "stage": "stage",
               "age": "min_age", "refused": "refused"}
#: fixed widths (no jumping columns, stable snapshots); at 80 columns the device goes first
COLUMNS = [("id", 32, 0), ("status", 10, 0), ("stage", 13, 0), ("device", 14, 1), ("specification", 15, 0)]
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


class LettersScreen(KeptScreen):
    BINDINGS = [
        Binding("slash", "focus_search", "Search", key_display="/"),
        Binding("f", "focus_filter", "Filter"),
        Binding("n", "page(1)", "Next page"),
        Binding("b", "page(-1)", "Prev page"),
        Binding("space", "mark", "Mark", show=False),
        Binding("x", "fail_marked", "FAILED"),
        Binding("escape", "focus_table", "Table", show=False),
    ]

    def __init__(self):
        super().__init__()
        self.page_start = 0
        self.marked: set[str] = set()  # letters picked with space, for x (FAILED in bulk)
        self.page_ids: list[str] = []
        self.detail: LetterDetailScreen | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="letters-filters"):
            yield Input(placeholder="/ id contains…", id="search")
            yield Input(placeholder="f status=… group=… spec=… device=… age=s refused=yes", id="filter")
        yield FitTable(COLUMNS, grow="specification", id="letters-table", cursor_type="row",
                       zebra_stripes=True)
        yield Static("", id="letters-count")
        yield ConsoleFooter()

    async def on_screen_resume(self) -> None:
        await self.reload()
        self.query_one("#letters-table", DataTable).focus()

    async def reload(self) -> None:
        args = parse_filters(self.query_one("#filter", Input).value)
        res = await self.app.call("letters", q=self.query_one("#search", Input).value.strip(),
                                  limit=PAGE, offset=self.page_start, **args)
        if res is None:
            return
        # a letter refused by Notify says so where its stage would be: it needs a person.  Marked
        # letters (space) show in reverse and are counted below.  Letters archived before
        # the archive index kept their specification show "-".
        self.page_ids = [r["id"] for r in res["letters"]]
        self.query_one("#letters-table", FitTable).set_rows([
            (r["id"], {"id": Text(r["id"], style="reverse bold") if r["id"] in self.marked else r["id"],
                       "status": letter_status(r.get("status")),
                       "stage": "REFUSED" if r.get("refused") else r.get("stage") or "",
                       "device": r.get("device") or "", "specification": r.get("specification_id") or "-"})
            for r in res["letters"]])
        shown = len(res["letters"])
        first = self.page_start + 1 if shown else 0
        self.query_one("#letters-count", Static).update(
            f"{first}-{self.page_start + shown} of {res['total']} letters"
            + (f", {len(self.marked)} marked (x: mark FAILED)" if self.marked else "")
            + "   Enter detail, space marks")

    async def on_input_changed(self, event: Input.Changed) -> None:
        self.page_start = 0
        self.run_worker(self.reload, group="reload", exclusive=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#letters-table", DataTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if not event.row_key.value:
            return
        if self.detail is None:  # one detail screen, kept (installed) and shown again for each letter
            self.detail = LetterDetailScreen(event.row_key.value)
            self.app.install_screen(self.detail, f"letter-detail-{id(self)}")
        else:
            self.detail.show(event.row_key.value)
        self.app.push_screen(self.detail)

    def action_focus_table(self) -> None:
        self.query_one("#letters-table", DataTable).focus()

    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    async def action_page(self, step: int) -> None:
        """A new page starts at its top.  The cursor moves once the rows are in: moved
        before, it repainted the old page while the daemon was asked (a wasted frame)."""
        self.page_start = max(0, self.page_start + step * PAGE)
        await self.reload()
        self.query_one("#letters-table", DataTable).move_cursor(row=0)

    async def action_mark(self) -> None:
        table = self.query_one("#letters-table", DataTable)
        if not table.row_count:
            return
        lid = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        self.marked.symmetric_difference_update({lid})
        await self.reload()
        table.move_cursor(row=min(table.cursor_row + 1, table.row_count - 1))

    def action_fail_marked(self) -> None:
        self.run_worker(self._fail_marked(), group="act", exclusive=True)

    async def _fail_marked(self) -> None:
        """FAILED for every marked letter (or the one under the cursor), one reason for all."""
        table = self.query_one("#letters-table", DataTable)
        ids = sorted(self.marked) or ([table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value]
                                      if table.row_count else [])
        if not ids:
            return
        what = f"Mark letter\n{ids[0]}\nFAILED" if len(ids) == 1 else f"Mark {len(ids)} letters FAILED"
        how = await ask_failure(self.app, what)
        if not how:
            return
        done = 0
        for lid in ids:  # one by one: the daemon checks each (a DISPATCHED one may be refused)
            if await self.app.call("fail", id=lid, **how) is not None:
                done += 1
                self.marked.discard(lid)
        self.notify(f"{done} of {len(ids)} letter(s) marked FAILED")
        await self.reload()
