"""JWT secret audit: strength, distinctness, age, services' key fingerprints, and
the opt-in forged-token probe.

Secret values stay inside this module's locals: readings carry lengths,
fingerprints and reasons only. One Reading per round, target "store".

The collector takes its own `[secrets]` section, the shared HTTP client and the
services it reads fingerprints from and probes (`KeyService` refs, built by
`collectors.registry`): it never sees the rest of the configuration.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec.structs import replace

from collectors.core.http import HttpClient
from collectors.core.model import Reading
from collectors.core.redact import printable
from collectors.core.units import iso_now
from collectors.core.units import parse_iso as parse_time
from collectors.secrets.config import (
    SECURITY_PATH,
    KeyService,
    SecretsConfig,
    grace_period,
)
from collectors.secrets.data import (
    AgeSource,
    KeyInfo,
    Probe,
    Rotation,
    SecretsData,
    ServiceKeys,
    StoreInfo,
    Strength,
    Wordlist,
)
from collectors.secrets.forge import forged_tokens, public_keys
from collectors.secrets.store import SecretStore, StoreError, fingerprint, open_store
from collectors.secrets.weak import (
    MIN_BYTES,
    entropy_bits,
    known_weak,
    load_wordlist,
    low_entropy,
)

__all__ = [
    "PREVIOUS",
    "ROTATED_AT",
    "SECURITY_PATH",
    "KeyReport",
    "SecretsCollector",
    "StoreMissing",
    "check_exists",
    "fetch_fingerprints",
    "forged_tokens",
    "iso_now",
    "parse_security",
    "parse_time",
    "read_values",
]

PREVIOUS = "_PREVIOUS"
ROTATED_AT = "_ROTATED_AT"


class StoreMissing(StoreError):
    """The configured store file or directory does not exist."""


def check_exists(store: SecretStore) -> None:
    """Raise StoreMissing for a dotenv file or dir store that is not there: reading it
    as empty would report every key "missing", and a rotation would create it."""
    if store.path is None or store.exists():
        return
    what = "directory" if store.kind == "dir" else "file"
    raise StoreMissing(f"{what} not found: {store.path}")


def read_values(store: SecretStore, keys: Sequence[str]) -> dict[str, str]:
    """`keys` with their <KEY>_PREVIOUS and <KEY>_ROTATED_AT, those the store has.
    Blocking. A dotenv file is read once: one consistent view of it."""
    wanted = {k + suffix for k in keys for suffix in ("", PREVIOUS, ROTATED_AT)}
    if store.kind == "dotenv":
        everything = store.items()
        return {k: everything[k] for k in wanted if k in everything}
    return {k: v for k in wanted if (v := store.get(k)) is not None}


# ------------------------------------------------------- services' fingerprints

_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{12}")
_SECURITY_FIELDS = ("accessKeyFingerprint", "refreshKeyFingerprint")


class KeyReport(msgspec.Struct, frozen=True, kw_only=True):
    """What a service says of its keys at /health/security (fingerprints only), or
    why it could not be read."""

    access: str | None = None
    refresh: str | None = None
    algorithm: str | None = None
    loaded_at: str | None = None
    error: str | None = None


def _clipped(value: object) -> str | None:
    # clipped: a service's answer must not bloat readings
    return printable(value[:80]) if isinstance(value, str) else None


def _fingerprint_field(jwt_part: dict[str, Any], name: str) -> tuple[str | None, str | None]:
    """(fingerprint, error) of one field: a value that is not `sha256:` + 12 lowercase
    hex digits is an error naming only its length (it could be escapes or a secret)."""
    value = jwt_part.get(name)
    if value is None:
        return None, None
    if isinstance(value, str) and _FINGERPRINT.fullmatch(value):
        return value, None
    what = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
    return None, (
        f"{SECURITY_PATH}: malformed fingerprint in {name} ({what}; expected sha256: "
        "and 12 lowercase hex digits)"
    )


def parse_security(body: bytes) -> KeyReport | None:
    """The `jwt` object of a /health/security answer (or the top level), or None.

    A fingerprint that is not `sha256:` + 12 lowercase hex digits makes the answer
    an error ("malformed fingerprint"): the text is the target's, it could carry
    terminal escapes or even a raw secret, so it is never passed on, only its length.
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting too
        return None
    if not isinstance(doc, dict):
        return None
    jwt_part = doc["jwt"] if isinstance(doc.get("jwt"), dict) else doc
    if not any(name in jwt_part for name in _SECURITY_FIELDS):
        return None
    access, access_error = _fingerprint_field(jwt_part, "accessKeyFingerprint")
    refresh, refresh_error = _fingerprint_field(jwt_part, "refreshKeyFingerprint")
    return KeyReport(
        access=access,
        refresh=refresh,
        algorithm=_clipped(jwt_part.get("algorithm")),
        loaded_at=_clipped(jwt_part.get("loadedAt")),
        error=refresh_error or access_error,  # the last malformed field, as before
    )


async def fetch_fingerprints(http: HttpClient, url: str, timeout: float | None = None) -> KeyReport:
    """The key fingerprints the service at `url` reports, or why they are unknown."""
    f = await http.get(url + SECURITY_PATH, timeout=timeout, max_body=64 * 1024)
    if f.error:
        return KeyReport(error=f.error)
    if f.status != 200:
        return KeyReport(error=f"HTTP {f.status} from {SECURITY_PATH}")
    sec = parse_security(f.body)
    if sec is None:
        return KeyReport(error=f"{SECURITY_PATH} has no key fingerprints")
    if sec.error:
        return KeyReport(error=sec.error)
    return sec


@dataclass(frozen=True)
class Expected:
    """The store's fingerprints the services are compared against (not values)."""

    access: str | None = None
    refresh: str | None = None
    access_previous: str | None = None
    refresh_previous: str | None = None

    def compare(self, got: KeyReport) -> ServiceKeys:
        """A service's report against the store: on the current keys, on a previous one?"""
        if got.error:
            return ServiceKeys(error=got.error)
        access, refresh = got.access, got.refresh
        ok_access = self.access is None or access == self.access
        ok_refresh = refresh is None or self.refresh is None or refresh == self.refresh
        matches = ok_access and ok_refresh
        on_previous = not matches and (
            (not ok_access and access is not None and access == self.access_previous)
            or (not ok_refresh and refresh == self.refresh_previous)
        )
        return ServiceKeys(
            fingerprint=access,
            refresh_fingerprint=refresh,
            algorithm=got.algorithm,
            loaded_at=got.loaded_at,
            matches=matches,
            on_previous=on_previous,
        )


# ------------------------------------------------------------------ the store


def _strength(value: str, need: int, algorithm: str, wordlist: str | None) -> tuple[Strength, str]:
    length = len(value.encode("utf-8"))
    weak = known_weak(value, wordlist)
    if weak:
        return "known-weak", weak
    if length < need:
        return "short", f"{length} bytes; {algorithm} needs at least {need} (RFC 7518)"
    if why := low_entropy(value):
        return "low-entropy", f"low estimated entropy: {why}"
    return "ok", "no weakness found"


def _weakness(value: str, need: int, wordlist: str | None) -> str | None:
    """Why a secret must not stay accepted (known weak or too short), or None."""
    weak = known_weak(value, wordlist)
    if weak:
        return weak
    length = len(value.encode("utf-8"))
    return f"{length} bytes, shorter than {need}" if length < need else None


def _wordlist(path: str | None) -> Wordlist | None:
    if not path:
        return None
    try:
        return Wordlist(path=path, entries=len(load_wordlist(path)))
    except OSError as e:
        return Wordlist(path=path, entries=0, error=e.strerror or str(e))


@dataclass(frozen=True)
class _StoreView:
    """What one read of the store gave: the values, and how to date each key."""

    store: SecretStore
    values: dict[str, str]
    stamps: list[float]  # every configured key's <KEY>_ROTATED_AT that parses
    now: float

    def changed(self, key: str) -> tuple[float | None, AgeSource]:
        """When `key` last changed, and how that is known."""
        rotated = parse_time(self.values.get(key + ROTATED_AT))
        if rotated is not None:
            return rotated, "rotated_at"
        changed = self.store.mtime(key)
        # A dotenv file's mtime is the last write of ANY key: once another key
        # was stamped at (or before) that write, the mtime says nothing about
        # this one (rotating the refresh key must not make the access key fresh).
        if (
            changed is not None
            and self.store.kind == "dotenv"
            and self.stamps
            and changed >= max(self.stamps) - 1.0
        ):
            return None, "unknown"
        return changed, "mtime"


def _key_info(view: _StoreView, key: str, s: SecretsConfig) -> KeyInfo:
    need = MIN_BYTES[s.algorithm]
    value = view.values.get(key)
    rotated_text = view.values.get(key + ROTATED_AT)
    changed, source = view.changed(key)
    prev = view.values.get(key + PREVIOUS)
    info = KeyInfo(
        present=value is not None,
        required_bytes=need,
        strength="missing",
        reason=f"{key} is not in the store",
        age_s=round(view.now - changed, 1) if changed is not None else None,
        age_source=source,
        rotated_at=rotated_text if parse_time(rotated_text) is not None else None,
        previous_fingerprint=fingerprint(prev) if prev is not None else None,
        # a weak previous secret is still accepted until the rotation is finished
        previous_weak=_weakness(prev, need, s.wordlist) if prev is not None else None,
    )
    if value is None:
        return info
    strength, reason = _strength(value, need, s.algorithm, s.wordlist)
    return replace(
        info,
        length=len(value.encode("utf-8")),
        fingerprint=fingerprint(value),
        entropy_bits=entropy_bits(value),
        strength=strength,
        reason=reason,
    )


def _rotation(s: SecretsConfig, values: dict[str, str]) -> Rotation | None:
    started = [t for k in s.keys if (t := parse_time(values.get(k + ROTATED_AT))) is not None]
    if not started:
        return None
    grace = grace_period(s)
    begun = max(started)
    return Rotation(
        in_progress=any(values.get(k + PREVIOUS) is not None for k in s.keys),
        started_at=begun,
        grace_period_s=grace,
        grace_ends_at=begun + grace,
    )


def read_store(s: SecretsConfig) -> tuple[SecretsData, Expected]:
    """One read of the store: every key's facts, and the fingerprints services
    should report. Blocking: run in a thread. Raises StoreError."""
    store = open_store(s.store)
    check_exists(store)
    values = read_values(store, s.keys)
    stamps = [t for k in s.keys if (t := parse_time(values.get(k + ROTATED_AT))) is not None]
    view = _StoreView(store, values, stamps, time.time())
    keys = {str(key): _key_info(view, key, s) for key in s.keys}
    distinct: bool | None = None
    if len(s.keys) >= 2:
        a, b = values.get(s.keys[0]), values.get(s.keys[1])
        distinct = None if a is None or b is None else a != b
    access = keys[s.keys[0]] if s.keys else KeyInfo()
    refresh = keys[s.keys[1]] if len(s.keys) > 1 else KeyInfo()
    expected = Expected(
        access=access.fingerprint,
        refresh=refresh.fingerprint,
        access_previous=access.previous_fingerprint,
        refresh_previous=refresh.previous_fingerprint,
    )
    described = store.describe()
    data = SecretsData(
        store=StoreInfo(kind=str(described["kind"]), path=described["path"]),
        algorithm=s.algorithm,
        keys=keys,
        distinct=distinct,
        rotation=_rotation(s, values),
        wordlist=_wordlist(s.wordlist),
    )
    return data, expected


# ---------------------------------------------------------------- the probe


def _inconclusive(unclear: list[str]) -> str:
    return (
        f"inconclusive: {len(unclear)} forged token(s) got neither 401/403 nor 2xx ("
        + "; ".join(unclear[:3])
        + ("; ..." if len(unclear) > 3 else "")
        + ")"
    )


class SecretsCollector:
    component = "secrets"

    def __init__(
        self,
        settings: SecretsConfig,
        http: HttpClient,
        services: Sequence[KeyService] = (),
        *,
        http_timeout: float = 5.0,
        round_timeout: float = 5.0,
    ) -> None:
        """`services`: every configured service (those publishing /health/security are
        compared with the store; the probe's is looked up by name). `http_timeout`:
        the configured per-request timeout; `round_timeout`: a collector's deadline."""
        self.settings = settings
        self.http = http
        self.services = tuple(services)
        self.http_timeout = http_timeout
        self.round_timeout = round_timeout
        self._probe: Probe | None = None
        self._probe_at = 0.0  # monotonic time of the last probe run
        self._probe_signature: object = None  # the keys the last probe ran against

    def targets(self) -> list[str]:
        return ["store"]

    async def close(self) -> None:
        pass  # the shared HttpClient is closed by its owner

    async def collect(self) -> list[Reading]:
        t0 = time.time()
        try:
            data, expected = await asyncio.to_thread(read_store, self.settings)
        except StoreMissing as e:
            # services started from a store that is not there: as bad as unreachable
            return [Reading("secrets", "store", t0, error=str(e), error_kind="unreachable")]
        except StoreError as e:
            return [Reading("secrets", "store", t0, error=str(e), error_kind="internal")]
        timeout = min(self.http_timeout, 3.0)
        # The probe is rate-limited, but a key change in the store (a rotation
        # started or finished) makes its last answer stale: then it runs again at once.
        signature = tuple(
            sorted((k, v.fingerprint, v.previous_fingerprint) for k, v in data.keys.items())
        )
        services, probe = await asyncio.gather(
            self._services(expected, timeout), self._maybe_probe(signature)
        )
        rotation = data.rotation
        if rotation is not None:
            # what the TUI offers "finish" on: grace over, every service confirmed
            can_finish = (
                rotation.in_progress
                and time.time() >= (rotation.grace_ends_at or 0.0)
                and all(svc.matches for svc in services.values())
            )
            rotation = replace(rotation, can_finish=can_finish)
        data = replace(data, services=services, probe=probe, rotation=rotation)
        return [Reading("secrets", "store", t0, data=data, duration_ms=(time.time() - t0) * 1000)]

    # ------------------------------------------------------- service keys

    async def _services(self, exp: Expected, timeout: float) -> dict[str, ServiceKeys]:
        svcs = [s for s in self.services if s.publishes_keys]
        results = await asyncio.gather(
            *(fetch_fingerprints(self.http, svc.url, timeout) for svc in svcs)
        )
        return {svc.name: exp.compare(got) for svc, got in zip(svcs, results, strict=True)}

    # -------------------------------------------------------------- probe

    async def _maybe_probe(self, signature: object) -> Probe | None:
        p = self.settings.probe
        if p is None:
            return None
        due = (
            self._probe is None
            or signature != self._probe_signature
            or time.monotonic() - self._probe_at >= self.settings.probe_every
        )
        if due:
            self._probe_signature = signature
            # Stamp first: a probe that hangs or fails is not retried before probe_every.
            self._probe_at = time.monotonic()
            budget = max(1.0, self.round_timeout * 0.6)
            try:
                self._probe = await asyncio.wait_for(self._run_probe(), budget)
            except TimeoutError:
                self._probe = Probe(
                    service=str(p.service),
                    path=str(p.path),
                    at=time.time(),
                    error=f"probe timed out after {budget:.0f}s",
                )
        return self._probe

    async def _run_probe(self) -> Probe:
        p = self.settings.probe
        assert p is not None
        probe = Probe(
            service=str(p.service),
            path=str(p.path),
            at=time.time(),
            public_key_path=None if p.public_key_path is None else str(p.public_key_path),
        )
        svc = next((s for s in self.services if s.name == p.service), None)
        if svc is None:  # config validation prevents it
            return replace(probe, error=f"service {p.service} is not configured")
        url = svc.url + p.path
        timeout = min(self.http_timeout, 2.0)
        # A baseline without a token must be refused (401/403): a path that answers
        # 2xx anyway proves nothing, and one that answers 404/5xx is not the
        # protected path the probe was told about (a forged token would "fail" too).
        base = await self.http.get(url, timeout=timeout, max_body=4096)
        probe = replace(probe, tried=1)
        if base.error:
            return replace(probe, error=f"unreachable: {base.error}")
        if base.status not in (401, 403):
            extra = " without any token" if base.status and 200 <= base.status < 300 else ""
            return replace(
                probe,
                error=f"{p.path} is not a protected path (HTTP {base.status}{extra})",
                error_kind="not_protected",
            )
        keys, skipped = await self._public_keys(svc.url, timeout)
        sent, accepted, unclear = await self._forge(url, timeout, keys)
        probe = replace(probe, tried=1 + sent, accepted=accepted, unclear=unclear, skipped=skipped)
        if unclear and not accepted:
            return replace(probe, error=_inconclusive(unclear), error_kind="inconclusive")
        return probe

    async def _public_keys(
        self, base_url: str, timeout: float
    ) -> tuple[list[tuple[str, bytes]], list[str]]:
        """The service's published public key(s) for the key confusion, or why that
        forgery is skipped. None configured: nothing, nothing skipped."""
        p = self.settings.probe
        if p is None or p.public_key_path is None:
            return [], []
        where = str(p.public_key_path)
        f = await self.http.get(base_url + where, timeout=timeout, max_body=64 * 1024)
        why: str | None = None
        if f.error:
            why = f"{where} unreadable: {f.error}"
        elif f.status != 200:
            why = f"{where} answered HTTP {f.status}"
        else:
            try:
                return public_keys(f.body, where), []
            except ValueError as e:
                why = str(e)
        return [], [f"RS256->HS256 key confusion not tried: {why}"]

    async def _forge(
        self, url: str, timeout: float, keys: Sequence[tuple[str, bytes]] = ()
    ) -> tuple[int, list[str], list[str]]:
        """Send each forged token once: (how many were sent, labels accepted, labels
        with an unclear answer). Variants of one forgery share a label: named once."""
        tokens = forged_tokens(self.settings.algorithm, keys)
        accepted: list[str] = []
        unclear: list[str] = []
        for label, token in tokens:
            await asyncio.sleep(0.05)  # rate limit: a probe, not a flood
            f = await self.http.get(
                url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout, max_body=4096
            )
            if f.status is not None and 200 <= f.status < 300:
                if label not in accepted:
                    accepted.append(label)
            elif f.error or f.status not in (401, 403):
                # only 401/403 is a rejection; anything else leaves the answer open
                unclear.append(f"{label}: {f.error or f'HTTP {f.status}'}")
        return len(tokens), accepted, unclear
