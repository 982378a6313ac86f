"""ultrawatch.toml + environment -> validated, immutable settings.

Validation is msgspec's (fast to import, which keeps `ultrawatch check` quick);
its messages are rewritten so every error names the file, the key path and
what was expected: `ultrawatch.toml: services[2].url: expected an http(s) URL,
got 'localhost:3000'`.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from collectors.core.settings import (
    ConfigError,
    HttpConfig,
    HttpUrl,
    Name,
    ProcessMatch,
    Regex,
    SecretKey,
    Section,
    UrlPath,
    dec_hook,
    exactly_one,
    redact_url,
)
from collectors.core.units import (
    ByteSize,
    Count,
    Duration,
    Interval,
    Number,
    PositiveCount,
    PositiveDuration,
    Ratio,
    ScanCount,
    Timeout,
    format_duration,
)
from collectors.pgbouncer.config import PgBouncerConfig
from collectors.postgres.config import Invariant, PostgresConfig
from collectors.processes.config import ProcessConfig
from collectors.redis.config import RedisConfig
from collectors.secrets.config import ProbeConfig, SecretsConfig, SecretStoreConfig
from collectors.services.config import DrainConfig, ReloadConfig, ServiceConfig

# Re-exported: the dashboard and tests take the section types from here.
__all__ = [
    "AlertmanagerConfig",
    "ByteSize",
    "Config",
    "ConfigError",
    "Count",
    "DrainConfig",
    "Duration",
    "HttpConfig",
    "HttpUrl",
    "Interval",
    "Invariant",
    "Name",
    "Number",
    "PgBouncerConfig",
    "PositiveCount",
    "PositiveDuration",
    "PostgresConfig",
    "ProbeConfig",
    "ProcessConfig",
    "ProcessMatch",
    "Ratio",
    "RedisConfig",
    "Regex",
    "ReloadConfig",
    "ScanCount",
    "SecretKey",
    "SecretStoreConfig",
    "SecretsConfig",
    "ServiceConfig",
    "Timeout",
    "UrlPath",
    "check_targets",
    "dec_hook",
    "format_duration",
    "load_config",
    "parse_config",
]

CONFIG_ENV = "ULTRAWATCH_CONFIG"
CONFIG_NAME = "ultrawatch.toml"
DEFAULT_PLATFORM = "ultrawatch"  # the platform of a config from a pipe or stdin


# ------------------------------------------------------------------- sections


class DashboardConfig(Section, frozen=True):
    interval: Interval = Interval(2)
    production: bool = False  # actions ask to type the target's name
    collector_timeout: Timeout = Timeout(5)  # per-collector deadline in a round
    raise_after: PositiveCount = 2  # consecutive rounds before an alert is raised (TUI)
    clear_after: PositiveCount = 2  # consecutive rounds before it clears
    history: PositiveDuration = PositiveDuration(900)  # window for trends and sparklines
    handoff_file: str = "~/.local/state/ultrawatch/handoff.txt"  # TUI `w` writes it here
    snooze: PositiveDuration = PositiveDuration(900)  # how long TUI `z` silences an alert
    # Names the platform in /metrics and alert labels (a `platform` label on every
    # series), so two instances' textfiles on one node_exporter never collide. None:
    # load_config fills in the config file's stem (see default_platform).
    platform: Name | None = None


class ActionsConfig(Section, frozen=True):
    enabled: bool = True
    audit_log: str = "~/.local/state/ultrawatch/audit.jsonl"


class AlertmanagerConfig(Section, frozen=True):
    """Where `serve` (and the TUI with --alertmanager) send alerts, and where silences
    are made. Credentials here are secrets: the registry scrubs them everywhere."""

    url: HttpUrl | None = None
    urls: list[HttpUrl] | None = None  # an HA pair (or more): every alert goes to each
    resend: PositiveDuration = PositiveDuration(60)  # open alerts re-sent this often
    timeout: Timeout = Timeout(5)  # per request
    username: str | None = None  # basic auth, with password
    password: str | None = None
    bearer_token: str | None = None  # or a bearer token (not both)
    ca_file: str | None = None  # CA bundle for an https:// Alertmanager
    tui: bool = False  # the TUI sends alerts too (like `ultrawatch --alertmanager`)
    ack_for: PositiveDuration = PositiveDuration(4 * 3600)  # silence made by TUI `a`

    @property
    def all_urls(self) -> list[str]:
        return [str(u) for u in ([self.url] if self.url else (self.urls or []))]


class Config(Section, frozen=True):
    dashboard: DashboardConfig = DashboardConfig()
    postgres: PostgresConfig | None = None
    redis: RedisConfig | None = None
    services: list[ServiceConfig] = msgspec.field(default_factory=list)
    processes: list[ProcessConfig] = msgspec.field(default_factory=list)
    secrets: SecretsConfig | None = None
    # [pgbouncer] (one) or [[pgbouncer]] (one or more, each its own name)
    pgbouncer: PgBouncerConfig | list[PgBouncerConfig] | None = None
    actions: ActionsConfig = ActionsConfig()
    http: HttpConfig = HttpConfig()
    alertmanager: AlertmanagerConfig | None = None

    def service(self, name: str) -> ServiceConfig | None:
        return next((s for s in self.services if s.name == name), None)

    @property
    def platform(self) -> str:
        """The `platform` label: `[dashboard] platform`, else (a config not read from a
        file: a test's, a recording's from before the key) DEFAULT_PLATFORM."""
        return self.dashboard.platform or DEFAULT_PLATFORM

    @property
    def audit_log_path(self) -> Path:
        return Path(os.path.expanduser(self.actions.audit_log))


# -------------------------------------------------------------------- loading


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The first of --config, $ULTRAWATCH_CONFIG, ./ultrawatch.toml, user config dir."""
    if explicit:
        return _given(Path(explicit), "--config")
    env = os.environ.get(CONFIG_ENV)
    if env:
        return _given(Path(env), f"${CONFIG_ENV}")
    candidates = [Path(CONFIG_NAME), user_config_path()]
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in candidates)
    raise ConfigError(
        CONFIG_NAME,
        "",
        f"no configuration found (looked at --config, ${CONFIG_ENV}, {looked}); "
        "`ultrawatch config example > ultrawatch.toml` writes one",
    )


def _given(path: Path, by: str) -> Path:
    # Any readable non-directory will do: a pipe too (`--config <(envsubst < t.toml)`).
    if not path.exists():
        raise ConfigError(str(path), "", f"no such file (given by {by})")
    if path.is_dir():
        raise ConfigError(str(path), "", f"is a directory, expected a TOML file (given by {by})")
    return path


def user_config_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("ultrawatch")) / CONFIG_NAME


def load_config(explicit: str | os.PathLike[str] | None = None, *, watch: bool = False) -> Config:
    """The configuration found (see find_config), validated. `watch`: it must have
    something to check (see check_targets)."""
    path = find_config(explicit)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), "", f"cannot read: {e}") from None
    config = parse_config(text, str(path))
    if config.dashboard.platform is None:
        dashboard = msgspec.structs.replace(config.dashboard, platform=default_platform(path))
        config = msgspec.structs.replace(config, dashboard=dashboard)
    if watch:
        check_targets(config, str(path))
    return config


def default_platform(path: Path) -> Name:
    """The platform a config file names by default: its stem (`shop-eu` for
    `shop-eu.toml`), made a valid name (other characters become '-'); a config read
    from a pipe or stdin (`--config <(...)`, `/dev/stdin`) has no name of its own:
    DEFAULT_PLATFORM."""
    special = path.is_absolute() and path.parts[1:2] in (("dev",), ("proc",))
    if special or not path.is_file():
        return Name(DEFAULT_PLATFORM)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).lstrip("_.-")
    return Name(stem or DEFAULT_PLATFORM)


# No section is nested deeper than a few tables; past this the file is not a config.
MAX_DEPTH = 32


def parse_config(text: str, source: str = CONFIG_NAME) -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, "", f"not valid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(source, "", _too_deep()) from None
    if _depth(raw) > MAX_DEPTH:
        raise ConfigError(source, "", _too_deep())
    try:
        config = msgspec.convert(raw, Config, dec_hook=dec_hook)
    except msgspec.ValidationError as e:
        path, message = _explain(str(e), raw)
        raise ConfigError(source, path, _redact_text(message, raw)) from None
    _check_consistency(config, source)
    return config


def _too_deep() -> str:
    return f"not a configuration: tables or arrays nested more than {MAX_DEPTH} levels deep"


def _depth(value: Any) -> int:
    """How deeply tables and arrays nest in `value` (iteratively: no recursion limit)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            deepest = max(deepest, level + 1)
            if level + 1 <= MAX_DEPTH:
                stack.extend((child, level + 1) for child in children)
    return deepest


def _check_consistency(config: Config, source: str) -> None:
    """Rules msgspec cannot express: cross references, exactly-one-of. The first
    problem found is the one reported, in this order."""
    _check_services(config, source)
    _check_processes(config, source)
    _check_id_collisions(config, source)
    _check_postgres(config, source)
    if config.http.max_body < 1:
        raise ConfigError(source, "http.max_body", "expected a size of at least 1 byte, got 0")
    _check_memory_limits(config, source)
    if config.postgres is not None and config.postgres.dsn:
        _check_dsn(source, config.postgres.dsn)
    _check_pgbouncer(config, source)
    _check_redis(config, source)
    _check_secrets(config, source)
    _check_alertmanager(config, source)
    _check_paths(config, source)


# Sections that set how ultrawatch works, not what it watches.
_NOT_TARGETS = ("dashboard", "actions", "http", "alertmanager")


def check_targets(config: Config, source: str) -> None:
    """A config that watches nothing would print "OK" with zero checks forever: the
    commands that watch (`check`, the TUI, `record`, `config check`) refuse it. (An
    action names its own target; a test may parse a config of one section.)"""
    sections = [f for f in Config.__struct_fields__ if f not in _NOT_TARGETS]
    if not any(getattr(config, f) for f in sections):
        named = [f"[[{f}]]" if isinstance(getattr(config, f), list) else f"[{f}]" for f in sections]
        raise ConfigError(
            source, "", f"nothing to check: expected at least one of {', '.join(named)}"
        )


# What a configured path must be: "file" (exists, a regular file or a pipe: read now),
# "not-dir" (may not exist yet; written or read later, but never a directory) or
# "dir" (may not exist yet; if it does, a directory).
PathKind = Literal["file", "not-dir", "dir"]


def _check_paths(config: Config, source: str) -> None:
    given: list[tuple[str, str | None, PathKind]] = [
        ("dashboard.handoff_file", config.dashboard.handoff_file, "not-dir"),
        ("actions.audit_log", config.actions.audit_log, "not-dir"),
        ("http.ca_file", config.http.ca_file, "file"),
        ("http.client_cert", config.http.client_cert, "file"),
        ("http.client_key", config.http.client_key, "file"),
    ]
    if config.alertmanager is not None:
        given.append(("alertmanager.ca_file", config.alertmanager.ca_file, "file"))
    for i, svc in enumerate(config.services):
        pidfile = svc.process.pidfile if svc.process is not None else None
        given.append((f"services[{i}].process.pidfile", pidfile, "not-dir"))
    for i, proc in enumerate(config.processes):
        given.append((f"processes[{i}].pidfile", proc.pidfile, "not-dir"))
    if config.redis is not None:
        given.append(("redis.ssl_ca_file", config.redis.ssl_ca_file, "file"))
    if config.secrets is not None:
        store = config.secrets.store
        kind: PathKind = "dir" if store.kind == "dir" else "not-dir"
        given.append(("secrets.store.path", store.path if store.kind != "env" else None, kind))
        given.append(("secrets.wordlist", config.secrets.wordlist, "file"))
    for key, value, want in given:
        if value:
            _check_path(source, key, value, want)


def _check_path(source: str, key: str, value: str, want: PathKind) -> None:
    path = Path(os.path.expanduser(value))
    if want == "file" and not path.exists():
        raise ConfigError(source, key, f"expected an existing file, got {value!r} (no such file)")
    if want in ("file", "not-dir") and path.is_dir():
        raise ConfigError(source, key, f"expected a file, got {value!r} (a directory)")
    if want == "dir" and path.exists() and not path.is_dir():
        raise ConfigError(source, key, f"expected a directory, got {value!r} (not a directory)")


def _check_services(config: Config, source: str) -> None:
    seen: set[str] = set()
    for i, svc in enumerate(config.services):
        if svc.name in seen:
            raise ConfigError(source, f"services[{i}].name", f"duplicate service name {svc.name!r}")
        seen.add(svc.name)
        if svc.process is not None:
            exactly_one(
                source, f"services[{i}].process", svc.process, ("cmdline", "pid", "pidfile")
            )
        if svc.drain is not None:
            exactly_one(source, f"services[{i}].drain", svc.drain, ("path", "signal"))


def _check_processes(config: Config, source: str) -> None:
    names: set[str] = set()
    for i, proc in enumerate(config.processes):
        if proc.name in names:
            raise ConfigError(source, f"processes[{i}].name", f"duplicate name {proc.name!r}")
        names.add(proc.name)
        exactly_one(source, f"processes[{i}]", proc, ("cmdline", "pid", "pidfile"))


def _check_id_collisions(config: Config, source: str) -> None:
    """Two things one check id would name: refused, never one silently replacing the
    other."""
    for i, svc in enumerate(config.services):
        if svc.name == "total" and svc.connection_budget is not None:
            raise ConfigError(
                source,
                f"services[{i}].name",
                "expected another name: a service 'total' with a connection_budget would be "
                "postgres.budget.total, the platform's budget check",
            )
    watched = {s.name: i for i, s in enumerate(config.services) if s.process is not None}
    for i, proc in enumerate(config.processes):
        if proc.name in watched:
            raise ConfigError(
                source,
                f"processes[{i}].name",
                f"expected another name: services[{watched[proc.name]}] {proc.name!r} "
                f"watches its process as process.{proc.name}.*; rename this entry or drop "
                "the service's `process`",
            )


def _check_postgres(config: Config, source: str) -> None:
    pg = config.postgres
    if pg is None:
        return
    if pg.statement_timeout < 0.001:  # 0 would switch the timeout off
        raise ConfigError(
            source,
            "postgres.statement_timeout",
            "expected a duration of at least 1ms (0 would switch the timeout off), "
            f"got {pg.statement_timeout * 1000:g}ms",
        )
    if pg.statement_timeout > Timeout.ceiling:
        raise ConfigError(
            source,
            "postgres.statement_timeout",
            f"expected a duration of at most {format_duration(Timeout.ceiling)}, "
            f"got {format_duration(pg.statement_timeout)}",
        )
    inv_names: set[str] = set()
    for i, inv in enumerate(pg.invariants):
        if inv.name in inv_names:
            raise ConfigError(
                source, f"postgres.invariants[{i}].name", f"duplicate name {inv.name!r}"
            )
        inv_names.add(inv.name)


def _check_memory_limits(config: Config, source: str) -> None:
    limits = [(f"services[{i}]", s.memory_limit) for i, s in enumerate(config.services)]
    limits += [(f"processes[{i}]", p.memory_limit) for i, p in enumerate(config.processes)]
    for where, limit in limits:
        if limit is not None and limit < 1:
            raise ConfigError(source, f"{where}.memory_limit", "expected a size above 0, got 0")


def _check_redis(config: Config, source: str) -> None:
    rd = config.redis
    if rd is None:
        return
    if rd.url and rd.urls:
        raise ConfigError(source, "redis.urls", "give either url or urls, not both")
    given = [("redis.url", rd.url)] if rd.url else []
    given += [(f"redis.urls[{i}]", u) for i, u in enumerate(rd.urls or [])]
    for path, url in given:
        _check_redis_url(source, path, url)


def _check_secrets(config: Config, source: str) -> None:
    s = config.secrets
    if s is None:
        return
    if s.store.kind in ("dotenv", "dir") and not s.store.path:
        raise ConfigError(source, "secrets.store.path", f"required for a {s.store.kind!r} store")
    if s.probe is not None and config.service(s.probe.service) is None:
        known = ", ".join(repr(x.name) for x in config.services) or "none configured"
        raise ConfigError(
            source,
            "secrets.probe.service",
            f"expected the name of a configured service ({known}), got {s.probe.service!r}",
        )


def _check_alertmanager(config: Config, source: str) -> None:
    am = config.alertmanager
    if am is None:
        return
    if am.url and am.urls:
        raise ConfigError(source, "alertmanager.urls", "give either url or urls, not both")
    if not am.all_urls:
        raise ConfigError(source, "alertmanager.url", "required: the Alertmanager's URL (or urls)")
    if len(set(am.all_urls)) != len(am.all_urls):
        raise ConfigError(source, "alertmanager.urls", "expected distinct URLs")
    if (am.username is None) != (am.password is None):
        raise ConfigError(
            source, "alertmanager.password", "basic auth needs both username and password"
        )
    if am.bearer_token is not None and am.username is not None:
        raise ConfigError(
            source,
            "alertmanager.bearer_token",
            "give either basic auth or a bearer token, not both",
        )
    if am.resend < 1:
        raise ConfigError(
            source,
            "alertmanager.resend",
            f"expected a duration of at least 1s, got {format_duration(am.resend)}",
        )


def _check_redis_url(source: str, path: str, url: str) -> None:
    """A URL the Redis client would choke on is a config error, not a traceback."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("redis", "rediss") and bool(parts.netloc)
        ok = ok and (parts.port is None or parts.port > 0)  # .port raises on junk
        db = parts.path.strip("/")
        ok = ok and (not db or db.isdigit())
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(
            source, path, f"expected a redis:// or rediss:// URL, got {redact_url(url)!r}"
        )


def _check_pgbouncer(config: Config, source: str) -> None:
    from collectors.pgbouncer.config import instances

    several = isinstance(config.pgbouncer, list)
    found = instances(config.pgbouncer)
    if several and not found:
        raise ConfigError(source, "pgbouncer", "expected at least one [[pgbouncer]] table")
    names: set[str] = set()
    for i, pb in enumerate(found):
        at = f"pgbouncer[{i}]" if several else "pgbouncer"
        if pb.name in names:
            raise ConfigError(
                source,
                f"{at}.name",
                f"expected a name of its own for each [[pgbouncer]], got {pb.name!r} twice "
                "(the default is 'main')",
            )
        names.add(pb.name)
        _check_one_pgbouncer(pb, source, at)


def _check_one_pgbouncer(pb: PgBouncerConfig, source: str, at: str) -> None:
    _check_dsn(source, pb.dsn, f"{at}.dsn")
    from psycopg.conninfo import conninfo_to_dict

    dbname = conninfo_to_dict(pb.dsn).get("dbname")
    if dbname not in (None, "pgbouncer"):
        raise ConfigError(
            source,
            f"{at}.dsn",
            f"expected the admin console, database 'pgbouncer', got database {dbname!r} "
            "(the pooled databases are watched through it)",
        )
    if pb.waiting_warn > pb.waiting_crit:
        raise ConfigError(
            source,
            f"{at}.waiting_warn",
            f"expected at most waiting_crit ({format_duration(pb.waiting_crit)}), "
            f"got {format_duration(pb.waiting_warn)}",
        )


def _check_dsn(source: str, dsn: str, key: str = "postgres.dsn") -> None:
    """A DSN libpq cannot parse is a config error (exit 3), not an unreachable server.

    libpq's own parser decides; psycopg is imported only for a configured DSN, which
    the PostgreSQL collector will need anyway."""
    from psycopg import Error
    from psycopg.conninfo import conninfo_to_dict

    from collectors.core.redact import dsn_secrets, mask_dsn, scrub

    try:
        params = conninfo_to_dict(dsn)
        why = _dsn_values(params)
    except Error as e:
        why = " ".join(str(e).split())
    if why:
        shown = f"expected a libpq connection string: {why} (in {mask_dsn(dsn)!r})"
        raise ConfigError(source, key, scrub(shown, dsn_secrets(dsn)))


_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _dsn_values(params: dict[str, Any]) -> str:
    """What libpq's parser lets through but every connection would refuse."""
    for port in str(params.get("port") or "").split(","):
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            return f"port: expected a number from 1 to 65535, got {port!r}"
    mode = params.get("sslmode")
    if mode is not None and mode not in _SSLMODES:
        return f"sslmode: expected one of {', '.join(_SSLMODES)}, got {mode!r}"
    timeout = str(params.get("connect_timeout") or "0")
    if not timeout.lstrip("-").isdigit():
        return f"connect_timeout: expected whole seconds, got {timeout!r}"
    return ""


# ---------------------------------------------------- msgspec -> human errors

_AT = re.compile(r"^(?P<msg>.*) - at `\$(?P<path>[^`]*)`$", re.S)
_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")
_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "array": "a list",
    "object": "a table",
    "null": "nothing",
}


def _explain(error: str, raw: dict[str, Any]) -> tuple[str, str]:
    m = _AT.match(error)
    msg, dotted = (m.group("msg"), m.group("path")) if m else (error, "")
    tokens: list[str | int] = [
        name if name else int(index) for name, index in _TOKEN.findall(dotted)
    ]
    value = _lookup(raw, tokens)

    if unknown := re.match(r"Object contains unknown field `(.+)`", msg):
        key = unknown.group(1)
        fields = _fields_at(tokens)
        hint = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
        message = "unknown key"
        message += f"; did you mean {hint[0]!r}?" if hint else ""
        if fields and not hint:
            message += f"; expected one of {', '.join(sorted(fields))}"
        return _render([*tokens, key]), message
    if missing := re.match(r"Object missing required field `(.+)`", msg):
        return _render([*tokens, missing.group(1)]), "required key is missing"
    if typ := re.match(r"Expected `([^`]+)`(.*?)(, got `([^`]+)`)?$", msg):
        kinds = [t.strip() for t in typ.group(1).split("|") if t.strip() != "null"]
        wanted = " or ".join(_TYPE_WORDS.get(t, t) for t in kinds)
        bound = typ.group(2).strip()
        return _render(tokens), f"expected {wanted}{' ' + bound if bound else ''}, got {value!r}"
    if re.match(r"Invalid enum value", msg):
        choices = _choices_at(tokens)
        options = ", ".join(repr(c) for c in choices) if choices else "a known value"
        return _render(tokens), f"expected one of {options}, got {value!r}"
    return _render(tokens), msg[0].lower() + msg[1:] if msg else msg


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")


def _redact_text(text: str, raw: dict[str, Any]) -> str:
    """An error quotes the value it refused, which may be a DSN or URL with its
    password, even when it sits in the wrong key or type: every URL's password,
    every `password=`, and every password any DSN or URL in the file holds, go (in
    whichever section: a new target's connection strings are covered too)."""
    from collectors.core.redact import dsn_secrets, mask_dsn, scrub

    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)
    text = mask_dsn(text) if "://" not in text else text
    secrets: list[str] = []
    for value in _strings(raw):
        secrets += dsn_secrets(value)
    return scrub(text, secrets)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _render(tokens: list[str | int]) -> str:
    out = ""
    for t in tokens:
        out += f"[{t}]" if isinstance(t, int) else (f".{t}" if out else t)
    return out


def _lookup(raw: Any, tokens: list[str | int]) -> Any:
    for t in tokens:
        try:
            raw = raw[t]
        except (KeyError, IndexError, TypeError):
            return None
    return raw


def _type_at(tokens: list[str | int]) -> Any:
    tp: Any = Config
    for t in tokens:
        tp = _unwrap(tp)
        if isinstance(t, int):
            args = typing.get_args(tp)
            tp = args[0] if args else None
        elif isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            hints = typing.get_type_hints(tp)
            tp = hints.get(t)
        else:
            return None
    return _unwrap(tp)


def _unwrap(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _fields_at(tokens: list[str | int]) -> list[str]:
    tp = _type_at(tokens)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return list(tp.__struct_fields__)
    return []


def _choices_at(tokens: list[str | int]) -> list[Any]:
    tp = _type_at(tokens)
    if typing.get_origin(tp) is Literal:
        return list(typing.get_args(tp))
    return []
