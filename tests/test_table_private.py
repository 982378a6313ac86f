"""Textual's private members that dashboard/tui/widgets/table.py relies on: one test
each, on Textual's own DataTable, so an upgrade that renames, re-signs or changes
one fails here by name instead of slowing or breaking the console. Plus the
relied-on behaviour of two public overrides elsewhere (KeyFooter, MainScreen)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.cache import LRUCache
from textual.geometry import Size
from textual.widget import Widget
from textual.widgets import DataTable, Footer
from textual.widgets.data_table import ColumnKey, Row, RowKey

from dashboard.tui.widgets.table import PRIVATE_MEMBERS, FastTable


class One(App[None]):
    def compose(self) -> ComposeResult:
        yield DataTable(cursor_type="row")


Check = Callable[[DataTable[Any]], Awaitable[None] | None]


async def _run(check: Check) -> None:
    """`check` on a mounted DataTable with two columns and one row (key "r1")."""
    app = One()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one(DataTable)
        table.add_column("A", key="a", width=5)
        table.add_column("B", key="b", width=5)
        await pilot.pause()
        result = check(table)
        if inspect.isawaitable(result):
            await result


def _params(fn: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(fn).parameters)


# ------------------------------------------------------------ one check each


def two_way_dict(t: DataTable[Any]) -> None:
    from textual._two_way_dict import TwoWayDict

    d = TwoWayDict({RowKey("x"): 0})
    d[RowKey("y")] = 1
    assert d.get_key(1) == RowKey("y") and d.get(RowKey("x")) == 0
    assert RowKey("y") in d and "y" in d  # a key compares and hashes as its string
    assert isinstance(t._row_locations, TwoWayDict)


def data(t: DataTable[Any]) -> None:
    key = t.add_row(Text("1"), Text("2"), key="r1")
    cells = t._data[key]
    assert list(cells) == [ColumnKey("a"), ColumnKey("b")]
    assert cells[ColumnKey("a")].plain == "1"
    assert t._data["r1"]["b"] is cells[ColumnKey("b")]  # str keys find them


def row_locations(t: DataTable[Any]) -> None:
    t.add_row("1", "2", key="r1")
    t.add_row("3", "4", key="r2")
    assert t._row_locations.get_key(1) == RowKey("r2")
    assert [r.key.value for r in t.ordered_rows] == ["r1", "r2"]
    from textual._two_way_dict import TwoWayDict

    t._row_locations = TwoWayDict({RowKey("r2"): 0, RowKey("r1"): 1})
    t._update_count += 1
    assert [r.key.value for r in t.ordered_rows] == ["r2", "r1"]  # order follows it


def column_locations(t: DataTable[Any]) -> None:
    assert t._column_locations.get_key(1) == ColumnKey("b")


def new_rows(t: DataTable[Any]) -> None:
    assert isinstance(t._new_rows, set)
    key = t.add_row("1", "2", key="r1")
    assert key in t._new_rows


def require_update_dimensions(t: DataTable[Any]) -> None:
    t._require_update_dimensions = False
    t.add_row("1", "2", key="r1")
    assert t._require_update_dimensions is True


def update_count(t: DataTable[Any]) -> None:
    before = t._update_count
    t.add_row("1", "2", key="r1")
    assert isinstance(before, int) and t._update_count > before


def _cache(name: str) -> Check:
    def check(t: DataTable[Any]) -> None:
        cache = getattr(t, name)
        assert isinstance(cache, LRUCache)
        setattr(t, name, LRUCache(7))  # replaced by a smaller one, as FastTable does
        t._clear_caches()
        assert len(getattr(t, name)) == 0

    return check


def show_hover_cursor(t: DataTable[Any]) -> None:
    assert isinstance(t._show_hover_cursor, bool)


def pseudo_class_state(t: DataTable[Any]) -> None:
    hash(t._pseudo_class_state)  # part of a cache key


def row_label_column_width(t: DataTable[Any]) -> None:
    assert isinstance(t._row_label_column_width, int)


def clear_caches(t: DataTable[Any]) -> None:
    assert _params(DataTable._clear_caches) == ["self"]
    t.add_row("1", "2", key="r1")
    t._render_cell(0, 0, Style(), 5)
    assert len(t._cell_render_cache)
    t._clear_caches()
    assert len(t._cell_render_cache) == 0


def render_cell(t: DataTable[Any]) -> None:
    assert _params(DataTable._render_cell) == [
        "self",
        "row_index",
        "column_index",
        "base_style",
        "width",
        "cursor",
        "hover",
    ]
    t.add_row(Text("hello"), "2", key="r1")
    lines = t._render_cell(0, 0, Style(), 7, cursor=False, hover=False)
    assert isinstance(lines, list) and all(isinstance(s, Segment) for s in lines[0])
    assert "hello" in "".join(s.text for s in lines[0])
    # a click finds its cell by the meta in the segments' style
    assert any(s.style and s.style.meta.get("row") == 0 for s in lines[0])


def update_dimensions(t: DataTable[Any]) -> None:
    assert _params(DataTable._update_dimensions) == ["self", "new_rows"]
    key = t.add_row("1", "2", key="r1")
    t._update_dimensions([key])
    assert t.virtual_size.height == 2  # header and one row


def highlight_cursor(t: DataTable[Any]) -> None:
    assert _params(DataTable._highlight_cursor) == ["self"]
    t.add_row("1", "2", key="r1")
    t._highlight_cursor()


def on_click(t: DataTable[Any]) -> None:
    assert _params(DataTable._on_click) == ["self", "event"]
    assert inspect.iscoroutinefunction(DataTable._on_click)
    assert "_on_click" in DataTable.__dict__  # DataTable's handler of events.Click


def scroll_update(t: DataTable[Any]) -> None:
    assert _params(Widget._scroll_update) == ["self", "virtual_size"]
    t._scroll_update(Size(10, 40))


CHECKS: dict[str, Check] = {
    "textual._two_way_dict.TwoWayDict": two_way_dict,
    "DataTable._data": data,
    "DataTable._row_locations": row_locations,
    "DataTable._column_locations": column_locations,
    "DataTable._new_rows": new_rows,
    "DataTable._require_update_dimensions": require_update_dimensions,
    "DataTable._update_count": update_count,
    "DataTable._cell_render_cache": _cache("_cell_render_cache"),
    "DataTable._row_render_cache": _cache("_row_render_cache"),
    "DataTable._row_renderable_cache": _cache("_row_renderable_cache"),
    "DataTable._line_cache": _cache("_line_cache"),
    "DataTable._show_hover_cursor": show_hover_cursor,
    "DataTable._pseudo_class_state": pseudo_class_state,
    "DataTable._row_label_column_width": row_label_column_width,
    "DataTable._clear_caches": clear_caches,
    "DataTable._render_cell": render_cell,
    "DataTable._update_dimensions": update_dimensions,
    "DataTable._highlight_cursor": highlight_cursor,
    "DataTable._on_click": on_click,
    "Widget._scroll_update": scroll_update,
}


def test_every_private_member_used_is_listed_and_checked() -> None:
    assert set(CHECKS) == set(PRIVATE_MEMBERS)
    # and nothing private is used in table.py that is not listed
    import re
    from pathlib import Path

    import dashboard.tui.widgets.table as table

    source = Path(table.__file__).read_text()
    used = set(re.findall(r"(?:self|super\(\))\.(_[a-z][a-z_]*)", source))
    own = {"_own_cells", "_by_value", "_render_like"}
    listed = {m.rsplit(".", 1)[1] for m in PRIVATE_MEMBERS}
    assert used - own <= listed, sorted(used - own - listed)


@pytest.mark.parametrize("member", list(CHECKS))
async def test_private_member_is_there_and_behaves(member: str) -> None:
    await _run(CHECKS[member])


def test_row_is_built_positionally_as_add_row_does() -> None:
    assert _params(Row) == ["key", "height", "label", "auto_height"]
    row = Row(RowKey("k"), 1, None, False)
    assert (row.height, row.label, row.auto_height) == (1, None, False)


async def test_fast_table_renders_a_changed_cell_and_reuses_an_unchanged_one() -> None:
    class Fast(App[None]):
        def compose(self) -> ComposeResult:
            yield FastTable()

    async def go() -> None:
        app = Fast()
        async with app.run_test(size=(60, 10)) as pilot:
            t = app.query_one(FastTable)
            t.add_column("A", key="a", width=5)
            t.append_rows([("r1", [Text("one")]), ("r2", [Text("two")])])
            t.settle()
            await pilot.pause()
            first = t._render_cell(0, 0, Style(), 5)
            assert t._render_cell(0, 0, Style(), 5) is first  # the same cell object
            assert t.set_cells("r1", ["a"], None, [Text("uno")])
            t.cells_changed()
            assert "uno" in "".join(s.text for s in t._render_cell(0, 0, Style(), 5)[0])
            t.reorder(["r2", "r1"])
            assert [r.key.value for r in t.ordered_rows] == ["r2", "r1"]
            assert t.virtual_size.height == 3

    (await go())


# ------------------------------------- public overrides that rely on internals


def test_footer_recomposes_through_bindings_changed() -> None:
    # KeyFooter skips Footer.bindings_changed when nothing it shows changed.
    assert _params(Footer.bindings_changed) == ["self", "screen"]
    assert "bindings_changed" in Footer.__dict__


def test_screen_focused_is_a_reactive_that_main_screen_can_quieten() -> None:
    from textual.reactive import Reactive
    from textual.screen import Screen

    from dashboard.tui.screens.main import MainScreen

    assert isinstance(Screen.__dict__.get("focused"), Reactive)
    assert MainScreen.__dict__["focused"]._repaint is False
