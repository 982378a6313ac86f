"""FastTable: Textual's DataTable made cheap for tables replaced every round. The one
module that touches DataTable's private members.

Every private member relied on is listed in PRIVATE_MEMBERS, and
tests/test_table_private.py checks each one (it exists, with the signature and
behaviour used here) so a Textual upgrade that changes one fails there, loudly,
instead of slowing or breaking the console. Textual is pinned to its minor
version in pyproject.toml for the same reason.

What is done here, and why:
- render caches sized for a screenful (DataTable's defaults hold tens of MB across
  six tables once warm);
- a rendered cell reused while the cell object is the very same one (DataTable keys
  every render cache on a counter bumped by any change, so one changed cell
  re-rendered every visible cell through Rich: most of a round's CPU);
- no measuring of new rows (fixed column widths, one-line rows);
- rows appended, cells changed and rows reordered in bulk, with one refresh for the
  table instead of one per row or cell;
- a fixed layout: the vertical scrollbar is always there, so rows coming and going
  repaint the table instead of laying out the screen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import zip_longest
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual._two_way_dict import TwoWayDict
from textual.cache import LRUCache
from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import DataTable
from textual.widgets.data_table import DuplicateKey, Row, RowKey

# Every private member of textual (DataTable, Widget, modules) used in this module.
PRIVATE_MEMBERS: tuple[str, ...] = (
    "textual._two_way_dict.TwoWayDict",  # DataTable's row order: key <-> index
    "DataTable._data",  # row key -> column key -> cell
    "DataTable._row_locations",  # TwoWayDict row key <-> row index
    "DataTable._column_locations",  # TwoWayDict column key <-> column index
    "DataTable._new_rows",  # rows not yet measured
    "DataTable._require_update_dimensions",  # measure on idle
    "DataTable._update_count",  # in DataTable's render cache keys
    "DataTable._cell_render_cache",  # the four render caches, resized
    "DataTable._row_render_cache",
    "DataTable._row_renderable_cache",
    "DataTable._line_cache",
    "DataTable._show_hover_cursor",  # in our cell cache keys
    "DataTable._pseudo_class_state",  # in our cell cache keys
    "DataTable._row_label_column_width",  # part of the scrollable width
    "DataTable._clear_caches",  # overridden: also clears ours
    "DataTable._render_cell",  # overridden: cached by cell identity
    "DataTable._update_dimensions",  # overridden: no measuring
    "DataTable._highlight_cursor",  # called as add_row does
    "DataTable._on_click",  # overridden: a click on a row is a choice (row_clicked)
    "Widget._scroll_update",  # the scrollbar follows virtual_size
)

_BLANK = Style()
_CACHE = 1200  # rendered cells kept per table (ours and DataTable's), at most
_CACHE_MIN = 64  # ... and at least; in between, a few times the cells the table holds
_ROWS, _LINES = 150, 300  # rendered rows and lines kept per table, at most


class FastTable(DataTable[Any]):
    """A DataTable for one-line rows in fixed-width columns, changed in bulk by
    `append_rows`, `set_cells` + `cells_changed`, `reorder` and `settle`; cells are
    never mutated once given (a changed cell is a new object)."""

    # A fixed layout: the vertical scrollbar is always there, and a change in the
    # number of rows repaints the table instead of laying out the screen.
    DEFAULT_CSS = "FastTable { height: 1fr; overflow-y: scroll; }"
    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)

    _own_cells: LRUCache[tuple[Any, ...], tuple[Any, list[list[Segment]]]] | None = None
    _by_value: LRUCache[tuple[Any, ...], tuple[Any, list[list[Segment]]]] | None = None

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        # DataTable's render caches default to 10,000 cells and 1,000 rows/lines
        # per table: tens of MB across six tables once warm. A panel shows at most
        # a screenful, so a few hundred entries keep the hit rate and bound memory.
        self._cell_render_cache = LRUCache(_CACHE)
        self._row_render_cache = LRUCache(_ROWS)
        self._row_renderable_cache = LRUCache(_ROWS)
        self._line_cache = LRUCache(_LINES)

    def watch_virtual_size(self, size: Size) -> None:
        self._scroll_update(size)  # keep the scrollbar's thumb in step

    def refresh(self, *regions: Any, repaint: bool = True, layout: bool = False, **kw: Any) -> Any:
        # DataTable asks for a layout when rows come and go; its size is fixed here.
        return super().refresh(*regions, repaint=repaint, layout=False, **kw)

    # ------------------------------------------------------------ render costs

    def _clear_caches(self) -> None:
        super()._clear_caches()
        if self._own_cells is not None:
            self._own_cells.clear()
        if self._by_value is not None:
            self._by_value.clear()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        for cache in (self._own_cells, self._by_value):
            if cache is not None:
                cache.clear()  # colours may have changed (theme)

    def clear(self, columns: bool = False) -> Any:
        # Rows going away do not change how a given cell object renders at a given
        # place: keep those renderings (the lock table is cleared when most rows
        # change, and many of its new cells are ones already drawn there).
        kept = (None, None) if columns else (self._own_cells, self._by_value)
        # or _clear_caches (called by clear) would empty them
        self._own_cells = self._by_value = None
        result = super().clear(columns)
        self._own_cells, self._by_value = kept
        return result

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> list[list[Segment]]:
        if row_index < 0 or column_index < 0:  # header and labels: rare, not cached here
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        data: dict[Any, dict[Any, Any]] = self._data
        row_key = self._row_locations.get_key(row_index)
        try:
            row = data[row_key]
            value = row[self._column_locations.get_key(column_index)]
            height = self.rows[row_key].height  # type: ignore[index]  # found in _data
        except KeyError:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        if self._own_cells is None:
            self._own_cells = LRUCache(_CACHE)
        key = (
            column_index,
            row_index,  # baked into the cell's style meta (clicks find their row by it)
            height,  # a wrapped cell's lines
            base_style,
            width,
            cursor,
            hover,
            self.show_cursor,
            self._show_hover_cursor,
            self._pseudo_class_state,
        )
        hit = self._own_cells.get(key)
        if hit is not None and hit[0] is value:
            return hit[1]
        lines = self._render_like(value, key, row_index, column_index, cursor, hover)
        self._own_cells[key] = (value, lines)
        return lines

    def _render_like(
        self,
        value: Any,
        key: tuple[Any, ...],
        row_index: int,
        column_index: int,
        cursor: bool,
        hover: bool,
    ) -> list[list[Segment]]:
        """The same cell object drawn in this column on another row (cells are
        shared: owners, TTLs, ages, statuses repeat): its segments with this row's
        click meta, instead of Rich rendering it again."""
        like = (id(value), *key[:1], *key[2:])
        if self._by_value is None:
            self._by_value = LRUCache(max(_CACHE_MIN, self._cell_render_cache.maxsize))
        found = self._by_value.get(like)
        if found is not None and found[0] is value:
            meta = Style.from_meta({"row": row_index, "column": column_index})
            return [
                [Segment(s.text, (s.style or _BLANK) + meta, s.control) for s in line]
                for line in found[1]
            ]
        base_style, width = key[3], key[4]
        lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        self._by_value[like] = (value, lines)
        return lines

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        # Columns have fixed widths and rows one line, so measuring every new row's
        # cells (DataTable's way, tens of ms for a few hundred rows) changes nothing:
        # only the scrollable size is needed.
        width = sum(c.get_render_width(self) for c in self.columns.values())
        header = self.header_height if self.show_header else 0
        height = sum(row.height for row in self.rows.values())  # wrapped rows: several lines
        self.virtual_size = Size(width + self._row_label_column_width, height + header)

    # ------------------------------------------------------------ bulk changes

    def append_rows(self, rows: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """DataTable.add_row for many rows at once: its per-row cursor re-validation,
        watchers and idle checks (most of a round's cost when the lock table's rows
        are replaced) done once."""
        columns = [c.key for c in self.ordered_columns]
        index = self.row_count
        for key, cells in rows:
            row_key = RowKey(key)
            if row_key in self._row_locations:
                raise DuplicateKey(f"The row key {row_key!r} already exists.")
            self._row_locations[row_key] = index
            self._data[row_key] = dict(zip_longest(columns, cells))  # as add_row
            self.rows[row_key] = Row(row_key, 1, None, False)
            self._new_rows.add(row_key)
            index += 1
        self._require_update_dimensions = True
        self.cursor_coordinate = self.cursor_coordinate
        if self.row_count == len(rows) and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()  # as add_row: the first row gives the cursor a cell
        self._update_count += 1
        self.check_idle()
        self.refresh()  # the new rows are painted in this frame, not by a side effect

    def set_cells(
        self, key: str, columns: Sequence[str], old: Sequence[Any] | None, cells: Sequence[Any]
    ) -> bool:
        """What update_cell does for the cells of row `key` that changed (`old`: the
        cells it holds, if known), without a refresh per cell; True if any did.
        Call `cells_changed` once after the last row."""
        if old is None:
            old = self.get_row(key)
        data: dict[Any, dict[Any, Any]] = self._data
        row = data[key]  # row and column keys compare and hash as their strings
        changed = False
        for col, old_v, new_v in zip(columns, old, cells, strict=False):
            # Text equality ignores the style: a cell whose colour alone changed (a
            # judged status moved, the number did not) is new too.
            if old_v is not new_v and (
                old_v != new_v or getattr(old_v, "style", "") != getattr(new_v, "style", "")
            ):
                row[col] = new_v
                changed = True
        return changed

    def cells_changed(self) -> None:
        """Repaint after `set_cells`: one refresh for the whole table."""
        self._update_count += 1
        self.refresh()

    def reorder(self, order: Sequence[str]) -> None:
        """Put the rows in this order (every row's key, once): what DataTable.sort
        does, without building and comparing every row."""
        if [row.key.value for row in self.ordered_rows] == list(order):
            return
        self._row_locations = TwoWayDict({RowKey(k): i for i, k in enumerate(order)})
        self._update_count += 1
        self.refresh()

    def settle(self) -> None:
        """The scrollable size for rows added, now rather than on idle: the
        scrollbar changes in the same frame as the rows (a second frame came
        ~30 ms later). And the cell caches fitted to the rows held."""
        self.fit_caches()
        if self._require_update_dimensions:
            self._require_update_dimensions = False
            self._new_rows.clear()
            self._update_dimensions(())

    def fit_caches(self) -> None:
        """Size the caches keyed by cell object to a few times the cells the table
        holds. Every changed cell (an age, a latency) leaves a dead entry there, so
        a cache of 1,200 for a 4-row table filled for 10-20 minutes, a few KB a
        round (issue 17); at this size it is full, and flat, within a few rounds.
        DataTable's row and line caches likewise (300 lines of a 4-row table, all
        but a few dead). The caches keyed by position (`_own_cells`) stay small."""
        cells = self.row_count * max(1, len(self.columns))
        rows = self.row_count + 1  # and the header
        fits = (
            (self._cell_render_cache, max(_CACHE_MIN, min(_CACHE, 3 * cells))),
            (self._by_value, max(_CACHE_MIN, min(_CACHE, 3 * cells))),
            # Keyed by DataTable's update counter: only this round's rows and lines hit.
            (self._row_render_cache, max(16, min(_ROWS, 2 * rows))),
            (self._row_renderable_cache, max(16, min(_ROWS, 2 * rows))),
            (self._line_cache, max(16, min(_LINES, 2 * rows))),
        )
        for cache, size in fits:
            # Grown at once; shrunk only to half or less (rows come and go each round).
            if cache is not None and (cache.maxsize < size or 2 * size <= cache.maxsize):
                if len(cache) > size:
                    cache.clear()  # LRUCache evicts one entry per insert, never more
                cache.maxsize = size

    # ------------------------------------------------------------ sizes

    def set_sizes(self, widths: dict[str, int], heights: dict[str, int]) -> None:
        """Column widths (by column key) and row heights (by row key; a row over
        one line wraps its cells), with one repaint when any changed."""
        changed = False
        for column_key, col in self.columns.items():
            width = widths.get(column_key.value or "")
            if width is not None and width != col.width:
                col.width, changed = width, True
        for row_key, row in self.rows.items():
            height = heights.get(row_key.value or "", 1)
            if height != row.height:
                row.height, changed = height, True
        if changed:
            self._clear_caches()
            self._update_count += 1  # DataTable's line offsets are cached by this count
            self._update_dimensions(())
            self.refresh()

    # ------------------------------------------------------------ clicks

    def row_clicked(self) -> None:
        """The engineer clicked a row (before DataTable moves the cursor there)."""

    async def _on_click(self, event: events.Click) -> None:
        if event.style.meta.get("row", -1) >= 0:
            self.row_clicked()
        await super()._on_click(event)
