"""Shared parts of the panels: a titled container whose title carries its status,
a line for "down / stale" instead of old numbers, and tables updated in place
(SyncTable, on FastTable: DataTable's private members are touched only in table.py).

Target text never goes through markup: cells are rich `Text` objects and lines
are `Content` built from plain strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widget import Widget

from collectors.core.model import Reading, Status
from dashboard.tui.viewmodel import STATUS_ICON, STATUS_STYLE, ViewModel, duration
from dashboard.tui.widgets.table import FastTable

_FLOOR = 12  # the explaining text's width at least, when even the last layout is narrow
MAX_ROWS = 500  # rows a table shows; the rest are counted and reachable with the filter


# Cells by (text, style), in two generations: this render's and the one before.
# A full render starts a new generation (`new_cell_generation`), and a cell asked
# for again moves up, so the memo holds what the last two renders showed and no
# more. (One dict capped at 50,000 grew by every new age, latency and RSS shown,
# ~10 Text objects a round, for hours: most of the TUI's growth in issue 17.)
_CELLS: dict[tuple[str, str], Text] = {}
_CELLS_BEFORE: dict[tuple[str, str], Text] = {}
_CELLS_MAX = 50_000  # distinct cells in one render at most (bounded memory)


def new_cell_generation() -> None:
    """Forget the cells no render asked for since the previous call (a full render)."""
    global _CELLS, _CELLS_BEFORE
    _CELLS_BEFORE, _CELLS = _CELLS, {}


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
        found = _CELLS_BEFORE.get(key)
        if found is None:
            found = Text(text, style=style, end="")
        _CELLS[key] = found
    return found


def status_cell(status: Status | str | None) -> Text:
    if status is None:
        return cell(None)
    try:
        st = Status(status)
    except ValueError:
        return cell(status, "magenta")
    return cell(f"{STATUS_ICON[st]} {st.value}", STATUS_STYLE[st])


def status_title(name: str, status: Status | None, notes: Sequence[str] = ()) -> Content:
    """The panel's title: its name, its status, then `notes` (marks, frozen order)."""
    extra: list[Any] = []
    for note in notes:
        extra += [" · ", (note, "bold magenta")]
    if status is None:
        return Content.assemble((name, "bold"), " · ", ("no data", "dim"), *extra)
    return Content.assemble(
        (name, "bold"),
        " · ",
        (f"{STATUS_ICON[status]} {status.value.upper()}", STATUS_STYLE[status]),
        *extra,
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
    # Its tab's label at 80 columns, where every tab must fit beside the others.
    TAB_TITLE = ""
    COMPONENT = ""
    _cap_text = ""  # what the bottom border says about rows not shown
    _status: Status | None = None

    def set_status(self, status: Status | None) -> None:
        self._status = status
        self.border_title = status_title(self.TITLE, status, self._notes())
        self.set_class(status is Status.CRITICAL, "-critical")
        self.set_class(status is Status.WARNING, "-warning")

    def _notes(self) -> list[str]:
        """What the title says of the tables: rows marked, order frozen."""
        notes = []
        for t in self.tables():
            if t.marks:
                notes.append(f"{len(t.marks)} marked")
            if t.frozen:
                notes.append("❄ frozen (esc)")
        return notes

    def on_table_state_changed(self, message: TableStateChanged) -> None:
        self.border_title = status_title(self.TITLE, self._status, self._notes())

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
            # A line that wraps (height auto: the alerts' remedy, the forged-token
            # verdict) relayouts when it needs more or fewer lines than it has;
            # otherwise only this line repaints.
            width, height = self.size
            grows = (
                width > 0
                and self.styles.height is not None
                and self.styles.height.is_auto
                and max(1, len(content.wrap(width))) != height
            )
            self.refresh(layout=grows)


_MARK = Text("●", style="bold magenta", end="")
_NO_MARK = Text(" ", end="")


class TableStateChanged(Message):
    """A table's marks or freezing changed (its panel's title says them)."""

    def __init__(self, table: SyncTable) -> None:
        super().__init__()
        self.table = table


class SyncTable(FastTable):
    """A table updated by stable row keys: changed cells in place, only the
    difference added or removed, the cursor kept on the row it was on.

    When the row under the cursor goes away, the selection is lost rather than
    passed to the row that moved into its place: the cursor is hidden, `lost`
    names the row that went, and `selected()` is None until the engineer moves
    the cursor (a key or a click) and so chooses a row again; `down` then takes
    the row after the one that went (it sits where the cursor is).

    Once the engineer moves the cursor in the table, its order is frozen: rounds
    change cells and remove rows that went away, but never move a row (new rows
    come last), until the table loses focus or `thaw` (escape). A `markable`
    table (with actions enabled) has a first column of marks (space): actions
    apply to the marked rows; marks follow their row key through re-sorting and
    go with their row."""

    DEFAULT_CSS = "SyncTable { height: 1fr; overflow-y: scroll; }"

    def __init__(
        self,
        columns: Sequence[tuple[str, str, int]],
        id_column: str,
        *,
        fit: Fit | None = None,
        markable: bool = False,
        **kw: Any,
    ):
        # Column widths are set by `fit` after a sync, not measured by DataTable on
        # every update (what costs most).
        super().__init__(cursor_type="row", zebra_stripes=False, **kw)
        self._spec = list(columns)
        self._all_spec = self._spec  # `_spec` is what is shown: folded, fewer columns
        self.fitting = fit
        self._fit_widths: dict[str, int] = {}
        self._folded = 0  # the layout: 0 all columns, 1 folded, 2 folded and fewer (Fit)
        self.id_column = id_column
        self.records: dict[str, dict[str, Any]] = {}  # row key -> what the row shows
        self._order: list[str] = []
        self._cells: dict[str, Sequence[Text]] = {}  # row key -> the cells last synced
        self.lost: str | None = None  # the selected row's key, once that row went away
        self.cap: tuple[int, int] | None = None  # (rows shown, rows given) when capped
        self.markable = markable
        self.marks: set[str] = set()  # row keys marked (space)
        self.frozen = False  # the order is kept while the engineer works in the table
        # row key -> (the panel's cells, marked?, the cells with the mark column)
        self._with_marks: dict[str, tuple[Sequence[Text], bool, tuple[Text, ...]]] = {}

    def on_mount(self) -> None:
        if self.markable and getattr(self.app, "actions_enabled", False):
            self._spec.insert(0, ("mark", "", 1))
        else:
            self.markable = False  # read-only, replay: no marking
        for key, label, width in self._spec:
            self.add_column(label, key=key, width=width)

    # ---------------------------------------------------- marks and freezing

    def _changed(self) -> None:
        """Marks or freezing changed: the panel's title says so, the footer's keys follow."""
        self.post_message(TableStateChanged(self))

    def engage(self) -> None:
        """The engineer works in this table: freeze its order."""
        if not self.frozen:
            self.frozen = True
            self._changed()

    def thaw(self) -> None:
        if self.frozen:
            self.frozen = False
            self._changed()

    def on_blur(self) -> None:
        # Focus went to another widget of this screen (a modal on top keeps it here).
        if self.screen.focused is not self:
            self.thaw()

    def toggle_mark(self) -> bool:
        """Mark or unmark the row under the cursor, then go to the next row (as htop
        does); False when there is no row to mark."""
        key = None if self.lost is not None else self.cursor_key()
        if not self.markable or key is None:
            return False
        self.engage()
        self.marks ^= {key}
        self._repaint_mark(key)
        self._changed()
        super().action_cursor_down()
        return True

    def clear_marks(self) -> None:
        if self.marks:
            marked, self.marks = self.marks, set()
            for key in marked:
                self._repaint_mark(key)
            self._changed()

    def marked(self) -> list[dict[str, Any]]:
        """The records of the marked rows, in the order shown."""
        return [self.records[k] for k in self._order if k in self.marks and k in self.records]

    def _repaint_mark(self, key: str) -> None:
        cells = self._cells.get(key)
        if cells is None or not self.markable:
            return
        given = self._with_marks[key][0] if key in self._with_marks else cells[1:]
        full = self._marked_cells(key, given)
        old = None if self._folded else cells  # folded rows are shaped anew by _shown
        if self.set_cells(key, [c[0] for c in self._spec], old, self._shown(full)):
            self.cells_changed()
        self._cells[key] = full

    def _marked_cells(self, key: str, cells: Sequence[Text]) -> Sequence[Text]:
        """The row's cells behind its mark (the same tuple while nothing changed)."""
        if not self.markable:
            return cells
        mark = key in self.marks
        hit = self._with_marks.get(key)
        if hit is not None and hit[0] is cells and hit[1] == mark:
            return hit[2]
        full = (_MARK if mark else _NO_MARK, *cells)
        self._with_marks[key] = (cells, mark, full)
        return full

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

    def _choose(self) -> bool:
        """The engineer moved the cursor: a row is selected again, and the order is
        frozen under it. True when this ended a lost selection."""
        self.engage()
        if self.lost is not None:
            self.lost = None
            self.show_cursor = True
            return True
        return False

    # Every way the engineer moves the cursor ends a lost selection first (with
    # the cursor hidden, DataTable would scroll instead of moving it).
    def action_cursor_up(self) -> None:
        self._choose()
        super().action_cursor_up()

    def action_cursor_down(self) -> None:
        if self._choose():
            return  # the row after the one that went already sits at the cursor
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

    def row_clicked(self) -> None:
        self._choose()

    def sync(self, rows: Sequence[tuple[str, dict[str, Any], Sequence[Text]]]) -> None:
        """rows: (stable key, record for detail/actions, cells), in display order."""
        rows = self._capped(rows)
        keep = None if self.lost is not None else self.cursor_key()
        wanted = {k for k, _, _ in rows}
        if self.frozen:
            rows = self._in_frozen_order(rows)
        if self.marks - wanted:  # a marked row went away: its mark goes with it
            self.marks &= wanted
            self._changed()
        self._drop(wanted)
        self._update(rows, set(self._order) & wanted)
        order = [k for k, _, _ in rows]
        self.reorder(order)
        self._order = order
        self.records = {k: self.records[k] for k in order}
        self.settle()
        self._keep_cursor(keep, order)
        self.fit()

    def _in_frozen_order(
        self, rows: list[tuple[str, dict[str, Any], Sequence[Text]]]
    ) -> list[tuple[str, dict[str, Any], Sequence[Text]]]:
        """The rows in the order shown now; rows new to the table come last."""
        where = {k: i for i, k in enumerate(self._order)}
        last = len(where)
        return [
            row
            for _, row in sorted(enumerate(rows), key=lambda ir: (where.get(ir[1][0], last), ir[0]))
        ]

    def _capped(
        self, rows: Sequence[tuple[str, dict[str, Any], Sequence[Text]]]
    ) -> list[tuple[str, dict[str, Any], Sequence[Text]]]:
        """The rows without repeated keys (they would break the table), at most
        MAX_ROWS of them; `cap` says how many there were when more."""
        unique: dict[str, tuple[str, dict[str, Any], Sequence[Text]]] = {}
        for row in rows:
            unique.setdefault(row[0], row)
            if len(unique) >= MAX_ROWS:
                break
        total = len({row[0] for row in rows}) if len(rows) > MAX_ROWS else len(unique)
        self.cap = (len(unique), total) if total > len(unique) else None
        return list(unique.values())

    def _drop(self, wanted: set[str]) -> None:
        """Remove the rows not wanted any more."""
        # remove_row is O(rows): when many go, clearing and adding is cheaper.
        if self.row_count and self.row_count - len(wanted & set(self._order)) > 48:
            self.clear()
            self._order = []
            self._cells = {}
        for gone in [k for k in self._order if k not in wanted]:
            self.remove_row(gone)
            self.records.pop(gone, None)
            self._cells.pop(gone, None)
        for gone in [k for k in self._with_marks if k not in wanted]:
            del self._with_marks[gone]

    def _update(
        self, rows: list[tuple[str, dict[str, Any], Sequence[Text]]], present: set[str]
    ) -> None:
        """Changed cells of the rows present in place, the others appended."""
        cols = [c[0] for c in self._spec]
        changed = False
        new: list[tuple[str, Sequence[Text]]] = []
        for key, record, given in rows:
            self.records[key] = record
            cells = self._marked_cells(key, given)
            if key not in present:
                new.append((key, self._shown(cells)))
            elif self._cells.get(key) is not cells:  # panels cache a row's cells per round
                old = None if self._folded else self._cells.get(key)
                changed = self.set_cells(key, cols, old, self._shown(cells)) or changed
            self._cells[key] = cells
        if new:
            self.append_rows(new)
        if changed:
            self.cells_changed()

    def _keep_cursor(self, keep: str | None, order: list[str]) -> None:
        if keep is not None and keep in self.records:
            idx = order.index(keep)
            if idx != self.cursor_row:
                self.move_cursor(row=idx, animate=False, scroll=False)
        elif keep is not None:
            # The selected row went away: whatever now sits at the cursor's index
            # is not what the engineer chose, so nothing is selected.
            self.lost = keep
            self.show_cursor = False

    # ------------------------------------------------------------ widths (Fit)

    def _shown(self, cells: Sequence[Text]) -> Sequence[Text]:
        """A row's cells as the table shows them: folded, the flex text goes under
        the fold column's and the dropped columns are left out."""
        f = self.fitting
        if f is None or not self._folded:
            return cells
        by_key = dict(zip((c[0] for c in self._all_spec), cells, strict=False))
        shown = []
        for key, _label, _width in self._spec:
            if key == f.fold:
                head, text = by_key[key], by_key[f.flex]
                shown.append(_folded_cell(head, text))
            else:
                shown.append(by_key[key])
        return shown

    def on_resize(self) -> None:
        self._fit_widths = {}  # a new width: columns may shrink again
        self.fit()

    def fit(self) -> None:
        """Columns as wide as their content, the rest of the width to the flex
        column; rows as tall as their wrapped flex text. Widths only grow between
        resizes, so columns do not jump as ages and counts change."""
        f = self.fitting
        avail = self.scrollable_content_region.width
        if f is None or avail <= 0 or not self.is_mounted:
            return
        pad = 2 * self.cell_padding
        fixed = self._content_widths({c[0] for c in self._all_spec} - {f.flex})
        layout, flex_width = self._layout(f, fixed, avail - pad)
        if layout != self._folded:
            self._set_folded(layout)
            return  # _set_folded puts the rows back, then fits
        widths = dict(fixed)
        flex_key = f.fold if self._folded and f.fold is not None else f.flex
        # `least` chooses the layout; when even the last one leaves less, the text
        # takes what is left (down to a floor), so no column is pushed off the right.
        widths[flex_key] = max(min(f.least, _FLOOR), flex_width)
        heights = self._heights(flex_key, widths[flex_key]) if f.wrap else {}
        self.set_sizes(widths, heights)

    def _layout(self, f: Fit, fixed: dict[str, int], avail: int) -> tuple[int, int]:
        """The first layout whose flex text gets `least` cells or more: 0 all
        columns, 1 folded (flex under the fold column), 2 folded without the
        `drop` columns (else the last); and that flex width."""
        pad = 2 * self.cell_padding
        layouts = [(0, [k for k in fixed])]
        if f.fold is not None:
            layouts.append((1, [k for k in fixed if k != f.fold]))
        if f.drop:
            layouts.append((2, [k for k in fixed if k != f.fold and k not in f.drop]))
        width = 0
        for layout, others in layouts:
            width = avail - sum(fixed[k] + pad for k in others)
            if width >= f.least:
                return layout, width
        return layouts[-1][0], width

    def _content_widths(self, keys: set[str]) -> dict[str, int]:
        """The widest cell (or label) of each of these columns, never less than before."""
        widths: dict[str, int] = {}
        for i, (key, label, _w) in enumerate(self._all_spec):
            if key not in keys:
                continue
            most = max([cell_len(label), *(_text_width(c[i]) for c in self._cells.values())])
            widths[key] = max(most, self._fit_widths.get(key, 0))
        self._fit_widths.update(widths)
        return widths

    def _heights(self, key: str, width: int) -> dict[str, int]:
        """Each row's lines: its cell of column `key` wrapped at `width`."""
        assert self.fitting is not None
        console = self.app.console
        heights = {}
        for row_key in self._order:
            cell = self._data_cell(row_key, key)
            if cell is None:
                continue
            one_line = _text_width(cell) <= width and "\n" not in cell.plain
            lines = 1 if one_line else len(cell.wrap(console, width))
            heights[row_key] = max(1, min(self.fitting.most_lines, lines))
        return heights

    def _data_cell(self, row_key: str, column: str) -> Text | None:
        try:
            cell = self.get_cell(row_key, column)
        except Exception:
            return None
        return cell if isinstance(cell, Text) else None

    def _set_folded(self, layout: int) -> None:
        """Switch between the layouts of `_layout`: the rows are put back shaped
        the new way, the cursor on the same row."""
        f = self.fitting
        assert f is not None
        self._folded = layout
        keep = None if self.lost is not None else self.cursor_key()
        gone = {f.flex} if layout and f.fold is not None else set()
        if layout == 2:
            gone |= set(f.drop)
        self._spec = [c for c in self._all_spec if c[0] not in gone]
        self.clear(columns=True)
        for key, label, width in self._spec:
            self.add_column(label, key=key, width=width)
        order, cells = self._order, self._cells
        self._order, self._cells = [], {}
        self.append_rows([(k, self._shown(cells[k])) for k in order])
        self._order, self._cells = order, cells
        self.settle()
        self._keep_cursor(keep, order)
        self.fit()


@dataclass(frozen=True)
class Fit:
    """How a table shares its width: every column as wide as its content (never
    cut), and the rest to `flex`, the text that explains (summary, query, reason).
    With `wrap`, a flex text longer than its column wraps onto more lines. When
    the flex column would get fewer than `least` cells, the table folds: `flex`
    goes under the `fold` column's text, in one wrapping column; if still too
    narrow (or without `fold`), the `drop` columns are left out (they stay in the
    row's details)."""

    flex: str
    wrap: bool = False
    fold: str | None = None
    drop: tuple[str, ...] = ()
    least: int = 24
    most_lines: int = 6  # a wrapped cell's lines at most (the rest in the details)


def _folded_cell(head: Text, text: Text) -> Text:
    """The fold column's text, then the flex text on the lines below it."""
    key = (id(head), id(text))
    found = _FOLDED.get(key)
    if found is None or found[0] is not head or found[1] is not text:
        if len(_FOLDED) > _CELLS_MAX:
            _FOLDED.clear()
        cell = Text.assemble(head, "\n", text, end="")
        found = _FOLDED[key] = (head, text, cell)
    return found[2]


_FOLDED: dict[tuple[int, int], tuple[Text, Text, Text]] = {}


def _text_width(cell: Any) -> int:
    """The widest line of a cell, in terminal cells."""
    plain = cell.plain if isinstance(cell, Text) else str(cell)
    if "\n" not in plain:
        return cell_len(plain)  # the common case, fast for ASCII
    return max(cell_len(line) for line in plain.split("\n"))
