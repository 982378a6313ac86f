"""Configuration: lookup order, durations, environment, and errors that name
the file, the key path and what was expected."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collectors.config import find_config, load_config, parse_config
from collectors.core.settings import ConfigError
from collectors.core.units import ByteSize, Duration
from tests.conftest import run_cli


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("5m", 300), ("2h", 7200), ("90d", 7776000), ("1h30m", 5400)],
)
def test_durations(text: str, seconds: float) -> None:
    assert Duration.parse(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["5x", "", "m5", "-3s", True, "30 seconds"])
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        Duration.parse(bad)


def test_sizes() -> None:
    assert ByteSize.parse("2GiB") == 2 * 1024**3
    assert ByteSize.parse("512MB") == 512 * 1000**2
    assert ByteSize.parse(4096) == 4096
    with pytest.raises(ValueError, match="expected a size"):
        ByteSize.parse("lots")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[services]]\nname="a"\nurl="http://a:1"\n[[services]]\nname="b"\nurl="http://b"\n'
            '[[services]]\nname="c"\nurl="localhost:3000"\n',
            "ultrawatch.toml: services[2].url: expected an http(s) URL, got 'localhost:3000'",
        ),
        (
            "[postgres]\nconnection_budgt = 3\n",
            "ultrawatch.toml: postgres.connection_budgt: unknown key; "
            "did you mean 'connection_budget'?",
        ),
        ("[postgress]\n", "ultrawatch.toml: postgress: unknown key; did you mean 'postgres'?"),
        (
            '[dashboard]\ninterval = "5x"\n',
            "ultrawatch.toml: dashboard.interval: expected a duration like '30s', '5m' or '90d', "
            "got '5x'",
        ),
        (
            '[postgres]\nconnection_budget = "twenty"\n',
            "ultrawatch.toml: postgres.connection_budget: expected an integer, got 'twenty'",
        ),
        (
            '[secrets]\nalgorithm = "HS999"\nstore = { kind = "env" }\n',
            "ultrawatch.toml: secrets.algorithm: expected one of 'HS256', 'HS384', 'HS512', "
            "got 'HS999'",
        ),
        (
            '[[services]]\nurl = "http://a"\n',
            "ultrawatch.toml: services[0].name: required key is missing",
        ),
        (
            '[[processes]]\nname = "w"\n',
            "ultrawatch.toml: processes[0]: expected exactly one of cmdline or pid or pidfile, "
            "got none",
        ),
        (
            '[secrets]\nprobe = { service = "nope", path = "/x" }\nstore = { kind = "env" }\n',
            "ultrawatch.toml: secrets.probe.service: expected the name of a configured service "
            "(none configured), got 'nope'",
        ),
        ("x = = 3", "ultrawatch.toml: not valid TOML: Invalid value (at line 1, column 5)"),
    ],
)
def test_errors_name_file_key_and_expectation(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert str(info.value) == expected


def test_unknown_key_without_close_match_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"expected one of .*production"):
        parse_config("[dashboard]\nzzz = 1\n")


def test_absent_sections_switch_collectors_off() -> None:
    config = parse_config("")
    assert config.postgres is None and config.redis is None and config.secrets is None
    assert config.services == [] and config.dashboard.interval == 2


def test_redis_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://envhost:6380/1")
    assert parse_config("[redis]\n").redis.resolved_urls() == ["redis://envhost:6380/1"]
    explicit = parse_config('[redis]\nurl = "redis://cfg:6379/0"\n').redis
    assert explicit.resolved_urls() == ["redis://cfg:6379/0"]


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("ULTRAWATCH_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="no configuration found"):
        find_config()
    user = tmp_path / "xdg" / "ultrawatch" / "ultrawatch.toml"
    user.parent.mkdir(parents=True)
    user.write_text("")
    assert find_config() == user
    local = tmp_path / "ultrawatch.toml"
    local.write_text("")
    assert find_config() == Path("ultrawatch.toml")
    env = tmp_path / "env.toml"
    env.write_text('[dashboard]\ninterval = "7s"\n')
    monkeypatch.setenv("ULTRAWATCH_CONFIG", str(env))
    assert find_config() == env
    assert load_config().dashboard.interval == 7
    explicit = tmp_path / "explicit.toml"
    explicit.write_text("")
    assert find_config(explicit) == explicit
    with pytest.raises(ConfigError, match="no such file"):
        find_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is a directory, expected a TOML file"):
        find_config(tmp_path)
    # a pipe, as `--config <(envsubst < template.toml)` gives
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    assert find_config(fifo) == fifo


def test_example_is_complete_and_validates(tmp_path: Path) -> None:
    example = run_cli("config", "example")
    assert example.returncode == 0
    path = tmp_path / "example.toml"
    path.write_text(example.stdout)
    config = load_config(path)
    assert config.postgres and config.redis and config.secrets and config.services
    assert config.postgres.invariants[0].name == "negative_stock"
    checked = run_cli("config", "check", "--config", str(path))
    assert checked.returncode == 0, checked.stderr
    assert "ok" in checked.stdout


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[postgres]\nconnection_budget = "many"\n', "postgres.connection_budget"),
        ("[redis]\nlock_paterns = []\n", "redis.lock_paterns"),
        ('[dashboard]\ninterval = "soon"\n', "dashboard.interval"),
    ],
)
def test_config_check_and_check_exit_3_with_one_line(write_config, text: str, key: str) -> None:
    path = write_config(text)
    for args in (("config", "check"), ("check",)):
        result = run_cli(*args, "--config", str(path))
        assert result.returncode == 3
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert f"{path}: {key}: " in lines[0]


def test_service_urls_refuse_credentials_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config('[[services]]\nname = "a"\nurl = "https://ghp_T0KEN@svc.internal:3002"\n')
    assert str(info.value) == (
        "ultrawatch.toml: services[0].url: expected an http(s) URL without user or password in it"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[http]\nconcurrency = 0\n", "http.concurrency: expected an integer >= 1, got 0"),
        ("[http]\nconcurrency = -3\n", "http.concurrency: expected an integer >= 1, got -3"),
        (
            '[dashboard]\ninterval = "0s"\n',
            "dashboard.interval: expected an interval of at least 100ms and at most 24h",
        ),
        ("[dashboard]\nraise_after = -1\n", "dashboard.raise_after: expected an integer >= 1"),
        ("[dashboard]\nclear_after = 0\n", "dashboard.clear_after: expected an integer >= 1"),
        ("[redis]\nscan_count = 0\n", "redis.scan_count: expected an integer >= 1, got 0"),
        ("[redis]\nkey_budget = -1\n", "redis.key_budget: expected an integer >= 1, got -1"),
        ('[redis]\nsocket_timeout = "0ms"\n', "redis.socket_timeout: expected a duration above 0"),
        ("[postgres]\nquery_chars = -5\n", "postgres.query_chars: expected an integer >= 0"),
        ('[postgres]\nconnect_timeout = "0s"\n', "postgres.connect_timeout: expected a duration"),
        ("[postgres]\nconnection_budget = 0\n", "postgres.connection_budget: expected an integer"),
        ('[http]\ntimeout = "0s"\n', "http.timeout: expected a duration above 0"),
        ("[http]\nmax_body = 0\n", "http.max_body: expected a size of at least 1 byte"),
        (
            '[[services]]\nname = "a"\nurl = "http://a"\nmax_per_event = 0\n',
            "services[0].max_per_event: expected an integer >= 1, got 0",
        ),
        ('[[processes]]\nname = "w"\npid = 0\n', "processes[0].pid: expected an integer >= 1"),
        (
            '[[processes]]\nname = "w"\npid = 1\nmemory_limit = 0\n',
            "processes[0].memory_limit: expected a size above 0",
        ),
        (
            '[secrets]\nstore = { kind = "env" }\nkeys = ["a b", ""]\n',
            "secrets.keys[0]: expected a key name of letters, digits, '_', '-' or '.' "
            "(no spaces), got 'a b'",
        ),
        (
            '[secrets]\nstore = { kind = "env" }\nkeys = ["JWT_SECRET", ""]\n',
            "secrets.keys[1]: expected a key name",
        ),
    ],
)
def test_nonsense_numbers_and_names_are_refused(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert str(info.value).startswith(f"ultrawatch.toml: {expected}")


def test_sensible_minimums_are_accepted() -> None:
    config = parse_config(
        "[dashboard]\nraise_after = 1\nclear_after = 1\n"
        "[http]\nconcurrency = 1\nmax_redirects = 0\n"
        "[postgres]\nquery_chars = 0\n"
        '[[services]]\nname = "a"\nurl = "http://a"\nflap_warn = 0\n'
    )
    assert config.http.concurrency == 1 and config.dashboard.raise_after == 1
    assert config.postgres is not None and config.postgres.query_chars == 0


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("host=127.0.0.1 password=S3cretPW bogus=1", 'invalid connection option "bogus"'),
        ("postgresql://u:S3cretPW@127.0.0.1:abc/db", "port: expected a number from 1 to 65535"),
        ("host=h password=S3cretPW sslmode=S3cretPW", "sslmode: expected one of disable"),
        ("postgresql://u:S3cretPW@h:1/db?sslmode=S3cretPW", "sslmode: expected one of disable"),
        ("host=h connect_timeout=soon", "connect_timeout: expected whole seconds"),
    ],
)
def test_dsn_libpq_cannot_use_is_a_config_error_without_the_password(
    write_config, dsn: str, expected: str
) -> None:
    path = write_config(f"[postgres]\ndsn = '{dsn}'\n")
    result = run_cli("config", "check", "--config", str(path))
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"ultrawatch: {path}: postgres.dsn: expected a libpq connection")
    assert expected in lines[0]
    assert "S3cretPW" not in result.stderr


def test_good_dsns_pass() -> None:
    for dsn in ("", "host=/tmp port=5432 dbname=x", "postgresql://u:pw@h:5432,h2:5433/db"):
        parse_config(f"[postgres]\ndsn = '{dsn}'\n")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[postgres]\ndsn = ["postgresql://mon:S3cretPW@db/um"]\n', "postgres.dsn"),
        ('[redis]\nurls = "redis://:S3cretPW@h:6379/0"\n', "redis.urls"),
        (
            '[postgres]\ndsn = "postgresql://mon:S3cretPW@db/um"\n'
            'connection_budget = "postgresql://mon:S3cretPW@db/um"\n',
            "postgres.connection_budget",
        ),
        ('[postgres]\ndsn = "host=db password=S3cretPW"\nname = "S3cretPW x"\n', "postgres.name"),
        ('[dashboard]\ninterval = "redis://:S3cretPW@h/0"\n', "dashboard.interval"),
        ('[dashboard]\nhistory = "host=db password=S3cretPW"\n', "dashboard.history"),
    ],
)
def test_type_errors_never_echo_a_password(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert str(info.value).startswith(f"ultrawatch.toml: {key}: expected ")
    assert "S3cretPW" not in str(info.value)
    assert "***" in str(info.value)
