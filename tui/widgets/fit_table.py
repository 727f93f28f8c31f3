"""A table that picks its columns for the width it has, so every screen works at 80x24.

Each column has a fixed width (columns do not jump about on refresh, snapshots stay stable)
and a rank: 0 always stays, higher ranks leave first when the table is narrower than the
columns.  At 80 columns an operator sees the columns that matter without scrolling right.
"""

from __future__ import annotations

from typing import Any

from rich.segment import Segment
from rich.style import Style
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


def content_key(cell: Any) -> tuple | None:
    """What a cell shows, hashable (None: a kind of cell not cached by content)."""
    if isinstance(cell, Text):
        return ("t", cell.plain, cell.style, tuple(cell.spans), cell.justify, cell.overflow, cell.no_wrap,
                cell.end)
    if isinstance(cell, str):
        return ("s", cell)
    return None


def one_line(cell: Text, console, width: int, pad: int, pre: Style,
             post: Style) -> list[list[Segment]] | None:
    """The segments DataTable renders for a one-line cell that fits (None for any other):
    DataTable renders each cell through rich's Padding and Styled and the console's line
    splitting, ~1 ms a cell under full ingest (a new page: 170 cells); this is the same
    line built directly (tests/tui/test_tui_latency.py compares the two)."""
    inner = width - 2 * pad
    plain = cell.plain
    if inner < 0 or "\n" in plain or "\t" in plain or cell.justify not in (None, "default", "left") \
            or cell.cell_len > inner:
        return None
    null = Style.null()
    line = [Segment(" " * pad, null)] if pad else []
    if cell.spans:
        line += [seg for seg in cell.render(console, end="") if seg.text]
    elif plain:  # rich gives a text without spans its own style only when it is joined into lines
        line.append(Segment(plain, console.get_style(cell.style, default=null) if cell.style else None))
    room = inner - cell.cell_len
    if room:
        line.append(Segment(" " * room, null))
    if pad:
        line.append(Segment(" " * pad, null))
    return [list(Segment.apply_style(line, pre or None, post or None))]


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
        #: rendered body cells by position and what they show: DataTable's own cache is keyed
        #: by its update count, so one changed cell (or a page shown again) re-rendered every
        #: visible cell, ~25 ms a screenful
        self._shown_cells: LRUCache[tuple, Any] = LRUCache(CACHED_ROWS * len(columns))

    def on_mount(self) -> None:
        self._lay_out(force=True)

    def _update_dimensions(self, new_rows) -> None:
        """DataTable measures every cell of every new row (a new page: 500 cells) to widen
        auto-width columns; these columns have fixed widths and rows one line and no label,
        so only the table's size is worked out."""
        rows = [self.rows.get(k) for k in new_rows]
        if all(not c.auto_width for c in self.columns.values()) and all(
                row is None or (not row.auto_height and row.label is None) for row in rows):
            new_rows = ()
        super()._update_dimensions(new_rows)

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False):
        if min(row_index, column_index) < 0 or row_index < self.fixed_rows \
                or column_index < self.fixed_columns:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        row = self.rows.get(row_key)
        content = content_key(self._data.get(row_key, {}).get(column_key))
        if content is None or row is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        # the cursor and hover styles are in the key (not cleared on every restyle, as DataTable's
        # cache is: a screen coming back is restyled, and its whole table was rendered again)
        styles = self._get_styles_to_render_cell(
            False, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor,
            self.cursor_foreground_priority == "css", self.cursor_background_priority == "css")
        key = (row_index, column_index, content, base_style, width, cursor, hover, styles, row.height,
               row.auto_height, self._pseudo_class_state, self.cell_padding)
        lines = self._shown_cells.get(key)
        if lines is None:
            lines = self._shown_cells[key] = self._fresh_cell(row_index, column_index, base_style, width,
                                                              cursor, hover, row, styles)
        return lines

    def _fresh_cell(self, row_index: int, column_index: int, base_style: Style, width: int, cursor: bool,
                    hover: bool, row, styles: tuple[Style, Style]):
        """A body cell not rendered before: a one-line text directly (``one_line``), else as
        DataTable renders it."""
        cell = self._data[row.key][self._column_locations.get_key(column_index)]
        if row.height == 1 and not row.auto_height and isinstance(cell, Text):
            meta = Style.from_meta({"row": row_index, "column": column_index})
            lines = one_line(cell, self.app.console, width, self.cell_padding, base_style + meta + styles[0],
                             styles[1])
            if lines is not None:
                return lines
        return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)

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
