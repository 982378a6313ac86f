"""Redis locks: no-TTL and stale locks first and marked; held, churn, evictions, memory."""

from __future__ import annotations

import heapq
from typing import Any

from textual.app import ComposeResult
from textual.content import Content

from dashboard.tui.viewmodel import DASH, ViewModel, duration, num, size
from dashboard.tui.widgets.base import Line, Panel, SyncTable, cell, down_line

# Lock rows the table holds: the most alarming first (no-TTL, stale, then the
# oldest). Every round replaces most of them (ages change), and 500 rows cost
# ~15 ms of each round while the screen shows ~25; a line says how many are not
# shown, and the filter, the counts and the summary still cover every lock.
LOCK_ROWS = 200


def _rejected(info: dict[str, Any]) -> Content:
    since = info.get("rejected_since_last")
    if since is not None:  # since the last round: a number that moves when it matters
        return Content.styled(f"+{since}", "red" if since else "")
    return Content(f"{num(info.get('rejected_connections'))} since start")


def _holders(lk: dict[str, Any]) -> Any:
    """Redlock: masters holding this value, `2/3`; marked when below quorum or when
    another master holds a different owner."""
    if lk.get("quorum") is None:
        return cell(DASH)
    text = f"{lk.get('holders')}/{lk.get('masters')}"
    if lk.get("quorum") is False:
        return cell(f"{text} !", "bold red")
    if lk.get("conflict"):
        return cell(f"{text} ≠", "yellow")
    return cell(text)


def _haystack(lk: dict[str, Any]) -> str:
    """What the filter searches in a lock (as ViewModel.matches would)."""
    return "\n".join(str(lk[k]).lower() for k in ("key", "owner", "kind") if lk.get(k) is not None)


class RedisPanel(Panel):
    TITLE = "Redis locks"
    COMPONENT = "redis"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._round: object = None  # the reading data the caches below were made from
        self._order: list[tuple[int, float, int, dict[str, Any]]] = []  # sort keys, unsorted
        self._ranked: list[dict[str, Any]] | None = None  # all of them in order, when filtering
        self._top: list[dict[str, Any]] | None = None  # the first LOCK_ROWS of that order
        self._no_ttl: set[str] = set()  # keys the reading names as without a TTL
        self._stale: set[str] = set()  # and as held too long
        self._hays: list[str] | None = None  # what the filter searches, per lock
        self._cells: dict[str, tuple[str, dict[str, Any], list[Any]]] = {}

    def compose(self) -> ComposeResult:
        yield Line(id="redis-summary")
        yield Line(id="redis-info")
        yield Line(id="redis-cap", classes="-cap")
        yield SyncTable(
            [
                ("flag", "", 7),
                ("key", "key", 30),
                ("owner", "owner", 20),
                ("ttl", "TTL", 8),
                ("age", "age", 6),
                ("kind", "kind", 10),
                ("holders", "held on", 8),
            ],
            id_column="key",
            id="redis-locks",
        )

    def show(self, model: ViewModel) -> None:
        self.set_status(model.status_of("redis"))
        readings = model.readings("redis")
        table = self.query_one(SyncTable)
        summary = self.query_one("#redis-summary", Line)
        info_line = self.query_one("#redis-info", Line)
        if not readings:
            summary.set(
                "Redis is not configured" if model.report else "waiting for the first round…"
            )
            info_line.set("")
            table.sync([])
            self._cap_line(None)
            return
        r = readings[0]
        if not r.ok:
            summary.set(down_line(model, r))
            info_line.set("")
            table.sync([])
            self._cap_line(None)
            return
        d = r.data
        if d is not self._round:
            self._prepare(d)
        no_ttl, stale = self._no_ttl, self._stale
        churn = d.get("churn") or {}
        coverage = d.get("coverage")
        summary.set(
            Content.assemble(
                ("held ", "bold"),
                num(d.get("locks_total")),
                ("  no-TTL ", "bold"),
                (str(len(no_ttl)), "bold red" if no_ttl else ""),
                ("  stale ", "bold"),
                (str(len(stale)), "yellow" if stale else ""),
                ("  oldest ", "bold"),
                duration(d.get("oldest_age_s")),
                ("  churn ", "bold"),
                f"+{num(churn.get('acquired_per_s'), '{:.1f}')}/s"
                f" -{num(churn.get('released_per_s'), '{:.1f}')}/s",
                f"  mode {d.get('mode') or DASH}",
                "" if d.get("scan_complete", True) else f" (scan {num((coverage or 0) * 100)}%)",
                *(
                    (("  not locks ", "bold"), (str(d.get("not_locks_total")), "yellow"))
                    if d.get("not_locks_total")
                    else ()
                ),
            )
        )
        info = d.get("info") or {}
        maxmem = info.get("maxmemory")
        info_line.set(
            Content.assemble(
                ("memory ", "bold"),
                size(info.get("used_memory")),
                f" / {size(maxmem) if maxmem else 'no limit'}",
                f" ({info.get('maxmemory_policy') or DASH})",
                ("  evictions ", "bold"),
                (num(info.get("evicted_keys")), "red" if info.get("evicted_keys") else ""),
                f" ({num(info.get('evicted_per_s'), '{:.1f}')}/s)",
                ("  clients ", "bold"),
                num(info.get("connected_clients")),
                (
                    f" ({num(info.get('blocked_clients'))} blocked)",
                    "yellow" if info.get("blocked_clients") else "",
                ),
                ("  rejected ", "bold"),
                _rejected(info),
                ("  our commands ", "bold"),
                num(info.get("own_commands")),
            )
        )
        needle = model.filter.lower()
        if needle:
            if self._ranked is None:  # every lock in order, on the first filtered render
                self._ranked = [t[3] for t in sorted(self._order)]
            if self._hays is None:
                self._hays = [_haystack(lk) for lk in self._ranked]
            ranked = self._ranked
        else:
            if self._top is None:
                self._top = [t[3] for t in heapq.nsmallest(LOCK_ROWS, self._order)]
            ranked = self._top
        rows = []
        matching = 0 if needle else len(self._order)
        for i, lk in enumerate(ranked):
            if needle:
                if needle not in self._hays[i]:  # type: ignore[index]
                    continue
                matching += 1
            if len(rows) >= LOCK_ROWS:  # cells only for the rows the table holds
                if not needle:
                    break
                continue  # still counted: the cap line says how many match
            key = str(lk.get("key"))
            row = self._cells.get(key)
            if row is None:
                row = self._cells[key] = (key, lk, self._row(lk, key, no_ttl, stale))
            rows.append(row)
        table.sync(rows)
        self._cap_line(None if matching <= len(rows) else (len(rows), matching, needle))

    def _prepare(self, d: dict[str, Any]) -> None:
        """Once per round: a filter keystroke only scans the prepared text and reuses
        the cells already built (10,000 locks re-sorted per key made typing slow).

        Each lock as (rank, -age, position, lock): no-TTL first, then stale, then the
        rest, oldest first; tuples compare in C, and without a filter only the first
        LOCK_ROWS are picked out (a full sort of 10,000 locks with a Python key each
        round was a third of the panel's time)."""
        no_ttl = {str(k) for k in d.get("no_ttl") or []}
        stale = {str(k) for k in d.get("stale") or []}
        order: list[tuple[int, float, int, dict[str, Any]]] = []
        for i, lk in enumerate(d.get("locks") or []):
            if isinstance(lk, dict):
                key, age = lk.get("key"), lk.get("age_s")
                rank = 0 if lk.get("ttl_ms") == -1 or key in no_ttl else 1 if key in stale else 2
                order.append((rank, -age if isinstance(age, int | float) else 1.0, i, lk))
        self._round, self._cells, self._hays = d, {}, None
        self._no_ttl, self._stale = no_ttl, stale
        self._order, self._ranked, self._top = order, None, None

    def _cap_line(self, cap: tuple[int, int, str] | None) -> None:
        """Shown only when the table holds fewer locks than there are (or match)."""
        line = self.query_one("#redis-cap", Line)
        if cap is None:
            line.display = False
            return
        shown, total, needle = cap
        line.set(
            Content.assemble(
                (f"showing {shown:,} of {total:,} ", "yellow"),
                ("matching locks" if needle else "locks", "yellow"),
                ("; / filters all of them" if not needle else "; type more to narrow", "dim"),
            )
        )
        line.display = True

    @staticmethod
    def _row(lk: dict[str, Any], key: str, no_ttl: set[str], stale: set[str]) -> list[Any]:
        ttl = lk.get("ttl_ms")
        is_no_ttl = ttl == -1 or key in no_ttl
        is_stale = key in stale
        flag = (
            ("NO TTL", "bold red") if is_no_ttl else ("STALE", "yellow") if is_stale else ("", "")
        )
        ttl_text = (
            "none" if is_no_ttl else duration(ttl / 1000) if isinstance(ttl, int | float) else None
        )
        return [
            cell(flag[0] or " ", flag[1]),
            cell(key),
            cell(lk.get("owner") if lk.get("owner_read", True) else "not read"),
            cell(ttl_text, "red" if is_no_ttl else ""),
            cell(duration(lk.get("age_s")), "yellow" if is_stale else ""),
            cell(lk.get("kind")),
            _holders(lk),
        ]

    def selected(self) -> dict[str, Any] | None:
        return self.query_one(SyncTable).selected()
