"""collectors.core's one atomic writer and one set of time and duration formats."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors.core.files import atomic_write
from collectors.core.units import (
    clock_time,
    format_duration,
    format_duration_spaced,
    format_elapsed,
    iso_time,
    parse_iso,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_file_is_private_and_existing_keeps_its_mode(tmp_path: Path) -> None:
    new = tmp_path / "new.toml"
    atomic_write(new, "a = 1\n")
    assert new.read_text() == "a = 1\n"
    assert _mode(new) == 0o600
    shared = tmp_path / "shared.txt"
    shared.write_text("old")
    shared.chmod(0o640)
    atomic_write(shared, b"new")
    assert shared.read_bytes() == b"new"
    assert _mode(shared) == 0o640
    atomic_write(shared, "forced", mode=0o644)
    assert _mode(shared) == 0o644


def test_symlink_is_followed_parents_made_and_no_temp_left(tmp_path: Path) -> None:
    real = tmp_path / "real.env"
    real.write_text("A=1\n")
    link = tmp_path / "link.env"
    link.symlink_to(real)
    atomic_write(link, "A=2\n")
    assert link.is_symlink() and real.read_text() == "A=2\n"
    deep = tmp_path / "a" / "b" / "out.json"
    with pytest.raises(FileNotFoundError):
        atomic_write(deep, "{}")
    atomic_write(deep, "{}", make_parents=True)
    assert deep.read_text() == "{}"
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "x"
    target.write_text("old")
    steps: list[str] = []

    def crash(step: str) -> None:
        steps.append(step)
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, "new", on_step=crash)
    assert steps == ["temp-written"]
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["x"]


def test_a_killed_writers_temp_is_removed_unless_told_not_to(tmp_path: Path) -> None:
    target = tmp_path / "store.env"
    leftover = tmp_path / ".store.env.abc123.tmp"
    leftover.write_text("SECRET=1")
    atomic_write(target, "A=1\n", clean_stale=False)
    assert leftover.exists()
    steps: list[str] = []
    atomic_write(target, "A=2\n", on_step=steps.append)
    assert not leftover.exists()
    assert steps == ["temp-written", "renamed"]


@pytest.mark.parametrize(
    ("seconds", "compact", "spaced", "elapsed"),
    [
        (0.25, "250ms", "0 s", "0.2s"),
        (45, "45s", "45 s", "45.0s"),
        (90.5, "90.5s", "90 s", "90.5s"),
        (427, "7m", "7 min", "7m07s"),
        (7500, "2h", "2.1 h", "2h05m"),
        (90 * 86400, "90d", "90.0 d", "2160h00m"),
    ],
)
def test_duration_styles(seconds: float, compact: str, spaced: str, elapsed: str) -> None:
    assert format_duration(seconds) == compact
    assert format_duration_spaced(seconds) == spaced
    assert format_elapsed(seconds) == elapsed
    assert format_elapsed(None) == "?"


def test_iso_times_round_trip() -> None:
    t = datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=UTC).timestamp()
    assert iso_time(t) == "2026-11-24T10:00:00Z"
    assert iso_time(t, "milliseconds") == "2026-11-24T10:00:00.123Z"
    assert iso_time(t, "microseconds") == "2026-11-24T10:00:00.123456Z"
    assert iso_time(datetime.fromtimestamp(t, UTC)) == "2026-11-24T10:00:00Z"
    assert clock_time(t) == "10:00:00Z"
    assert parse_iso(iso_time(t, "microseconds")) == t
    assert parse_iso("2026-11-24T12:00:00+02:00") == parse_iso("2026-11-24 10:00:00")
    assert parse_iso("yesterday") is None
    assert parse_iso(None) is None
