"""Record every round's Snapshot to SQLite (bounded retention, no UI), and judge a
recorded moment for `check --replay FILE --at TIME`. No UI here: replaying into
the TUI is dashboard/tui/replay.py, on JudgedRounds.

Rows hold zlib-compressed JSON of `Snapshot.to_dict()`; the configuration the
recording was made with is kept beside them, so a replay judges with the same
thresholds unless --config says otherwise.

A recorder killed mid-write leaves a file whose end may be damaged: reading stops
at the first damaged round, says where (file, round, time), and what is before it
stays usable.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import pickle
import signal
import sqlite3
import sys
import zlib
from bisect import bisect_right
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from collectors.config import Config
from collectors.core.model import Report, Snapshot
from collectors.core.settings import ConfigError, dec_hook
from collectors.core.units import iso_time
from collectors.registry import config_without_passwords, data_types

DEFAULT_KEEP = 24 * 3600.0  # seconds of rounds a recording keeps by default
# A replay keeps the judged state every MARK_EVERY rounds, so stepping back or
# seeking re-judges at most that many rounds; past MARK_BUDGET bytes of such
# marks the spacing doubles, so memory stays bounded however long the file.
MARK_EVERY = 16
MARK_BUDGET = 16 << 20
SCHEMA = """
create table if not exists meta (key text primary key, value text not null);
create table if not exists rounds (
    id integer primary key,
    round integer not null,
    started_at real not null,
    data blob not null
);
create index if not exists rounds_started on rounds(started_at);
"""


def _enc_hook(obj: object) -> object:
    # The config's value types (Duration, ByteSize, HttpUrl, ...) are plain
    # float/int/str subclasses; stored as such, parsed back by config's hook.
    for base in (bool, int, float, str):
        if isinstance(obj, base):
            return base(obj)
    raise NotImplementedError(type(obj))


class DamagedRecording(ConfigError):
    """A round that cannot be read back: the file, where, and why."""


def _clock(ts: float) -> str:
    return iso_time(ts)


def _create_private(path: Path) -> None:
    """A new recording is made 0600 before SQLite opens it (its -wal and -shm files
    take the database file's mode): it holds query text, lock owners and names."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError:
        return  # SQLite says what is wrong with the path
    os.close(fd)


class Recording:
    """One recording file. Writes are small transactions; readers see whole rounds."""

    def __init__(self, path: str | Path, *, keep: float | None = DEFAULT_KEEP) -> None:
        self.path = Path(path)
        self.keep = keep
        # Where and why the last index() stopped early (after the file's name,
        # for the engineer); None if it read to the end.
        self.damage: str | None = None
        # Set when the file is damaged and open only for reading what is left.
        self.damaged_open: str | None = None
        _create_private(self.path)
        self.db = sqlite3.connect(self.path)
        try:
            self.db.executescript(SCHEMA)
            self.db.execute("pragma journal_mode=wal")
        except sqlite3.DatabaseError as e:
            self.db.close()
            self.db = self._open_damaged(str(e))

    def _open_damaged(self, why: str) -> sqlite3.Connection:
        """A file cut short (its header counts more pages than it has) is refused
        by SQLite unless told to trust the file's size: then the rounds up to the
        damage read normally. Read-only, so the damaged file stays as it was."""
        db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            db.execute("pragma writable_schema = on")
            db.execute("select 1 from rounds limit 0")
        except sqlite3.DatabaseError as e:
            db.close()
            raise ConfigError(str(self.path), "", f"not a readable recording: {e}") from None
        self.damaged_open = why
        return db

    def _writable(self) -> None:
        if self.damaged_open is not None:
            raise ConfigError(
                str(self.path),
                "",
                f"damaged ({self.damaged_open}); it can be replayed, not recorded to: "
                "record to a new file",
            )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- write

    def set_config(self, config: Config) -> None:
        self._writable()
        with self.db:
            self.db.execute(
                "insert or replace into meta(key, value) values ('config', ?)",
                # a recording travels: it keeps the thresholds, never a password
                (
                    msgspec.json.encode(
                        config_without_passwords(config), enc_hook=_enc_hook
                    ).decode(),
                ),
            )

    def append(self, snapshot: Snapshot) -> None:
        self._writable()
        blob = zlib.compress(json.dumps(snapshot.to_dict(), separators=(",", ":")).encode(), 6)
        with self.db:
            self.db.execute(
                "insert into rounds(round, started_at, data) values (?, ?, ?)",
                (snapshot.round, snapshot.started_at, blob),
            )
            if self.keep is not None:
                self.db.execute(
                    "delete from rounds where started_at < ?", (snapshot.started_at - self.keep,)
                )

    # ----------------------------------------------------------------- read

    def config(self) -> Config | None:
        try:
            row = self.db.execute("select value from meta where key = 'config'").fetchone()
        except sqlite3.DatabaseError as e:
            raise DamagedRecording(
                str(self.path), "", f"its configuration is damaged ({e}); give --config"
            ) from None
        if row is None:
            return None
        try:
            return msgspec.json.decode(row[0], type=Config, dec_hook=dec_hook)
        except msgspec.ValidationError as e:
            # Made by a version with wider bounds (an interval under 100 ms, say).
            raise ConfigError(
                str(self.path), "", f"its configuration is refused today ({e}); give --config"
            ) from None

    def index(self) -> list[tuple[int, float]]:
        """(row id, started_at) of every round, oldest first. A damaged file yields
        the rounds before the damage and says where it is in `self.damage`."""
        rows: list[tuple[int, float]] = []
        self.damage = None
        try:
            # Row-id order walks the table itself (not the time index), one page
            # after another, so everything before a damaged page comes out.
            for row in self.db.execute("select id, started_at from rounds order by id"):
                rows.append(row)
        except sqlite3.DatabaseError as e:
            self.damage = self.damage_text(rows, str(e))
        rows.sort(key=lambda r: (r[1], r[0]))
        return rows

    def damage_text(self, good: list[tuple[int, float]], why: str) -> str:
        if not good:
            return f"damaged before its first round ({why}); nothing can be read"
        return (
            f"damaged after round {len(good)} ({_clock(good[-1][1])}): {why}; "
            f"the {len(good)} rounds before it are usable"
        )

    def load(self, row_id: int) -> Snapshot:
        try:
            row = self.db.execute("select data from rounds where id = ?", (row_id,)).fetchone()
            if row is None:
                raise KeyError(row_id)
            return Snapshot.from_dict(json.loads(zlib.decompress(row[0])), data_types())
        except KeyError:
            raise
        except (sqlite3.DatabaseError, zlib.error, ValueError, TypeError, AttributeError) as e:
            # zlib's checksum catches bytes damaged inside a row; SQLite catches pages.
            raise DamagedRecording(
                str(self.path), "", f"round (row {row_id}) is damaged: {e}"
            ) from None

    def __len__(self) -> int:
        return self.db.execute("select count(*) from rounds").fetchone()[0]


def at_time(at: str, times: list[float]) -> float:
    """The moment `at` names: an ISO time, or seconds from the first round."""
    try:
        offset = float(at)
    except ValueError:
        try:
            return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise ValueError(
                f"expected an ISO time (2026-11-24T10:00:00Z) or seconds from the start, got {at!r}"
            ) from None
    if not math.isfinite(offset):
        raise ValueError(f"expected a finite number of seconds from the start, got {at!r}")
    return times[0] + offset


def parse_at(at: str | None, times: list[float]) -> int:
    """Index of the round at `at` (ISO time, or seconds from the first round; None = last)."""
    if not times:
        raise ValueError("the recording holds no rounds")
    if at is None or at == "":
        return len(times) - 1
    return max(0, bisect_right(times, at_time(at, times)) - 1)


def report_at(
    config: Config | None, path: str, at: str | None, *, only: Iterable[str] | None = None
) -> Report:
    """`check --replay FILE --at TIME`: the recorded moment judged as the TUI saw it,
    every round before it included (hysteresis). `config` None: the recording's own."""
    if not Path(path).is_file():
        raise ConfigError(path, "", "no such recording")
    with Recording(path, keep=None) as rec:
        if config is None:
            config = rec.config() or Config()
        rp = JudgedRounds(rec, config, only=only)
        times = [t for _, t in rp.index]
        if not times:
            raise ConfigError(path, "", rec.damage or "the recording holds no rounds")
        try:
            want = rp.pos = parse_at(at, times)
            past_end = at not in (None, "") and at_time(at, times) > times[-1]
        except ValueError as e:
            raise ConfigError(path, "--at", str(e)) from None
        report = rp.judged()
        if rp.damage is not None:
            # What lies past the damage is unknown: the last round before it is
            # not the moment asked for. Without --at, the last readable round is.
            if at not in (None, "") and (past_end or rp.pos < want):
                raise ConfigError(path, "--at", f"{at} is past the damage: {rp.damage}")
            print(f"ultrawatch: warning: {path}: {rp.damage}", file=sys.stderr)
        return report


# ------------------------------------------------------------------ commands


def run_record(config: Config, args: argparse.Namespace) -> int:
    """`ultrawatch record FILE [--rounds N] [--keep S]`: poll and write, no UI."""
    keep = args.keep if getattr(args, "keep", None) else DEFAULT_KEEP
    return asyncio.run(_record(config, args.file, getattr(args, "rounds", None), keep))


async def _record(config: Config, file: str, rounds: int | None, keep: float) -> int:
    from collectors.poller import Poller, build_collectors

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    with Recording(file, keep=keep) as rec:
        rec.set_config(config)  # refuses a damaged file before any target is touched
        poller = Poller(build_collectors(config), deadline=config.dashboard.collector_timeout)
        try:
            # A signal stops it after the round under way is written.
            n = await poller.run(config.dashboard.interval, rec.append, stop=stop, rounds=rounds)
        finally:
            await poller.aclose()
    print(f"ultrawatch: recorded {n} rounds to {file}", file=sys.stderr)
    return 0


class JudgedRounds:
    """A position in a recording and every round up to it judged, in order from
    the first like forward play, so hysteresis (and, in the TUI, alerts' first-seen
    times) at any position are what play would have shown. Moving back or far
    restarts from the nearest kept mark (the judged state before every
    `_every`-th round), not from the first round.

    No UI here (`check --replay`); the TUI's Replayer (dashboard/tui/replay.py)
    adds its view model to what is judged and kept, through `_fresh`, `_absorb`,
    `_carry` and `_restore`.
    """

    def __init__(
        self,
        rec: Recording,
        config: Config,
        *,
        start: int = 0,
        only: Iterable[str] | None = None,
    ):
        self.rec = rec
        self.config = config
        self.index = rec.index()
        self.damage = rec.damage
        self.pos = min(max(0, start), max(0, len(self.index) - 1))
        # Where damage is told (the TUI's notifications); stderr when unset.
        self.warn: Callable[[str], None] | None = None
        self._warned: str | None = None
        self._only = frozenset(only) if only else None
        self._every = MARK_EVERY
        self._marks: dict[int, bytes] = {}
        self._mark_bytes = 0
        self._report: Report | None = None
        self._start_over()

    def __len__(self) -> int:
        return len(self.index)

    # ------------------------------------------- what a subclass adds per round

    def _fresh(self) -> None:
        """Start what is kept beside the rules over (before the first round)."""
        self._report = None

    def _absorb(self, report: Report) -> None:
        """Take one judged round."""
        self._report = report

    def _carry(self) -> tuple[Any, ...]:
        """What carries over between rounds beside the rules (kept in marks)."""
        return ()

    def _restore(self, carried: tuple[Any, ...]) -> None:
        """Put back what `_carry` gave, after `_fresh`."""

    # ------------------------------------------------------ judged state

    def _start_over(self) -> None:
        from collectors.rules import Rules

        d = self.config.dashboard
        self._rules = Rules(self.config, raise_after=d.raise_after, clear_after=d.clear_after)
        self._fresh()
        self._at = -1  # the last round judged

    def _save_mark(self, i: int) -> None:
        # Pickle only what carries over between rounds (not the snapshot itself);
        # it never leaves this process.
        state = (self._rules._held, self._carry())
        blob = zlib.compress(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), 1)
        self._marks[i] = blob
        self._mark_bytes += len(blob)
        while self._mark_bytes > MARK_BUDGET and len(self._marks) > 1:
            self._every *= 2
            for k in [k for k in self._marks if k % self._every]:
                self._mark_bytes -= len(self._marks.pop(k))

    def _load_mark(self, i: int) -> None:
        self._start_over()
        if i == 0:
            return
        held, carried = pickle.loads(zlib.decompress(self._marks[i]))
        self._rules._held = held
        self._restore(carried)
        self._at = i - 1

    def _judge(self, i: int) -> Report | None:
        """Judge round i (the one after _at); None if it is damaged (the
        recording then ends before it)."""
        assert i == self._at + 1
        if i % self._every == 0 and i not in self._marks and i > 0:
            self._save_mark(i)
        try:
            snap = self.rec.load(self.index[i][0])
        except DamagedRecording as e:
            self._cut(i, e.message)
            return None
        if self._only is not None:
            only = self._only
            snap = dataclasses.replace(
                snap, readings=tuple(r for r in snap.readings if r.component in only)
            )
        report = self._rules.evaluate(snap)
        self._absorb(report)
        self._at = i
        return report

    def _cut(self, i: int, why: str) -> None:
        """The recording ends before round i: it could not be read."""
        if i == 0:
            raise DamagedRecording(str(self.rec.path), "", f"its first {why}")
        self.damage = self.rec.damage_text(self.index[:i], why)
        del self.index[i:]
        self.pos = min(self.pos, i - 1)
        for k in [k for k in self._marks if k >= i]:
            self._mark_bytes -= len(self._marks.pop(k))

    def _goto(self, p: int) -> None:
        """Judge up to round p (or the last readable one before it)."""
        if self._at == p:
            return
        start = max((k for k in self._marks if k <= p), default=0)
        if not start - 1 <= self._at < p:  # going back, or a mark is nearer
            self._load_mark(start)
        while self._at < p and self._judge(self._at + 1) is not None:
            pass

    def _tell(self) -> None:
        if self.damage is None or self._warned == self.damage:
            return
        self._warned = self.damage
        if self.warn is not None:
            self.warn(f"{self.rec.path}: {self.damage}")
        else:
            print(f"ultrawatch: warning: {self.rec.path}: {self.damage}", file=sys.stderr)

    def judged(self) -> Report:
        """The report of the current position, every round before it judged."""
        self._goto(self.pos)
        report = self._report
        assert report is not None
        return report

    # ------------------------------------------------------------- moving

    def advance(self) -> Report | None:
        """One round forward, judged after all before it; None at the end."""
        self._goto(self.pos)
        if self.pos + 1 >= len(self.index):
            self._tell()
            return None
        report = self._judge(self.pos + 1)
        if report is None:
            self._tell()
            return None
        self.pos += 1
        return report

    def step(self, n: int) -> bool:
        new = min(max(0, self.pos + n), len(self.index) - 1)
        moved = new != self.pos
        self.pos = new
        return moved

    def seek(self, at: str) -> None:
        self.pos = parse_at(at, [t for _, t in self.index])
