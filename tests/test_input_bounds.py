"""Every number a user gives, on the command line or in the config, is checked once:
finite, above a floor, below a ceiling. A value out of bounds is a one-line error that
names the flag or key and what was expected, exit 3 (UNKNOWN), before any target is
touched. So are a config nested too deep, a path of the wrong kind, a missing wordlist,
a config with nothing to check, and an --output that is a directory or has no parent."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from collectors.core.units import Duration, Interval, ScanCount, Timeout, parse_count
from tests import tui_data as td
from tests.conftest import run_cli
from tests.helpers import http_server, respond

DOWN_REDIS = '[redis]\nurl = "redis://127.0.0.1:1/0"\n'  # nothing listens: a fast critical


def refused(result, *words: str) -> str:
    """The run ended with exit 3, nothing on stdout and no traceback; its first stderr
    line holds every word. Returns that line."""
    assert result.returncode == 3, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    first = result.stderr.splitlines()[0]
    for word in words:
        assert word in first, (word, first)
    return first


# ------------------------------------------------------------------ command line


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--watch", "0.001"], ["--watch", "at least 100ms", "0.001"]),
        (["--watch", "0"], ["--watch", "at least 100ms"]),
        (["--watch", "nan"], ["--watch", "finite", "nan"]),
        (["--watch", "inf"], ["--watch", "finite"]),
        (["--watch", "2d"], ["--watch", "at most 24h"]),
        (["--timeout", "inf"], ["--timeout", "finite", "inf"]),
        (["--timeout", "nan"], ["--timeout", "finite", "nan"]),
        (["--timeout", "1e308"], ["--timeout", "at most 24h"]),
        (["--timeout", "0"], ["--timeout", "above 0"]),
        (["--only", ""], ["--only", "expected some of postgres", "got ''"]),
        (["--only", " , "], ["--only", "expected some of"]),
    ],
)
def test_check_flags_out_of_bounds_are_usage_errors(
    args: list[str], words: list[str], write_config
) -> None:
    cfg = write_config(DOWN_REDIS)
    refused(run_cli("check", "--config", str(cfg), *args, timeout=20), *words)


def test_a_watch_below_the_floor_sends_no_request(write_config) -> None:
    """`--watch 0.001` once sent 2,798 requests to one service in 8 s."""
    hits: list[str] = []

    def handle(req: BaseHTTPRequestHandler) -> None:
        hits.append(req.path)
        respond(req, 200, '{"status":"pass"}')

    with http_server(handle) as url:
        cfg = write_config(f'[[services]]\nname = "shop"\nurl = "{url}"\n')
        refused(run_cli("check", "--config", str(cfg), "--watch", "0.001", timeout=20), "--watch")
        # the same service, polled once, is reached: the server counts
        ok = run_cli("check", "--config", str(cfg), "--format", "json", timeout=20)
    assert ok.returncode == 0, ok.stderr
    assert hits == ["/health"]


def test_bounds_are_inclusive_and_durations_keep_their_units(write_config) -> None:
    cfg = write_config(DOWN_REDIS)
    # a day is the longest timeout: accepted, and the round ends as usual (critical)
    r = run_cli("check", "--config", str(cfg), "--timeout", "24h", "--format", "json")
    assert r.returncode == 2, r.stderr
    r = run_cli("check", "--config", str(cfg), "--timeout", "86401")
    refused(r, "--timeout", "at most 24h")


def test_output_must_be_a_file_in_an_existing_directory(write_config, tmp_path: Path) -> None:
    cfg = write_config(DOWN_REDIS)
    # a directory: once an internal error
    r = run_cli("check", "--config", str(cfg), "--output", str(tmp_path))
    refused(r, "--output", "a directory", str(tmp_path))
    # a missing parent: once silently created
    missing = tmp_path / "no" / "such" / "x.prom"
    r = run_cli("check", "--config", str(cfg), "--output", str(missing))
    refused(r, "--output", "does not exist", str(tmp_path / "no" / "such"))
    assert not (tmp_path / "no").exists()
    # a parent that is a file
    (tmp_path / "file").write_text("")
    r = run_cli("check", "--config", str(cfg), "--output", str(tmp_path / "file" / "x.prom"))
    refused(r, "--output", "not a directory")
    # a file in a directory that exists: written
    target = tmp_path / "x.prom"
    r = run_cli("check", "--config", str(cfg), "--format", "prometheus", "--output", str(target))
    assert r.returncode == 2 and r.stdout == "" and "ultrawatch_" in target.read_text()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--rounds", "0"], ["--rounds", "from 1 to", "'0'"]),
        (["--rounds", "-3"], ["--rounds", "from 1 to"]),
        (["--rounds", "99999999999999999999999"], ["--rounds", "2147483647"]),
        (["--rounds", "2.5"], ["--rounds", "whole number"]),
        (["--keep", "nan"], ["--keep", "finite", "nan"]),
        (["--keep", "0"], ["--keep", "above 0"]),
        (["--keep", "inf"], ["--keep", "finite"]),
        (["--keep", "99999d"], ["--keep", "at most"]),
    ],
)
def test_record_flags_out_of_bounds(
    args: list[str], words: list[str], write_config, tmp_path: Path
) -> None:
    cfg = write_config(DOWN_REDIS)
    out = tmp_path / "rec.db"
    refused(run_cli("record", str(out), "--config", str(cfg), *args, timeout=20), *words)
    assert not out.exists()


@pytest.mark.parametrize(
    ("speed", "words"),
    [
        ("0", ["--speed", "from 0.01 to 1000", "'0'"]),
        ("-1", ["--speed", "from 0.01 to 1000"]),
        ("nan", ["--speed", "finite"]),
        ("inf", ["--speed", "finite"]),
        ("1e9", ["--speed", "from 0.01 to 1000"]),
        ("fast", ["--speed", "expected a number"]),
    ],
)
def test_replay_speed_out_of_bounds(speed: str, words: list[str], tmp_path: Path) -> None:
    path = td.record(tmp_path / "r.db", "ok", 3)
    refused(run_cli("replay", str(path), "--speed", speed, timeout=20), *words)


@pytest.mark.parametrize("at", ["nan", "inf", "-inf", "1e999"])
def test_replay_at_must_be_a_finite_moment(at: str, tmp_path: Path) -> None:
    path = td.record(tmp_path / "r.db", "ok", 3)
    r = run_cli("check", "--replay", str(path), f"--at={at}", timeout=20)
    refused(r, f"{path}: --at", "finite", repr(at))
    # a finite offset still picks a round
    ok = run_cli("check", "--replay", str(path), "--at", "0", "--format", "json", timeout=20)
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("pid", ["0", "-1", "99999999999999999999", "12x"])
def test_backend_pid_out_of_bounds(pid: str, write_config) -> None:
    cfg = write_config('[postgres]\ndsn = "postgresql://m@127.0.0.1:1/x"\n')
    refused(run_cli("cancel", pid, "--yes", "--config", str(cfg), timeout=20), "PID", "from 1 to")


# ------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[dashboard]\ninterval = nan\n" + DOWN_REDIS, ["dashboard.interval", "finite", "nan"]),
        ("[dashboard]\ninterval = inf\n" + DOWN_REDIS, ["dashboard.interval", "finite"]),
        (
            "[dashboard]\ninterval = 1e308\n" + DOWN_REDIS,
            ["dashboard.interval", "at most 24h", "1e+308"],
        ),
        ('[dashboard]\ninterval = "10ms"\n' + DOWN_REDIS, ["dashboard.interval", "100ms"]),
        ("[dashboard]\ncollector_timeout = nan\n" + DOWN_REDIS, ["dashboard.collector_timeout"]),
        ('[dashboard]\nhistory = "99999d"\n' + DOWN_REDIS, ["dashboard.history", "at most"]),
        (
            "[dashboard]\nraise_after = 99999999999999999999999\n" + DOWN_REDIS,
            ["dashboard.raise_after", "<= 2147483647"],
        ),
        (
            "[redis]\nscan_count = 99999999999999999999999\n",
            ["redis.scan_count", "<= 100000", "99999999999999999999999"],
        ),
        ("[redis]\nsocket_timeout = inf\n", ["redis.socket_timeout", "finite"]),
        ("[redis]\nstale_after = nan\n", ["redis.stale_after", "finite"]),
        ('[redis]\nreconcile_every = "1ms"\n', ["redis.reconcile_every", "100ms"]),
        ("[redis]\nmemory_warn = nan\n", ["redis.memory_warn", "ratio"]),
        (
            '[postgres]\n[[postgres.invariants]]\nname = "neg"\nsql = "select 1"\n'
            "crit_above = nan\n",
            ["postgres.invariants[0].crit_above", "finite"],
        ),
        (
            '[postgres]\n[[postgres.invariants]]\nname = "neg"\nsql = "select 1"\n'
            "warn_below = -1e300\n",
            ["postgres.invariants[0].warn_below", "1e15"],
        ),
        ('[postgres]\nstatement_timeout = "30d"\n', ["postgres.statement_timeout", "24h"]),
        ("[postgres]\nidle_in_transaction_warn = inf\n", ["idle_in_transaction_warn", "finite"]),
        ("[http]\ntimeout = 1e308\n" + DOWN_REDIS, ["http.timeout", "at most 24h"]),
        (
            '[[processes]]\nname = "w"\npid = 1\nmemory_limit = "99999999999999999999TiB"\n',
            ["processes[0].memory_limit", "at most 1EiB"],
        ),
        ('[[processes]]\nname = "w"\npid = 1\ngrowth_min_span = nan\n', ["growth_min_span"]),
        ('[secrets]\nstore = { kind = "env" }\nprobe_every = "1ms"\n', ["secrets.probe_every"]),
    ],
)
def test_config_numbers_out_of_bounds(text: str, words: list[str], write_config) -> None:
    cfg = write_config(text)
    line = refused(run_cli("config", "check", "--config", str(cfg), timeout=20), str(cfg), *words)
    # `check` refuses the same way, before any round (scan_count was a false critical)
    assert refused(run_cli("check", "--config", str(cfg), timeout=20)) == line


def test_config_bounds_are_inclusive(write_config) -> None:
    cfg = write_config(
        '[dashboard]\ninterval = "100ms"\ncollector_timeout = "24h"\n[redis]\nscan_count = 100000\n'
    )
    r = run_cli("config", "check", "--config", str(cfg))
    assert r.returncode == 0, r.stderr


def test_a_config_nested_too_deep_is_a_config_error(write_config) -> None:
    """5,000 nested arrays were `internal error: RecursionError`."""
    deep = write_config("a = " + "[" * 5000 + "]" * 5000 + "\n")
    refused(run_cli("config", "check", "--config", str(deep)), str(deep), "nested")
    refused(run_cli("check", "--config", str(deep)), "nested")
    # deep but within what Python's parser takes: refused the same way, not a key error
    tables = write_config(DOWN_REDIS + "x = " + "{a=" * 200 + "1" + "}" * 200 + "\n", "t.toml")
    refused(run_cli("config", "check", "--config", str(tables)), "nested more than 32 levels")


def test_paths_of_the_wrong_kind_are_config_errors(write_config, tmp_path: Path) -> None:
    a_dir = tmp_path / "a-dir"
    a_dir.mkdir()
    cases = [
        (f'[[processes]]\nname = "w"\npidfile = "{a_dir}"\n', "processes[0].pidfile"),
        (
            f'[[services]]\nname = "s"\nurl = "http://127.0.0.1:1"\n'
            f'process = {{ pidfile = "{a_dir}" }}\n',
            "services[0].process.pidfile",
        ),
        (f'{DOWN_REDIS}[actions]\naudit_log = "{a_dir}"\n', "actions.audit_log"),
        (f'{DOWN_REDIS}[dashboard]\nhandoff_file = "{a_dir}"\n', "dashboard.handoff_file"),
        (f'[secrets]\nstore = {{ kind = "dotenv", path = "{a_dir}" }}\n', "secrets.store.path"),
    ]
    for i, (text, key) in enumerate(cases):
        cfg = write_config(text, f"c{i}.toml")
        for cmd in (["config", "check"], ["check"]):
            line = refused(run_cli(*cmd, "--config", str(cfg)), str(cfg), key, "a directory")
            assert str(a_dir) in line
    # a dir store that is a file
    env = tmp_path / ".env"
    env.write_text("JWT_SECRET=x\n")
    cfg = write_config(f'[secrets]\nstore = {{ kind = "dir", path = "{env}" }}\n', "d.toml")
    refused(run_cli("config", "check", "--config", str(cfg)), "secrets.store.path", "directory")
    # a pidfile not written yet is fine: the process may not have started
    later = write_config(f'[[processes]]\nname = "w"\npidfile = "{tmp_path / "w.pid"}"\n', "l.toml")
    assert run_cli("config", "check", "--config", str(later)).returncode == 0


def test_a_missing_wordlist_is_a_config_error(write_config, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-words.txt"
    text = f'[secrets]\nstore = {{ kind = "env" }}\nwordlist = "{missing}"\n'
    cfg = write_config(text)
    for cmd in (["config", "check"], ["check"]):
        refused(run_cli(*cmd, "--config", str(cfg)), "secrets.wordlist", "no such file")
    missing.write_text("secret\nchangeme\n")
    assert run_cli("config", "check", "--config", str(cfg)).returncode == 0


@pytest.mark.parametrize("text", ["", "[dashboard]\ninterval = '5s'\n", "[http]\n"])
def test_a_config_with_nothing_to_check_is_refused(text: str, write_config) -> None:
    """It used to exit 0 "OK" with zero checks, forever."""
    cfg = write_config(text)
    for cmd in (["config", "check"], ["check"], ["record", str(cfg.with_suffix(".db"))]):
        refused(run_cli(*cmd, "--config", str(cfg), timeout=20), "nothing to check", "[redis]")
    assert not cfg.with_suffix(".db").exists()


# ------------------------------------------------------ the parsers, one per kind


def test_one_parser_per_kind() -> None:
    assert Duration.parse("90d") == 90 * 86400
    for bad in (float("nan"), float("inf"), "9" * 400 + "d", 11 * 365 * 86400):
        with pytest.raises(ValueError, match=r"finite|at most"):
            Duration.parse(bad)
    assert Interval.parse("100ms") == pytest.approx(0.1)
    with pytest.raises(ValueError, match="at least 100ms"):
        Interval.parse(0.099)
    assert Timeout.parse("24h") == 86400
    with pytest.raises(ValueError, match="above 0"):
        Timeout.parse(0)
    assert parse_count("100000", ScanCount) == 100000
    with pytest.raises(ValueError, match="from 1 to 100000"):
        parse_count("100001", ScanCount)


def test_a_recording_made_with_wider_bounds_names_the_fix(write_config, tmp_path: Path) -> None:
    """A recording keeps its configuration; one made before the floors (an interval of
    10 ms) is refused with the reason, and replays with --config."""
    import msgspec

    old = td.config()
    old = msgspec.structs.replace(
        old, dashboard=msgspec.structs.replace(old.dashboard, interval=Interval(0.01))
    )
    path = td.record(tmp_path / "old.db", "ok", 3, cfg=old)
    r = run_cli("check", "--replay", str(path), timeout=20)
    refused(r, str(path), "dashboard.interval", "give --config")
    cfg = write_config(DOWN_REDIS)
    ok = run_cli("check", "--replay", str(path), "--config", str(cfg), "--format", "json")
    assert ok.stderr == "" and json.loads(ok.stdout)["checks"]  # judged, whatever its status
