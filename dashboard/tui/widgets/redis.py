"""Redis locks: no-TTL and stale locks first and marked; held, churn, evictions, memory.

Which locks are stale is the judge's call: the panel marks those older than the
threshold the judged `redis.locks.stale` carries (its `warn`), never one of its own."""

from __future__ import annotations

import heapq
from typing import Any

import msgspec
from textual.app import ComposeResult
from textual.content import Content

from collectors.core.model import CheckResult, Status
from collectors.redis.data import Info, Lock, RedisData
from collectors.redis.rules import is_stale as is_stale_lock
from collectors.redis.rules import stale_count
from dashboard.tui.viewmodel import DASH, ViewModel, duration, num, size
from dashboard.tui.widgets.base import Fit, Line, Panel, SyncTable, cell, down_line

# Lock rows the table holds: the most alarming first (no-TTL, stale, then the
# oldest). Every round replaces most of them (ages change), and 500 rows cost
# ~15 ms of each round while the screen shows ~25; a line says how many are not
# shown, and the filter, the counts and the summary still cover every lock.
LOCK_ROWS = 200


# The colour of a number a judged check is about, by that check's status.
_STATUS_STYLE = {Status.CRITICAL: "red", Status.WARNING: "yellow"}


def _rejected(info: Info) -> Content:
    since = info.rejected_since_last
    if since is not None:  # since the last round: a number that moves when it matters
        return Content.styled(f"+{since}", "red" if since else "")
    return Content(f"{num(info.rejected_connections)} since start")


def _holders(lk: Lock) -> Any:
    """Redlock: masters holding this value, `2/3`; marked when below quorum or when
    another master holds a different owner."""
    if lk.quorum is None:
        return cell(DASH)
    text = f"{lk.holders}/{lk.masters}"
    if lk.quorum is False:
        return cell(f"{text} !", "bold red")
    if lk.conflict:
        return cell(f"{text} ≠", "yellow")
    return cell(text)


def _haystack(lk: Lock) -> str:
    """What the filter searches in a lock (as ViewModel.matches would)."""
    return "\n".join(str(v).lower() for v in (lk.key, lk.owner, lk.kind) if v is not None)


def _judged(model: ViewModel, target: str) -> dict[str, CheckResult]:
    return {c.id: c for c in model.checks("redis", target)}


class RedisPanel(Panel):
    TITLE = "Redis locks"
    TAB_TITLE = "Redis"
    COMPONENT = "redis"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._round: object = None  # the reading data the caches below were made from
        self._stale_after: float | None = None  # ... and the judged stale threshold
        self._order: list[tuple[int, float, int, Lock]] = []  # sort keys, unsorted
        self._ranked: list[Lock] | None = None  # all of them in order, when filtering
        self._top: list[Lock] | None = None  # the first LOCK_ROWS of that order
        self._no_ttl: set[str] = set()  # keys the reading names as without a TTL
        self._stale = (0, True)  # locks held longer than the judged threshold (exact?)
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
            fit=Fit("owner", least=10),
            id="redis-locks",
            markable=True,
        )

    def show(self, model: ViewModel) -> None:
        self.set_status(model.status_of("redis"))
        readings = model.readings("redis")
        table = self.query_one(SyncTable)
        summary = self.query_one("#redis-summary", Line)
        info_line = self.query_one("#redis-info", Line)
        r = readings[0] if readings else None
        if r is None or not r.ok:
            if r is not None:
                summary.set(down_line(model, r))
            else:
                summary.set(
                    "Redis is not configured" if model.report else "waiting for the first round…"
                )
            info_line.set("")
            table.sync([])
            self._cap_line(None)
            return
        d: RedisData = r.data
        judged = _judged(model, r.target)
        stale_check = judged.get("redis.locks.stale")
        stale_after = stale_check.warn if stale_check is not None else None
        if d is not self._round or stale_after != self._stale_after:
            self._prepare(d, stale_after)
        summary.set(self._summary(d))
        evictions = judged.get("redis.evictions")
        info_line.set(_info_line(d.info, evictions.status if evictions else None))
        self._show_rows(table, model.filter.lower())

    def _summary(self, d: RedisData) -> Content:
        no_ttl = self._no_ttl
        stale, exact = self._stale
        churn = d.churn
        return Content.assemble(
            ("held ", "bold"),
            num(d.locks_total),
            ("  no-TTL ", "bold"),
            (str(len(no_ttl)), "bold red" if no_ttl else ""),
            ("  stale ", "bold"),
            (f"{stale}{'' if exact else '+'}", "yellow" if stale else ""),
            ("  oldest ", "bold"),
            duration(d.oldest_age_s),
            ("  churn ", "bold"),
            f"+{num(churn.acquired_per_s, '{:.1f}')}/s -{num(churn.released_per_s, '{:.1f}')}/s",
            f"  mode {d.mode or DASH}",
            "" if d.scan_complete else f" (scan {num(d.coverage * 100)}%)",
            *(
                (("  not locks ", "bold"), (str(d.not_locks_total), "yellow"))
                if d.not_locks_total
                else ()
            ),
        )

    def _show_rows(self, table: SyncTable, needle: str) -> None:
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
        rows: list[tuple[str, dict[str, Any], list[Any]]] = []
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
            key = lk.key
            row = self._cells.get(key)
            if row is None:
                # The record (detail view, release action) is the lock as a mapping.
                record = msgspec.structs.asdict(lk)
                row = self._cells[key] = (key, record, self._row(lk))
            rows.append(row)
        table.sync(rows)
        self._cap_line(None if matching <= len(rows) else (len(rows), matching, needle))

    def _prepare(self, d: RedisData, stale_after: float | None) -> None:
        """Once per round: a filter keystroke only scans the prepared text and reuses
        the cells already built (10,000 locks re-sorted per key made typing slow).

        Each lock as (rank, -age, position, lock): no-TTL first, then stale (older
        than the judged threshold), then the rest, oldest first; tuples compare in C,
        and without a filter only the first LOCK_ROWS are picked out (a full sort of
        10,000 locks with a Python key each round was a third of the panel's time)."""
        no_ttl = set(d.no_ttl)
        limit = float("inf") if stale_after is None else stale_after
        order: list[tuple[int, float, int, Lock]] = []
        for i, lk in enumerate(d.locks):
            age = lk.age_s if lk.age_s is not None else -1.0
            # is_stale (the judge's rule) inlined: 10,000 locks a round.
            rank = 0 if lk.ttl_ms == -1 or lk.key in no_ttl else 1 if age > limit else 2
            order.append((rank, -age, i, lk))
        self._round, self._stale_after, self._cells, self._hays = d, stale_after, {}, None
        self._no_ttl = no_ttl
        self._stale = stale_count(d, stale_after) if stale_after is not None else (0, True)
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

    def _row(self, lk: Lock) -> list[Any]:
        ttl = lk.ttl_ms
        is_no_ttl = ttl == -1 or lk.key in self._no_ttl
        is_stale = self._stale_after is not None and is_stale_lock(lk, self._stale_after)
        renewed = lk.renewed_ago_s is not None  # its holder keeps extending it: alive
        flag = (
            ("NO TTL", "bold red")
            if is_no_ttl
            else ("STALE ↻" if renewed else "STALE", "yellow")
            if is_stale
            else ("RENEWED", "green")
            if renewed
            else ("", "")
        )
        return [
            cell(flag[0] or " ", flag[1]),
            cell(lk.key),
            cell(lk.owner if lk.owner_read else "not read"),
            cell(
                "none" if is_no_ttl else None if ttl is None else duration(ttl / 1000),
                "red" if is_no_ttl else "",
            ),
            cell(duration(lk.age_s), "yellow" if is_stale else ""),
            cell(lk.kind),
            _holders(lk),
        ]

    def selected(self) -> dict[str, Any] | None:
        return self.query_one(SyncTable).selected()


def _info_line(info: Info, evictions: Status | None) -> Content:
    """Memory, evictions (coloured by the judged redis.evictions), clients, rejected
    connections and the commands ultrawatch sent."""
    maxmem = info.maxmemory
    return Content.assemble(
        ("memory ", "bold"),
        size(info.used_memory),
        f" / {size(maxmem) if maxmem else 'no limit'}",
        f" ({info.maxmemory_policy or DASH})",
        ("  evictions ", "bold"),
        (num(info.evicted_keys), _STATUS_STYLE.get(evictions, "") if evictions else ""),
        f" ({num(info.evicted_per_s, '{:.1f}')}/s)",
        ("  clients ", "bold"),
        num(info.connected_clients),
        (
            f" ({num(info.blocked_clients)} blocked)",
            "yellow" if info.blocked_clients else "",
        ),
        ("  rejected ", "bold"),
        _rejected(info),
        ("  our commands ", "bold"),
        num(info.own_commands),
    )
