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
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec

CONFIG_ENV = "ULTRAWATCH_CONFIG"
CONFIG_NAME = "ultrawatch.toml"


class ConfigError(Exception):
    """A configuration problem, already phrased for the engineer."""

    def __init__(self, source: str, path: str, message: str) -> None:
        self.source = source
        self.path = path
        self.message = message
        where = f"{source}: {path}: " if path else f"{source}: "
        super().__init__(where + message)


# ---------------------------------------------------------------- value types


class Duration(float):
    """Seconds, written as "500ms", "30s", "5m", "2h", "90d" or "1h30m"."""

    _PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
    _UNITS: typing.ClassVar[dict[str, float]] = {
        "ms": 0.001,
        "s": 1,
        "m": 60,
        "h": 3600,
        "d": 86400,
        "w": 604800,
    }

    @classmethod
    def parse(cls, value: object) -> Duration:
        if isinstance(value, bool):
            raise ValueError(f"expected a duration like '30s', '5m' or '90d', got {value!r}")
        if isinstance(value, int | float):
            if value < 0:
                raise ValueError(f"expected a positive duration, got {value!r}")
            return cls(value)
        if isinstance(value, str):
            text = value.strip().replace(" ", "")
            parts = cls._PART.findall(text)
            if parts and "".join(n + u for n, u in parts) == text:
                return cls(sum(float(n) * cls._UNITS[u] for n, u in parts))
        raise ValueError(f"expected a duration like '30s', '5m' or '90d', got {value!r}")

    def __str__(self) -> str:
        return format_duration(self)


class PositiveDuration(Duration):
    """A duration that must be above zero: an interval, window or timeout of 0 is a
    mistake. (Thresholds stay plain Durations: 0 there means "alert on everything".)"""

    @classmethod
    def parse(cls, value: object) -> PositiveDuration:
        seconds = Duration.parse(value)
        if seconds <= 0:
            raise ValueError(f"expected a duration above 0, got {value!r}")
        return cls(seconds)


# Counts with a floor: msgspec says "expected an integer >= 1, got 0".
Count = Annotated[int, msgspec.Meta(ge=0)]
PositiveCount = Annotated[int, msgspec.Meta(ge=1)]


class ByteSize(int):
    """Bytes, written as 1048576, "512MB", "1MiB" or "2GiB"."""

    _RE = re.compile(r"(\d+(?:\.\d+)?)\s*([kKMGT]i?B|B)?")
    _UNITS: typing.ClassVar[dict[str, int]] = {
        "B": 1,
        "kB": 1000,
        "KB": 1000,
        "MB": 1000**2,
        "GB": 1000**3,
        "TB": 1000**4,
        "KiB": 1024,
        "kiB": 1024,
        "MiB": 1024**2,
        "GiB": 1024**3,
        "TiB": 1024**4,
    }

    @classmethod
    def parse(cls, value: object) -> ByteSize:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return cls(value)
        if isinstance(value, str):
            m = cls._RE.fullmatch(value.strip())
            if m and (m.group(2) or "B") in cls._UNITS:
                return cls(int(float(m.group(1)) * cls._UNITS[m.group(2) or "B"]))
        raise ValueError(f"expected a size like '512MiB' or '2GiB', got {value!r}")


class HttpUrl(str):
    @classmethod
    def parse(cls, value: object) -> HttpUrl:
        if isinstance(value, str) and "@" in value.split("://", 1)[-1].split("/", 1)[0]:
            # The URL is shown and audited everywhere: no place for credentials.
            raise ValueError("expected an http(s) URL without user or password in it")
        if isinstance(value, str) and re.fullmatch(r"https?://[^/\s:@]+(:\d+)?(/\S*)?", value):
            return cls(value.rstrip("/"))
        raise ValueError(f"expected an http(s) URL, got {value!r}")


class UrlPath(str):
    @classmethod
    def parse(cls, value: object) -> UrlPath:
        if isinstance(value, str) and value.startswith("/") and not re.search(r"\s", value):
            return cls(value)
        raise ValueError(f"expected a path starting with '/', got {value!r}")


class Regex(str):
    @classmethod
    def parse(cls, value: object) -> Regex:
        if not isinstance(value, str):
            raise ValueError(f"expected a regular expression, got {value!r}")
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"expected a regular expression, got {value!r} ({e})") from None
        return cls(value)


class Name(str):
    """A name used in check ids: letters, digits, '-', '_' and '.'."""

    @classmethod
    def parse(cls, value: object) -> Name:
        if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
            return cls(value)
        raise ValueError(f"expected a name of letters, digits, '-', '_' or '.', got {value!r}")


class SecretKey(str):
    """A key in the secret store: an environment-variable-like name (or file name)."""

    @classmethod
    def parse(cls, value: object) -> SecretKey:
        if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", value):
            return cls(value)
        raise ValueError(
            f"expected a key name of letters, digits, '_', '-' or '.' (no spaces), got {value!r}"
        )


class Ratio(float):
    @classmethod
    def parse(cls, value: object) -> Ratio:
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
            return cls(value)
        raise ValueError(f"expected a ratio between 0 and 1, got {value!r}")


_CUSTOM: dict[type, Any] = {
    Duration: Duration.parse,
    PositiveDuration: PositiveDuration.parse,
    SecretKey: SecretKey.parse,
    ByteSize: ByteSize.parse,
    HttpUrl: HttpUrl.parse,
    UrlPath: UrlPath.parse,
    Regex: Regex.parse,
    Name: Name.parse,
    Ratio: Ratio.parse,
}


def _dec_hook(tp: type, obj: object) -> object:
    parse = _CUSTOM.get(tp)
    if parse is None:
        raise NotImplementedError(tp)
    return parse(obj)


def format_duration(seconds: float) -> str:
    s = float(seconds)
    if s < 1:
        return f"{s * 1000:.0f}ms"
    if s < 120:
        return f"{s:.0f}s" if s == int(s) else f"{s:.1f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    if s < 172800:
        return f"{s / 3600:.0f}h"
    return f"{s / 86400:.0f}d"


# ------------------------------------------------------------------- sections


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class DashboardConfig(_Section):
    interval: PositiveDuration = Duration(2)
    production: bool = False  # actions ask to type the target's name
    collector_timeout: PositiveDuration = Duration(5)  # per-collector deadline in a round
    raise_after: PositiveCount = 2  # consecutive rounds before an alert is raised (TUI)
    clear_after: PositiveCount = 2  # consecutive rounds before it clears
    history: PositiveDuration = Duration(900)  # window for trends and sparklines
    handoff_file: str = "~/.local/state/ultrawatch/handoff.txt"  # TUI `w` writes it here
    snooze: PositiveDuration = Duration(900)  # how long TUI `z` silences an alert


class Invariant(_Section):
    name: Name
    sql: str
    warn_above: float | None = None
    crit_above: float | None = None
    warn_below: float | None = None
    crit_below: float | None = None


class PostgresConfig(_Section):
    dsn: str = ""  # empty: libpq defaults and PG* environment variables
    name: Name = Name("main")
    connection_budget: PositiveCount | None = None  # the platform's pooled total
    statement_timeout: Duration = Duration(2)
    connect_timeout: PositiveDuration = Duration(3)
    connections_warn: Ratio = Ratio(0.8)
    connections_crit: Ratio = Ratio(0.95)
    idle_in_transaction_warn: Duration = Duration(30)
    idle_in_transaction_crit: Duration = Duration(300)
    blocked_warn: Duration = Duration(10)
    blocked_crit: Duration = Duration(60)
    query_chars: Count = 200  # query text is truncated to this for display
    invariants: list[Invariant] = []


class RedisConfig(_Section):
    url: str | None = None  # default: $REDIS_URL, else redis://localhost:6379/0
    urls: list[str] | None = None  # several independent masters (Redlock)
    cluster: bool = False
    lock_patterns: list[str] = msgspec.field(default_factory=lambda: ["lock:*"])
    stale_after: Duration = Duration(30)
    scan_count: PositiveCount = 1000
    key_budget: PositiveCount = 200_000  # keys scanned per round at most; resumes next round
    memory_warn: Ratio = Ratio(0.8)
    memory_crit: Ratio = Ratio(0.95)
    # keyspace notifications: "use" them if the server has them on, "enable"
    # them (CONFIG SET) when off, or "off" to always SCAN.
    keyspace_events: Literal["use", "enable", "off"] = "use"
    reconcile_every: PositiveDuration = Duration(60)
    socket_timeout: PositiveDuration = Duration(2)
    ssl_ca_file: str | None = None

    def resolved_urls(self) -> list[str]:
        if self.urls:
            return list(self.urls)
        return [self.url or os.environ.get("REDIS_URL") or "redis://localhost:6379/0"]


class ProcessMatch(_Section):
    cmdline: Regex | None = None
    pid: PositiveCount | None = None
    pidfile: str | None = None


class DrainConfig(_Section):
    path: UrlPath | None = None
    signal: str | None = None
    timeout: PositiveDuration = Duration(60)
    undrain_path: UrlPath = UrlPath("/admin/undrain")  # `ultrawatch undrain` POSTs here


class ReloadConfig(_Section):
    path: UrlPath | None = UrlPath("/admin/reload-secrets")
    signal: str | None = None


class ServiceConfig(_Section):
    name: Name
    url: HttpUrl
    health_path: UrlPath = UrlPath("/health")
    detail_paths: list[UrlPath] = []
    pg_application_name: str | None = None
    connection_budget: PositiveCount | None = None
    process: ProcessMatch | None = None
    drain: DrainConfig | None = None
    reload: ReloadConfig | None = None
    latency_warn: Duration = Duration(0.5)
    latency_crit: Duration | None = None
    max_per_event: PositiveCount = 10
    flap_warn: Count = 6  # health state changes in the history window that warn (0: never)
    memory_limit: ByteSize | None = None


class ProcessConfig(_Section):
    name: Name
    cmdline: Regex | None = None
    pid: PositiveCount | None = None
    pidfile: str | None = None
    memory_limit: ByteSize | None = None
    growth_warn: ByteSize = ByteSize(1024 * 1024)  # RSS slope per minute (R^2 >= 0.8)
    growth_min_span: Duration = Duration(300)  # samples must cover this before judging growth
    growth_crit_ttl: Duration = Duration(3600)  # projected time to the limit: critical below


class HttpConfig(_Section):
    concurrency: PositiveCount = 64
    timeout: PositiveDuration = Duration(5)
    max_body: ByteSize = ByteSize(1024 * 1024)
    max_redirects: Count = 5
    verify: bool = True
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    engine: Literal["aiohttp", "httpx"] = "aiohttp"  # httpx costs ms of CPU per request


class SecretStoreConfig(_Section):
    kind: Literal["dotenv", "dir", "env"] = "dotenv"
    path: str | None = None


class ProbeConfig(_Section):
    service: Name
    path: UrlPath


class SecretsConfig(_Section):
    store: SecretStoreConfig = SecretStoreConfig()
    keys: list[SecretKey] = msgspec.field(
        default_factory=lambda: [SecretKey("JWT_SECRET"), SecretKey("JWT_REFRESH_SECRET")]
    )
    algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    max_age: Duration = Duration(90 * 86400)
    probe: ProbeConfig | None = None
    probe_every: PositiveDuration = Duration(300)  # forged-token probe re-runs at most this often
    wordlist: str | None = None
    access_token_lifetime: PositiveDuration | None = None
    grace_period: Duration | None = None  # default: access_token_lifetime, else 15m
    # rotation waits this long for services' new key
    verify_timeout: PositiveDuration = Duration(10)


class ActionsConfig(_Section):
    enabled: bool = True
    audit_log: str = "~/.local/state/ultrawatch/audit.jsonl"


class Config(_Section):
    dashboard: DashboardConfig = DashboardConfig()
    postgres: PostgresConfig | None = None
    redis: RedisConfig | None = None
    services: list[ServiceConfig] = []
    processes: list[ProcessConfig] = []
    secrets: SecretsConfig | None = None
    actions: ActionsConfig = ActionsConfig()
    http: HttpConfig = HttpConfig()

    def service(self, name: str) -> ServiceConfig | None:
        return next((s for s in self.services if s.name == name), None)

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


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    path = find_config(explicit)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), "", f"cannot read: {e}") from None
    return parse_config(text, str(path))


def parse_config(text: str, source: str = CONFIG_NAME) -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, "", f"not valid TOML: {e}") from None
    try:
        config = msgspec.convert(raw, Config, dec_hook=_dec_hook)
    except msgspec.ValidationError as e:
        path, message = _explain(str(e), raw)
        raise ConfigError(source, path, _redact_text(message, raw)) from None
    _check_consistency(config, source)
    return config


def _check_consistency(config: Config, source: str) -> None:
    """Rules msgspec cannot express: cross references, exactly-one-of."""
    seen: set[str] = set()
    for i, svc in enumerate(config.services):
        if svc.name in seen:
            raise ConfigError(source, f"services[{i}].name", f"duplicate service name {svc.name!r}")
        seen.add(svc.name)
        if svc.process is not None:
            _exactly_one(
                source, f"services[{i}].process", svc.process, ("cmdline", "pid", "pidfile")
            )
        if svc.drain is not None:
            _exactly_one(source, f"services[{i}].drain", svc.drain, ("path", "signal"))
    names: set[str] = set()
    for i, proc in enumerate(config.processes):
        if proc.name in names:
            raise ConfigError(source, f"processes[{i}].name", f"duplicate name {proc.name!r}")
        names.add(proc.name)
        _exactly_one(source, f"processes[{i}]", proc, ("cmdline", "pid", "pidfile"))
    if config.postgres is not None:
        if config.postgres.statement_timeout < 0.001:  # 0 would switch the timeout off
            raise ConfigError(
                source,
                "postgres.statement_timeout",
                "expected a duration of at least 1ms (0 would switch the timeout off), "
                f"got {config.postgres.statement_timeout * 1000:g}ms",
            )
        inv_names: set[str] = set()
        for i, inv in enumerate(config.postgres.invariants):
            if inv.name in inv_names:
                raise ConfigError(
                    source, f"postgres.invariants[{i}].name", f"duplicate name {inv.name!r}"
                )
            inv_names.add(inv.name)
    if config.http.max_body < 1:
        raise ConfigError(source, "http.max_body", "expected a size of at least 1 byte, got 0")
    limits = [(f"services[{i}]", s.memory_limit) for i, s in enumerate(config.services)]
    limits += [(f"processes[{i}]", p.memory_limit) for i, p in enumerate(config.processes)]
    for where, limit in limits:
        if limit is not None and limit < 1:
            raise ConfigError(source, f"{where}.memory_limit", "expected a size above 0, got 0")
    if config.postgres is not None and config.postgres.dsn:
        _check_dsn(source, config.postgres.dsn)
    if config.redis is not None and config.redis.url and config.redis.urls:
        raise ConfigError(source, "redis.urls", "give either url or urls, not both")
    if config.redis is not None:
        given = [("redis.url", config.redis.url)] if config.redis.url else []
        given += [(f"redis.urls[{i}]", u) for i, u in enumerate(config.redis.urls or [])]
        for path, url in given:
            _check_redis_url(source, path, url)
    s = config.secrets
    if s is not None:
        if s.store.kind in ("dotenv", "dir") and not s.store.path:
            raise ConfigError(
                source, "secrets.store.path", f"required for a {s.store.kind!r} store"
            )
        if s.probe is not None and config.service(s.probe.service) is None:
            known = ", ".join(repr(x.name) for x in config.services) or "none configured"
            raise ConfigError(
                source,
                "secrets.probe.service",
                f"expected the name of a configured service ({known}), got {s.probe.service!r}",
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
            source, path, f"expected a redis:// or rediss:// URL, got {_redact_url(url)!r}"
        )


def _check_dsn(source: str, dsn: str) -> None:
    """A DSN libpq cannot parse is a config error (exit 3), not an unreachable server.

    libpq's own parser decides; psycopg is imported only for a configured DSN, which
    the PostgreSQL collector will need anyway."""
    from psycopg import Error
    from psycopg.conninfo import conninfo_to_dict

    from collectors.redact import dsn_secrets, mask_dsn, scrub

    try:
        params = conninfo_to_dict(dsn)
        why = _dsn_values(params)
    except Error as e:
        why = " ".join(str(e).split())
    if why:
        shown = f"expected a libpq connection string: {why} (in {mask_dsn(dsn)!r})"
        raise ConfigError(source, "postgres.dsn", scrub(shown, dsn_secrets(dsn)))


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


def _redact_url(url: str) -> str:
    """The URL with any password replaced by *** (a lone user part may be a password)."""
    url = re.sub(r"(?i)(password=)[^&#]*", r"\1***", url)  # ?password=... too
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***" if "@" in url else url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:***" if colon else "***"
    return f"{scheme}://{shown}@{host}{slash}{tail}"


def _exactly_one(source: str, path: str, obj: object, keys: tuple[str, ...]) -> None:
    given = [k for k in keys if getattr(obj, k) is not None]
    if len(given) != 1:
        wanted = " or ".join(keys)
        got = ", ".join(given) if given else "none"
        raise ConfigError(source, path, f"expected exactly one of {wanted}, got {got}")


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
    every `password=`, and every password the file's DSN and Redis URLs hold, go."""
    from collectors.redact import dsn_secrets, mask_dsn, scrub

    text = _URL_IN_TEXT.sub(lambda m: _redact_url(m.group()), text)
    text = mask_dsn(text) if "://" not in text else text
    secrets: list[str] = []
    for value in _strings(raw.get("postgres")) + _strings(raw.get("redis")):
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
