"""JWT secret audit: strength, distinctness, age, services' key fingerprints, and
the opt-in forged-token probe.

Secret values stay inside this module's locals: readings carry lengths,
fingerprints and reasons only. One Reading per round, target "store".
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import warnings
from datetime import UTC, datetime
from typing import Any

from collectors.config import Config
from collectors.core.http import HttpClient
from collectors.core.model import Reading
from collectors.core.redact import printable
from collectors.secrets.config import SecretsConfig
from collectors.secrets.store import SecretStore, StoreError, fingerprint, open_store
from collectors.secrets.weak import (
    MIN_BYTES,
    PROBE_SECRETS,
    entropy_bits,
    known_weak,
    load_wordlist,
    low_entropy,
)
from collectors.services.config import ServiceConfig

SECURITY_PATH = "/health/security"
DEFAULT_GRACE = 15 * 60.0
PREVIOUS = "_PREVIOUS"
ROTATED_AT = "_ROTATED_AT"


def grace_period(s: SecretsConfig) -> float:
    """How long the previous secret stays valid after a rotation."""
    if s.grace_period is not None:
        return float(s.grace_period)
    if s.access_token_lifetime is not None:
        return float(s.access_token_lifetime)
    return DEFAULT_GRACE


def parse_time(text: str | None) -> float | None:
    """ISO 8601 (`2026-11-24T10:00:00Z`) -> epoch seconds, None if absent or malformed."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class StoreMissing(StoreError):
    """The configured store file or directory does not exist."""


def check_exists(store: SecretStore) -> None:
    """Raise StoreMissing for a dotenv file or dir store that is not there: reading it
    as empty would report every key "missing", and a rotation would create it."""
    if store.path is None or store.exists():
        return
    what = "directory" if store.kind == "dir" else "file"
    raise StoreMissing(f"{what} not found: {store.path}")


def security_services(config: Config) -> list[ServiceConfig]:
    """Services that publish their key fingerprints (detail_paths has /health/security)."""
    return [s for s in config.services if SECURITY_PATH in s.detail_paths]


_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{12}")
_SECURITY_FIELDS = {"accessKeyFingerprint": "access", "refreshKeyFingerprint": "refresh"}


def parse_security(body: bytes) -> dict[str, Any] | None:
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
    jwt_part = doc.get("jwt") if isinstance(doc.get("jwt"), dict) else doc
    if "accessKeyFingerprint" not in jwt_part and "refreshKeyFingerprint" not in jwt_part:
        return None
    out: dict[str, Any] = {  # clipped: a service's answer must not bloat readings
        k: printable(jwt_part[k][:80]) if isinstance(jwt_part.get(k), str) else None
        for k in ("algorithm", "loadedAt")
    }
    out["error"] = None
    for name in _SECURITY_FIELDS:
        value = jwt_part.get(name)
        if value is None:
            out[name] = None
        elif isinstance(value, str) and _FINGERPRINT.fullmatch(value):
            out[name] = value
        else:
            out[name] = None
            what = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
            out["error"] = (
                f"{SECURITY_PATH}: malformed fingerprint in {name} ({what}; expected sha256: "
                "and 12 lowercase hex digits)"
            )
    return out


async def fetch_fingerprints(
    http: HttpClient, svc: ServiceConfig, timeout: float | None = None
) -> dict[str, Any]:
    """{access, refresh, algorithm, loaded_at, error} as the service reports them."""
    f = await http.get(svc.url + SECURITY_PATH, timeout=timeout, max_body=64 * 1024)
    if f.error:
        return {"error": f.error}
    if f.status != 200:
        return {"error": f"HTTP {f.status} from {SECURITY_PATH}"}
    sec = parse_security(f.body)
    if sec is None:
        return {"error": f"{SECURITY_PATH} has no key fingerprints"}
    if sec["error"]:
        return {"error": sec["error"]}
    return {
        "access": sec["accessKeyFingerprint"],
        "refresh": sec["refreshKeyFingerprint"],
        "algorithm": sec["algorithm"],
        "loaded_at": sec["loadedAt"],
        "error": None,
    }


def forged_tokens(algorithm: str) -> list[tuple[str, str]]:
    """(label, token): admin tokens signed with known weak secrets, plus `alg: none`.

    Labels name the forgery by fingerprint, never by value: the store's own
    secret may be one of these.
    """
    import jwt

    now = int(time.time())
    payload = {"sub": "ultrawatch-forgery-probe", "role": "admin", "iat": now, "exp": now + 60}
    out: list[tuple[str, str]] = []
    with warnings.catch_warnings():  # PyJWT warns about short keys: that is the point
        warnings.simplefilter("ignore")
        for weak in PROBE_SECRETS:
            token = jwt.encode(payload, weak, algorithm=algorithm)
            out.append((f"{algorithm} with known weak secret {fingerprint(weak)}", token))
        out.append(("alg none (unsigned)", jwt.encode(payload, None, algorithm="none")))
    return out


class SecretsCollector:
    component = "secrets"

    def __init__(self, config: Config, http: HttpClient) -> None:
        assert config.secrets is not None
        self.config = config
        self.settings: SecretsConfig = config.secrets
        self.http = http
        self._probe: dict[str, Any] | None = None
        self._probe_at = 0.0  # monotonic time of the last probe run
        self._probe_signature: object = None  # the keys the last probe ran against

    def targets(self) -> list[str]:
        return ["store"]

    async def close(self) -> None:
        pass  # the shared HttpClient is closed by its owner

    async def collect(self) -> list[Reading]:
        t0 = time.time()
        try:
            data, expected = await asyncio.to_thread(self._read_store)
        except StoreMissing as e:
            # services started from a store that is not there: as bad as unreachable
            return [Reading("secrets", "store", t0, error=str(e), error_kind="unreachable")]
        except StoreError as e:
            return [Reading("secrets", "store", t0, error=str(e), error_kind="internal")]
        timeout = min(float(self.config.http.timeout), 3.0)
        # The probe is rate-limited, but a key change in the store (a rotation
        # started or finished) makes its last answer stale: then it runs again at once.
        keys = data.get("keys") or {}
        signature = tuple(
            sorted(
                (k, v.get("fingerprint"), v.get("previous_fingerprint")) for k, v in keys.items()
            )
        )
        services, probe = await asyncio.gather(
            self._services(expected, timeout), self._maybe_probe(signature)
        )
        data["services"] = services
        data["probe"] = probe
        rotation = data["rotation"]
        if rotation is not None:
            # what the TUI offers "finish" on: grace over, every service confirmed
            rotation["can_finish"] = (
                rotation["in_progress"]
                and time.time() >= rotation["grace_ends_at"]
                and all(svc["matches"] for svc in services.values())
            )
        return [Reading("secrets", "store", t0, data=data, duration_ms=(time.time() - t0) * 1000)]

    # ------------------------------------------------------------ the store

    def _read_store(self) -> tuple[dict[str, Any], dict[str, str | None]]:
        s = self.settings
        store = open_store(s.store)
        check_exists(store)
        wanted = [k + suffix for k in s.keys for suffix in ("", PREVIOUS, ROTATED_AT)]
        if store.kind == "dotenv":
            everything = store.items()  # one read, one parse
            values = {k: everything[k] for k in wanted if k in everything}
        else:
            values = {k: v for k in wanted if (v := store.get(k)) is not None}
        wordlist: dict[str, Any] | None = None
        if s.wordlist:
            try:
                wordlist = {"path": s.wordlist, "entries": len(load_wordlist(s.wordlist))}
                wordlist["error"] = None
            except OSError as e:
                wordlist = {"path": s.wordlist, "entries": 0, "error": e.strerror or str(e)}
        need = MIN_BYTES[s.algorithm]
        now = time.time()
        stamps = [t for k in s.keys if (t := parse_time(values.get(k + ROTATED_AT))) is not None]
        keys: dict[str, Any] = {}
        for key in s.keys:
            value = values.get(key)
            rotated_text = values.get(key + ROTATED_AT)
            rotated = parse_time(rotated_text)
            changed = rotated if rotated is not None else store.mtime(key)
            source = "rotated_at" if rotated is not None else "mtime"
            # A dotenv file's mtime is the last write of ANY key: once another key
            # was stamped at (or before) that write, the mtime says nothing about
            # this one (rotating the refresh key must not make the access key fresh).
            if (
                rotated is None
                and changed is not None
                and store.kind == "dotenv"
                and stamps
                and changed >= max(stamps) - 1.0
            ):
                changed, source = None, "unknown"
            prev = values.get(key + PREVIOUS)
            info: dict[str, Any] = {
                "present": value is not None,
                "length": None,
                "fingerprint": None,
                "required_bytes": need,
                "strength": "missing",
                "reason": f"{key} is not in the store",
                "entropy_bits": None,
                "age_s": round(now - changed, 1) if changed is not None else None,
                "age_source": source,
                "rotated_at": rotated_text if rotated is not None else None,
                "previous_fingerprint": fingerprint(prev) if prev is not None else None,
                # a weak previous secret is still accepted until the rotation is finished
                "previous_weak": _weakness(prev, need, s.wordlist) if prev is not None else None,
            }
            if value is not None:
                info.update(_strength(value, need, s.algorithm, s.wordlist))
            keys[key] = info
        distinct: bool | None = None
        if len(s.keys) >= 2:
            a, b = values.get(s.keys[0]), values.get(s.keys[1])
            distinct = None if a is None or b is None else a != b
        rotation: dict[str, Any] | None = None
        started = [parse_time(values.get(k + ROTATED_AT)) for k in s.keys]
        started_known = [t for t in started if t is not None]
        if started_known:
            grace = grace_period(s)
            begun = max(started_known)
            rotation = {
                "in_progress": any(values.get(k + PREVIOUS) is not None for k in s.keys),
                "started_at": begun,
                "grace_period_s": grace,
                "grace_ends_at": begun + grace,
            }
        # Fingerprints the services are compared against (not values).
        expected = {
            "access": keys[s.keys[0]]["fingerprint"] if s.keys else None,
            "refresh": keys[s.keys[1]]["fingerprint"] if len(s.keys) > 1 else None,
            "access_previous": keys[s.keys[0]]["previous_fingerprint"] if s.keys else None,
            "refresh_previous": (
                keys[s.keys[1]]["previous_fingerprint"] if len(s.keys) > 1 else None
            ),
        }
        data = {
            "store": store.describe(),
            "algorithm": s.algorithm,
            "keys": keys,
            "distinct": distinct,
            "rotation": rotation,
            "wordlist": wordlist,
        }
        return data, expected

    # ------------------------------------------------------- service keys

    async def _services(self, exp: dict[str, str | None], timeout: float) -> dict[str, Any]:
        svcs = security_services(self.config)
        results = await asyncio.gather(
            *(fetch_fingerprints(self.http, svc, timeout) for svc in svcs)
        )
        out: dict[str, Any] = {}
        for svc, got in zip(svcs, results, strict=True):
            if got.get("error"):
                out[svc.name] = {
                    "fingerprint": None,
                    "refresh_fingerprint": None,
                    "matches": None,
                    "on_previous": None,
                    "error": got["error"],
                }
                continue
            access, refresh = got["access"], got["refresh"]
            ok_access = exp["access"] is None or access == exp["access"]
            ok_refresh = refresh is None or exp["refresh"] is None or refresh == exp["refresh"]
            matches = ok_access and ok_refresh
            on_previous = not matches and (
                (not ok_access and access is not None and access == exp["access_previous"])
                or (not ok_refresh and refresh == exp["refresh_previous"])
            )
            out[svc.name] = {
                "fingerprint": access,
                "refresh_fingerprint": refresh,
                "algorithm": got["algorithm"],
                "loaded_at": got["loaded_at"],
                "matches": matches,
                "on_previous": on_previous,
                "error": None,
            }
        return out

    # -------------------------------------------------------------- probe

    async def _maybe_probe(self, signature: object) -> dict[str, Any] | None:
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
            budget = max(1.0, float(self.config.dashboard.collector_timeout) * 0.6)
            try:
                self._probe = await asyncio.wait_for(self._run_probe(), budget)
            except TimeoutError:
                self._probe = {
                    "service": p.service,
                    "path": p.path,
                    "tried": 0,
                    "accepted": [],
                    "at": time.time(),
                    "error": f"probe timed out after {budget:.0f}s",
                }
        return self._probe

    async def _run_probe(self) -> dict[str, Any]:
        p = self.settings.probe
        assert p is not None
        svc = self.config.service(p.service)
        assert svc is not None  # config validation guarantees it
        url = svc.url + p.path
        result: dict[str, Any] = {
            "service": p.service,
            "path": p.path,
            "tried": 0,
            "accepted": [],
            "at": time.time(),
            "error": None,
            "error_kind": None,
        }
        timeout = min(float(self.config.http.timeout), 2.0)
        # A baseline without a token must be refused (401/403): a path that answers
        # 2xx anyway proves nothing, and one that answers 404/5xx is not the
        # protected path the probe was told about (a forged token would "fail" too).
        base = await self.http.get(url, timeout=timeout, max_body=4096)
        result["tried"] = 1
        if base.error:
            result["error"] = f"unreachable: {base.error}"
            return result
        if base.status not in (401, 403):
            extra = " without any token" if base.status and 200 <= base.status < 300 else ""
            result["error"] = f"{p.path} is not a protected path (HTTP {base.status}{extra})"
            result["error_kind"] = "not_protected"
            return result
        unclear: list[str] = []
        for label, token in forged_tokens(self.settings.algorithm):
            await asyncio.sleep(0.05)  # rate limit: a probe, not a flood
            f = await self.http.get(
                url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout, max_body=4096
            )
            result["tried"] += 1
            if f.status is not None and 200 <= f.status < 300:
                result["accepted"].append(label)
            elif f.error or f.status not in (401, 403):
                # only 401/403 is a rejection; anything else leaves the answer open
                unclear.append(f"{label}: {f.error or f'HTTP {f.status}'}")
        if unclear and not result["accepted"]:
            result["error"] = (
                f"inconclusive: {len(unclear)} forged token(s) got neither 401/403 nor 2xx ("
                + "; ".join(unclear[:3])
                + ("; ..." if len(unclear) > 3 else "")
                + ")"
            )
            result["error_kind"] = "inconclusive"
        result["unclear"] = unclear
        return result


def _strength(value: str, need: int, algorithm: str, wordlist: str | None) -> dict[str, Any]:
    length = len(value.encode("utf-8"))
    info: dict[str, Any] = {
        "length": length,
        "fingerprint": fingerprint(value),
        "entropy_bits": entropy_bits(value),
    }
    weak = known_weak(value, wordlist)
    if weak:
        info.update(strength="known-weak", reason=weak)
    elif length < need:
        info.update(
            strength="short", reason=f"{length} bytes; {algorithm} needs at least {need} (RFC 7518)"
        )
    elif why := low_entropy(value):
        info.update(strength="low-entropy", reason=f"low estimated entropy: {why}")
    else:
        info.update(strength="ok", reason="no weakness found")
    return info


def _weakness(value: str, need: int, wordlist: str | None) -> str | None:
    """Why a secret must not stay accepted (known weak or too short), or None."""
    weak = known_weak(value, wordlist)
    if weak:
        return weak
    length = len(value.encode("utf-8"))
    return f"{length} bytes, shorter than {need}" if length < need else None
