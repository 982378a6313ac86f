"""Record every round's Snapshot to SQLite (bounded retention, no UI), replay it
into the TUI, and judge a recorded moment for `check --replay FILE --at TIME`.

Rows hold zlib-compressed JSON of `Snapshot.to_dict()`; the configuration the
recording was made with is kept beside them, so a replay judges with the same
thresholds unless --config says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sqlite3
import sys
import zlib
from bisect import bisect_right
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from collectors.config import Config, _dec_hook, load_config
from collectors.model import Report, Snapshot
from collectors.redact import config_without_passwords

DEFAULT_KEEP = 24 * 3600.0  # seconds of rounds a recording keeps by default
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


class Recording:
    """One recording file. Writes are small transactions; readers see whole rounds."""

    def __init__(self, path: str | Path, *, keep: float | None = DEFAULT_KEEP) -> None:
        self.path = Path(path)
        self.keep = keep
        self.db = sqlite3.connect(self.path)
        self.db.executescript(SCHEMA)
        self.db.execute("pragma journal_mode=wal")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- write

    def set_config(self, config: Config) -> None:
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
        row = self.db.execute("select value from meta where key = 'config'").fetchone()
        if row is None:
            return None
        return msgspec.json.decode(row[0], type=Config, dec_hook=_dec_hook)

    def index(self) -> list[tuple[int, float]]:
        """(row id, started_at) of every round, oldest first."""
        return list(self.db.execute("select id, started_at from rounds order by started_at, id"))

    def load(self, row_id: int) -> Snapshot:
        row = self.db.execute("select data from rounds where id = ?", (row_id,)).fetchone()
        if row is None:
            raise KeyError(row_id)
        return Snapshot.from_dict(json.loads(zlib.decompress(row[0])))

    def __len__(self) -> int:
        return self.db.execute("select count(*) from rounds").fetchone()[0]


def parse_at(at: str | None, times: list[float]) -> int:
    """Index of the round at `at` (ISO time, or seconds from the first round; None = last)."""
    if not times:
        raise ValueError("the recording holds no rounds")
    if at is None or at == "":
        return len(times) - 1
    try:
        t = times[0] + float(at)
    except ValueError:
        try:
            t = datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise ValueError(
                f"expected an ISO time (2026-11-24T10:00:00Z) or seconds from the start, got {at!r}"
            ) from None
    return max(0, bisect_right(times, t) - 1)


def warm_report(config: Config, rec: Recording, index: list[tuple[int, float]], i: int) -> Report:
    """Judge round i with the hysteresis it would have had: replay a few rounds before it."""
    from collectors.rules import Rules

    d = config.dashboard
    rules = Rules(config, raise_after=d.raise_after, clear_after=d.clear_after)
    start = max(0, i - max(d.raise_after, d.clear_after) - 1)
    report = None
    for row_id, _ in index[start : i + 1]:
        report = rules.evaluate(rec.load(row_id))
    assert report is not None
    return report


def report_at(config: Config, path: str, at: str | None) -> Report:
    """`check --replay FILE --at TIME`: the recorded moment, judged like a one-shot check."""
    from collectors.config import ConfigError
    from collectors.rules import Rules

    if not Path(path).is_file():
        raise ConfigError(path, "", "no such recording")
    with Recording(path, keep=None) as rec:
        index = rec.index()
        try:
            i = parse_at(at, [t for _, t in index])
        except ValueError as e:
            raise ConfigError(path, "--at", str(e)) from None
        return Rules(config).evaluate(rec.load(index[i][0]))


# ------------------------------------------------------------------ commands


def run_record(config: Config, args: argparse.Namespace) -> int:
    """`ultrawatch record FILE [--rounds N] [--keep S]`: poll and write, no UI."""
    keep = args.keep if getattr(args, "keep", None) else DEFAULT_KEEP
    return asyncio.run(_record(config, args.file, getattr(args, "rounds", None), keep))


async def _record(config: Config, file: str, rounds: int | None, keep: float) -> int:
    from collectors.poller import Poller, build_collectors

    poller = Poller(build_collectors(config), deadline=config.dashboard.collector_timeout)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    n = 0
    with Recording(file, keep=keep) as rec:
        rec.set_config(config)
        try:
            while not stop.is_set():
                rec.append(await poller.poll())
                n += 1
                if rounds is not None and n >= rounds:
                    break
                try:
                    await asyncio.wait_for(stop.wait(), timeout=config.dashboard.interval)
                except TimeoutError:
                    pass
        finally:
            await poller.aclose()
    print(f"ultrawatch: recorded {n} rounds to {file}", file=sys.stderr)
    return 0


def run_replay(args: argparse.Namespace) -> int:
    """`ultrawatch replay FILE [--config F] [--speed X]`: the TUI on a recording."""
    from collectors.config import ConfigError

    if not Path(args.file).is_file():
        raise ConfigError(args.file, "", "no such recording")
    rec = Recording(args.file, keep=None)
    if not len(rec):
        rec.close()
        raise ConfigError(args.file, "", "the recording holds no rounds")
    config = load_config(args.config) if getattr(args, "config", None) else rec.config()
    if config is None:
        config = Config()
    from dashboard.app import UltrawatchApp

    app = UltrawatchApp(config, read_only=True, replay=Replayer(rec, config, speed=args.speed))
    app.run()
    return app.return_code or 0


class Replayer:
    """The position in a recording the TUI shows, and how to move it."""

    def __init__(self, rec: Recording, config: Config, *, speed: float = 1.0, start: int = 0):
        self.rec = rec
        self.config = config
        self.speed = speed if speed > 0 else 1.0
        self.index = rec.index()
        self.pos = min(max(0, start), max(0, len(self.index) - 1))
        self.playing = False
        self._rules: Any = None

    def __len__(self) -> int:
        return len(self.index)

    def rebuild(self, count: int = 30) -> list[Report]:
        """Reports of the rounds up to the current position, judged in order with
        fresh rules (hysteresis and alerts' first-seen times come out right)."""
        from collectors.rules import Rules

        d = self.config.dashboard
        self._rules = Rules(self.config, raise_after=d.raise_after, clear_after=d.clear_after)
        start = max(0, self.pos - count + 1)
        return [
            self._rules.evaluate(self.rec.load(rid)) for rid, _ in self.index[start : self.pos + 1]
        ]

    def advance(self) -> Report | None:
        """One round forward, judged with the same rules; None at the end."""
        if self._rules is None or self.pos + 1 >= len(self.index):
            return None
        self.pos += 1
        return self._rules.evaluate(self.rec.load(self.index[self.pos][0]))

    def step(self, n: int) -> bool:
        new = min(max(0, self.pos + n), len(self.index) - 1)
        moved = new != self.pos
        self.pos = new
        return moved

    def seek(self, at: str) -> None:
        self.pos = parse_at(at, [t for _, t in self.index])

    def delay(self) -> float:
        """Seconds until the next round at the current speed."""
        if self.pos + 1 >= len(self.index):
            return 0.0
        gap = self.index[self.pos + 1][1] - self.index[self.pos][1]
        return max(0.02, gap / self.speed)

    def describe(self) -> dict[str, Any]:
        return {"pos": self.pos + 1, "of": len(self.index), "speed": self.speed}
