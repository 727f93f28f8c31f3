"""A table that picks its columns for the width it has, so every screen works at 80x24.

Each column has a fixed width (columns do not jump about on refresh, snapshots stay stable)
and a rank: 0 always stays, higher ranks leave first when the table is narrower than the
columns.  At 80 columns an operator sees the columns that matter without scrolling right.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.cache import LRUCache
from textual.widgets import DataTable

Column = tuple[str, int, int]  # label, width, rank (0: always shown; higher leaves first)
CELL_PAD = 2  # DataTable's cell padding, one each side
SCROLLBAR = 2
#: DataTable keeps 10 000 rendered cells and 1 000 rendered rows and lines: hundreds of
#: thousands of small objects for the collector to walk on every full pass.  A screen shows
#: at most ~60 rows, so a few pages' worth is plenty.
CACHED_ROWS = 200


def fit(columns: list[Column], width: int, grow: str | None = None, grow_max: int = 60) -> list[Column]:
    """The columns that fit ``width``, dropping the highest ranks first (the last of equals);
    room left over widens the ``grow`` column (up to ``grow_max``)."""
    chosen = list(columns)

    def used() -> int:
        return sum(w + CELL_PAD for _, w, _ in chosen) + SCROLLBAR

    while used() > width and any(r for *_, r in chosen):
        top = max(r for *_, r in chosen)
        chosen.remove([c for c in chosen if c[2] == top][-1])
    spare = width - used()
    for i, (label, w, rank) in enumerate(chosen):
        if label == grow and spare > 0:
            chosen[i] = (label, min(grow_max, w + spare), rank)
    return chosen


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` with an ellipsis, so a cut is visible."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def plain(cell: Any) -> Any:
    """A str cell as plain text: DataTable reads str cells as markup, and these come from the
    daemon (a device called "[x]" or a message with "[jam]" would lose its brackets)."""
    return Text(cell) if isinstance(cell, str) else cell


class FitTable(DataTable):
    """A DataTable whose rows are {label: cell}; columns follow the width (see ``fit``)."""

    def __init__(self, columns: list[Column], grow: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.all_columns = columns
        self.grow = grow
        self.shown: list[Column] = []
        self.rows_data: list[tuple[str | None, dict]] = []
        self._cell_render_cache = LRUCache(CACHED_ROWS * len(columns))
        self._row_render_cache = LRUCache(CACHED_ROWS)
        self._row_renderable_cache = LRUCache(CACHED_ROWS)
        self._line_cache = LRUCache(CACHED_ROWS)

    def on_mount(self) -> None:
        self._lay_out(force=True)

    def on_resize(self) -> None:
        self._lay_out()

    def _width(self) -> int:
        return self.size.width or self.app.size.width

    def _lay_out(self, force: bool = False) -> None:
        shown = fit(self.all_columns, self._width(), self.grow)
        if shown == self.shown and not force:
            return
        self.shown = shown
        cursor = self.cursor_row
        self.clear(columns=True)
        for label, width, _ in shown:
            self.add_column(label, width=width, key=label)
        self._add_rows()
        if self.row_count:
            self.move_cursor(row=min(cursor, self.row_count - 1))

    def _add_rows(self) -> None:
        for key, cells in self.rows_data:
            self.add_row(*[plain(cells.get(label, "")) for label, _, _ in self.shown], key=key)

    def set_rows(self, rows: list[tuple[str | None, dict]]) -> bool:
        """Show ``rows`` [(key, {label: cell})]; unchanged rows keep the table (rebuilding
        200 rows costs ~30 ms); the cursor stays on its row number.  When the rows are the
        same letters/devices in the same order (a status moved on), only the cells that
        changed are updated, in place: the table keeps its rows, cursor and scroll.
        True when redrawn."""
        if rows == self.rows_data and self.row_count == len(rows):
            return False
        old, self.rows_data = self.rows_data, rows
        if self._same_keys(old, rows):
            for (key, cells), (_, before) in zip(rows, old):
                if cells != before:
                    for label, _, _ in self.shown:
                        if cells.get(label, "") != before.get(label, ""):
                            self.update_cell(key, label, plain(cells.get(label, "")))
            return True
        cursor = self.cursor_row
        self.clear()
        if not self.shown:
            self._lay_out(force=True)
        else:
            self._add_rows()
        if self.row_count:
            self.move_cursor(row=min(cursor, self.row_count - 1))
        return True

    def _same_keys(self, old: list[tuple[str | None, dict]], rows: list[tuple[str | None, dict]]) -> bool:
        """The table now holds ``old``'s rows and ``rows`` has the same keys, in order."""
        return (bool(self.shown) and len(old) == len(rows) == self.row_count
                and all(k is not None and k == o for (k, _), (o, _) in zip(rows, old)))
