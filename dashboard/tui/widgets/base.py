"""Shared parts of the panels: a titled container whose title carries its status,
a line for "down / stale" instead of old numbers, and tables updated in place.

Target text never goes through markup: cells are rich `Text` objects and lines
are `Content` built from plain strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import zip_longest
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual._two_way_dict import TwoWayDict
from textual.cache import LRUCache
from textual.containers import Vertical
from textual.content import Content
from textual.geometry import Size
from textual.reactive import Reactive
from textual.widget import Widget
from textual.widgets import DataTable
from textual.widgets.data_table import DuplicateKey, Row, RowKey

from collectors.core.model import Reading, Status
from dashboard.tui.viewmodel import STATUS_ICON, STATUS_STYLE, ViewModel, duration

_BLANK = Style()
MAX_ROWS = 500  # rows a table shows; the rest are counted and reachable with the filter


_CELLS: dict[tuple[str, str], Text] = {}
_CELLS_MAX = 50_000  # distinct cells kept; beyond, the memo starts over (bounded memory)


def cell(value: Any, style: str = "") -> Text:
    """A table cell that shows `value` literally, whatever brackets it holds.

    Equal cells are one shared object (cells are never modified once made): a
    table then sees an unchanged cell as the same object, skips the update and
    reuses its rendering, and a round builds few new Text objects."""
    text = "—" if value is None or value == "" else str(value)
    key = (text, style)
    found = _CELLS.get(key)
    if found is None:
        if len(_CELLS) >= _CELLS_MAX:
            _CELLS.clear()
        found = _CELLS[key] = Text(text, style=style, end="")
    return found


def status_cell(status: Status | str | None) -> Text:
    if status is None:
        return cell(None)
    try:
        st = Status(status)
    except ValueError:
        return cell(status, "magenta")
    return cell(f"{STATUS_ICON[st]} {st.value}", STATUS_STYLE[st])


def status_title(name: str, status: Status | None) -> Content:
    if status is None:
        return Content.assemble((name, "bold"), " · ", ("no data", "dim"))
    return Content.assemble(
        (name, "bold"),
        " · ",
        (f"{STATUS_ICON[status]} {status.value.upper()}", STATUS_STYLE[status]),
    )


def down_line(model: ViewModel, reading: Reading) -> Content:
    """What replaces the numbers of a target that did not answer."""
    stale = model.stale_for(reading)
    kind = reading.error_kind or "error"
    parts: list[str | tuple[str, str]] = [(f"{reading.target} {kind}: ", "bold red")]
    parts.append(reading.error or "")
    if stale is not None:
        parts.append((f"  (stale for {duration(stale)})", "yellow"))
    return Content.assemble(*parts)


class Panel(Vertical):
    """A bordered panel; subclasses implement `show(model)` and `selected()`."""

    DEFAULT_CSS = """
    Panel { border: round $primary-darken-1; height: 1fr; padding: 0 1; }
    Panel > .line { height: auto; }
    Panel > DataTable { height: 1fr; }
    """
    TITLE = "Panel"
    COMPONENT = ""
    _cap_text = ""  # what the bottom border says about rows not shown

    def set_status(self, status: Status | None) -> None:
        self.border_title = status_title(self.TITLE, status)
        self.set_class(status is Status.CRITICAL, "-critical")
        self.set_class(status is Status.WARNING, "-warning")

    def show(self, model: ViewModel) -> None:
        raise NotImplementedError

    def selected(self) -> dict[str, Any] | None:
        return None

    def tables(self) -> list[SyncTable]:
        return list(self.query(SyncTable))

    def note_cap(self) -> None:
        """Say on the bottom border when a table holds fewer rows than it was given
        (MAX_ROWS), so rows are never missing without a word."""
        caps = [t.cap for t in self.tables() if t.cap is not None]
        text = (
            f"showing {caps[0][0]:,} of {caps[0][1]:,} rows; / filters all of them" if caps else ""
        )
        if text != self._cap_text:  # unchanged: no repaint of the border
            self._cap_text = text
            self.border_subtitle = Content.styled(text, "yellow") if text else ""


class Line(Widget):
    """One line of panel text; never markup. Fixed height, so a new text repaints
    only this line instead of relaying out the screen (Static.update would)."""

    DEFAULT_CSS = "Line { height: 1; }"

    def __init__(self, *, id: str | None = None, classes: str = "") -> None:
        super().__init__(id=id, classes=f"line {classes}".strip())
        self._content: Content = Content("")

    def render(self) -> Content:
        return self._content

    def set(self, content: Content | str) -> None:
        if isinstance(content, str):
            content = Content(content)
        if content != self._content:
            self._content = content
            self.refresh()


class SyncTable(DataTable):
    """A DataTable updated by stable row keys: changed cells in place, only the
    difference added or removed, the cursor kept on the row it was on.

    When the row under the cursor goes away, the selection is lost rather than
    passed to the row that moved into its place: the cursor is hidden, `lost`
    names the row that went, and `selected()` is None until the engineer moves
    the cursor (a key or a click) and so chooses a row again."""

    # The vertical scrollbar is always there, so a change in the number of rows
    # never changes the layout: the table repaints itself instead of the whole
    # screen being laid out and repainted (hiding idle sessions was slow).
    DEFAULT_CSS = "SyncTable { height: 1fr; overflow-y: scroll; }"
    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)

    def watch_virtual_size(self, size: Size) -> None:
        self._scroll_update(size)  # keep the scrollbar's thumb in step

    def refresh(self, *regions: Any, repaint: bool = True, layout: bool = False, **kw: Any) -> Any:
        # DataTable asks for a layout when rows come and go; its size is fixed here.
        return super().refresh(*regions, repaint=repaint, layout=False, **kw)

    def __init__(self, columns: Sequence[tuple[str, str, int]], id_column: str, **kw: Any):
        # Fixed column widths: measuring cells on every update is what costs most.
        super().__init__(cursor_type="row", zebra_stripes=False, **kw)
        # DataTable's render caches default to 10,000 cells and 1,000 rows/lines
        # per table: tens of MB across six tables once warm. A panel shows at most
        # a screenful, so a few hundred entries keep the hit rate and bound memory.
        self._cell_render_cache = LRUCache(1200)
        self._row_render_cache = LRUCache(150)
        self._row_renderable_cache = LRUCache(150)
        self._line_cache = LRUCache(300)
        self._spec = list(columns)
        self.id_column = id_column
        self.records: dict[str, dict[str, Any]] = {}  # row key -> what the row shows
        self._order: list[str] = []
        self._cells: dict[str, Sequence[Text]] = {}  # row key -> the cells last synced
        self.lost: str | None = None  # the selected row's key, once that row went away
        self.cap: tuple[int, int] | None = None  # (rows shown, rows given) when capped

    def on_mount(self) -> None:
        for key, label, width in self._spec:
            self.add_column(label, key=key, width=width)

    # ------------------------------------------------------------ render costs
    # DataTable keys every render cache on a counter bumped by any change, so one
    # changed cell re-renders every visible cell through Rich (most of a round's
    # CPU). Here a rendered cell is reused while the cell object is the very same
    # (panels replace a cell with a new object when it changes, never mutate it).

    _own_cells: LRUCache[tuple[Any, ...], tuple[Any, list[list[Segment]]]] | None = None
    _by_value: LRUCache[tuple[Any, ...], tuple[Any, list[list[Segment]]]] | None = None

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
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        try:
            value = self._data[row_key][column_key]
        except KeyError:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        if self._own_cells is None:
            self._own_cells = LRUCache(1200)
        key = (
            column_index,
            row_index,  # baked into the cell's style meta (clicks find their row by it)
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
        # The same cell object drawn in this column on another row (cells are
        # shared: owners, TTLs, ages, statuses repeat): its segments with this
        # row's click meta, instead of Rich rendering it again.
        like = (id(value), *key[:1], *key[2:])
        if self._by_value is None:
            self._by_value = LRUCache(1200)
        found = self._by_value.get(like)
        if found is not None and found[0] is value:
            meta = Style.from_meta({"row": row_index, "column": column_index})
            lines = [
                [Segment(s.text, (s.style or _BLANK) + meta, s.control) for s in line]
                for line in found[1]
            ]
        else:
            lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            self._by_value[like] = (value, lines)
        self._own_cells[key] = (value, lines)
        return lines

    def _update_dimensions(self, new_rows: Any) -> None:
        # Columns have fixed widths and rows one line, so measuring every new row's
        # cells (DataTable's way, tens of ms for a few hundred rows) changes nothing:
        # only the scrollable size is needed.
        width = sum(c.get_render_width(self) for c in self.columns.values())
        header = self.header_height if self.show_header else 0
        self.virtual_size = Size(width + self._row_label_column_width, len(self.rows) + header)

    def _append_rows(self, rows: list[tuple[str, Sequence[Text]]]) -> None:
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

    def cursor_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            row_key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return row_key.value

    def selected(self) -> dict[str, Any] | None:
        if self.lost is not None:
            return None
        key = self.cursor_key()
        return None if key is None else self.records.get(key)

    def _choose(self) -> None:
        """The engineer moved the cursor: a row is selected again."""
        if self.lost is not None:
            self.lost = None
            self.show_cursor = True

    # Every way the engineer moves the cursor ends a lost selection first (with
    # the cursor hidden, DataTable would scroll instead of moving it).
    def action_cursor_up(self) -> None:
        self._choose()
        super().action_cursor_up()

    def action_cursor_down(self) -> None:
        self._choose()
        super().action_cursor_down()

    def action_page_up(self) -> None:
        self._choose()
        super().action_page_up()

    def action_page_down(self) -> None:
        self._choose()
        super().action_page_down()

    def action_scroll_top(self) -> None:
        self._choose()
        super().action_scroll_top()

    def action_scroll_bottom(self) -> None:
        self._choose()
        super().action_scroll_bottom()

    async def _on_click(self, event: events.Click) -> None:
        if self.lost is not None and event.style.meta.get("row", -1) >= 0:
            self._choose()
        await super()._on_click(event)

    def sync(self, rows: Sequence[tuple[str, dict[str, Any], Sequence[Text]]]) -> None:
        """rows: (stable key, record for detail/actions, cells), in display order."""
        unique: dict[str, tuple[str, dict[str, Any], Sequence[Text]]] = {}
        for row in rows:
            unique.setdefault(row[0], row)  # a repeated key would break the table
            if len(unique) >= MAX_ROWS:
                break
        total = len({row[0] for row in rows}) if len(rows) > MAX_ROWS else len(unique)
        self.cap = (len(unique), total) if total > len(unique) else None
        rows = list(unique.values())
        keep = None if self.lost is not None else self.cursor_key()
        cols = [c[0] for c in self._spec]
        wanted = {k for k, _, _ in rows}
        # remove_row is O(rows): when many go, clearing and adding is cheaper.
        if self.row_count and self.row_count - len(wanted & set(self._order)) > 48:
            self.clear()  # most rows go: cheaper than removing one by one
            self._order = []
            self._cells = {}
        for gone in [k for k in self._order if k not in wanted]:
            self.remove_row(gone)
            self.records.pop(gone, None)
            self._cells.pop(gone, None)
        present = set(self._order) & wanted
        changed = False
        new: list[tuple[str, Sequence[Text]]] = []
        for key, record, cells in rows:
            self.records[key] = record
            if key in present:
                old = self._cells.get(key)
                if old is cells:
                    continue  # the same cells as last time (panels cache them per round)
                if old is None:
                    old = self.get_row(key)
                # What update_cell does, with one refresh for the whole table
                # instead of one per cell (thousands per round).
                data = self._data[key]  # keys compare and hash as their strings
                for col, old_v, new_v in zip(cols, old, cells, strict=False):
                    # Text equality ignores the style: a cell whose colour alone
                    # changed (a judged status moved, the number did not) is new too.
                    if old_v is not new_v and (
                        old_v != new_v or getattr(old_v, "style", "") != getattr(new_v, "style", "")
                    ):
                        data[col] = new_v
                        changed = True
            else:
                new.append((key, cells))
            self._cells[key] = cells
        if new:
            self._append_rows(new)
        if changed:
            self._update_count += 1
            self.refresh()
        order = [k for k, _, _ in rows]
        current = [row.key.value for row in self.ordered_rows]
        if current != order:
            # What DataTable.sort does, without building and comparing every row.
            self._row_locations = TwoWayDict({RowKey(k): i for i, k in enumerate(order)})
            self._update_count += 1
            self.refresh()
        self._order = order
        self.records = {k: self.records[k] for k in order}
        if self._require_update_dimensions:
            # Now rather than on idle: the scrollbar changes in the same frame as
            # the rows (a second frame came ~30 ms later).
            self._require_update_dimensions = False
            self._new_rows.clear()
            self._update_dimensions(())
        if keep is not None and keep in self.records:
            idx = order.index(keep)
            if idx != self.cursor_row:
                self.move_cursor(row=idx, animate=False, scroll=False)
        elif keep is not None:
            # The selected row went away: whatever now sits at the cursor's index
            # is not what the engineer chose, so nothing is selected.
            self.lost = keep
            self.show_cursor = False
