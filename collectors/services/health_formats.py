"""Health answers in the common formats -> ok / warning / critical / unknown.

Pure functions of (HTTP status, content type, body bytes, truncated): no I/O, and
nothing raises out of `parse_health` (a target's bytes are data, not our bug).
Recognised: UltraMarket's own, IETF `application/health+json`, Spring Boot
Actuator, ASP.NET Core (plain text and the UI writer's `entries`), Node terminus,
lightship, health-go, `{"status": "ok"}`-style JSON, plain text and bare status
codes (2xx-3xx passes, as Kubernetes counts it). Anything else is `unknown`
with the reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

OK, WARNING, CRITICAL, UNKNOWN = "ok", "warning", "critical", "unknown"
_RANK = {OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}

MAX_COMPONENTS = 50  # bounded: a target cannot flood the reading
MAX_DETAIL = 200  # characters of one component's detail
MAX_MESSAGE = 300
MAX_DEPTH = 6  # nested components followed at most this deep
MAX_EVENTS = 50  # listener counts per event kept


@dataclass(frozen=True, slots=True)
class Health:
    """What one health answer means."""

    status: str  # ok | warning | critical | unknown
    format: str  # ultramarket | ietf | spring | aspnetcore | terminus | lightship | ...
    message: str
    components: list[dict[str, Any]] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)  # draining, activeOperations, ...


def worst(*statuses: str) -> str:
    return max(statuses, key=lambda s: _RANK.get(s, 2), default=OK)


def _clip(text: object, n: int = MAX_DETAIL) -> str:
    s = str(text).replace("\r", " ").replace("\n", " ").strip()
    return s if len(s) <= n else s[: n - 1] + "…"


def by_code(code: int | None) -> str:
    """Kubernetes' rule: any status in [200, 400) is success."""
    if code is None:
        return UNKNOWN
    return OK if 200 <= code < 400 else CRITICAL


# Status words of each format (compared case-insensitively unless noted).
_IETF = {"pass": OK, "ok": OK, "up": OK, "warn": WARNING, "fail": CRITICAL, "error": CRITICAL,
         "down": CRITICAL}  # fmt: skip
_SPRING = {"UP": OK, "DOWN": CRITICAL, "OUT_OF_SERVICE": CRITICAL, "UNKNOWN": UNKNOWN,
           "ACCEPTING_TRAFFIC": OK, "REFUSING_TRAFFIC": CRITICAL, "CORRECT": OK,
           "BROKEN": CRITICAL}  # fmt: skip
_ASPNET = {"healthy": OK, "degraded": WARNING, "unhealthy": CRITICAL}
_HEALTH_GO = {"ok": OK, "partially available": WARNING, "unavailable": CRITICAL}
_LIGHTSHIP = {
    "SERVER_IS_READY": (OK, False),
    "SERVER_IS_NOT_READY": (CRITICAL, False),
    "SERVER_IS_SHUTTING_DOWN": (CRITICAL, True),
}
# Generic words for `{"status": ...}`-style JSON and plain text.
_GENERIC = {
    **{w: OK for w in ("ok", "up", "pass", "passed", "healthy", "green", "alive", "ready",
                       "running", "serving", "good", "success", "online", "available")},
    **{w: WARNING for w in ("warn", "warning", "degraded", "yellow", "partial")},
    **{w: CRITICAL for w in ("fail", "failed", "failure", "error", "down", "unhealthy", "red",
                             "critical", "dead", "not_ready", "not ready", "unavailable",
                             "offline", "not_serving", "bad")},
}  # fmt: skip


def parse_health(
    code: int | None, content_type: str, body: bytes, truncated: bool = False
) -> Health:
    """Never raises: a parser bug becomes `unknown` with the reason."""
    try:
        return _parse(code, (content_type or "").split(";")[0].strip().lower(), body, truncated)
    except Exception as e:  # defence in depth: target bytes must not crash a collector
        return Health(UNKNOWN, "unknown", f"could not interpret the answer: {type(e).__name__}")


def _parse(code: int | None, ctype: str, body: bytes, truncated: bool) -> Health:
    http = f"HTTP {code}" if code is not None else "no HTTP status"
    if truncated:
        return Health(
            UNKNOWN,
            "unknown",
            f"{http}: body larger than the size cap ({len(body)} bytes read), not interpreted",
        )
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return Health(by_code(code), "status-code", f"{http} with an empty body")
    looks_json = "json" in ctype or text[:1] in "{["
    if looks_json:
        try:
            obj = json.loads(text)
        except RecursionError:
            return Health(UNKNOWN, "unknown", f"{http}: JSON nested too deeply to interpret")
        except ValueError as e:
            return Health(UNKNOWN, "unknown", f"{http}: invalid JSON ({_clip(e, 120)})")
        if not isinstance(obj, dict):
            kind = {list: "an array", str: "a string", bool: "a boolean"}.get(type(obj), "a value")
            if isinstance(obj, int | float) and not isinstance(obj, bool):
                kind = "a number"
            return Health(UNKNOWN, "unknown", f"{http}: JSON is {kind}, not a health object")
        health = _from_json(obj, ctype, code)
        return _with_code(health, code)
    if ctype == "text/html" or text[:1] == "<":
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
        what = f" ({_clip(title.group(1), 80)})" if title else ""
        if code is not None and code >= 400:
            return Health(CRITICAL, "html", f"{http}: an HTML error page{what}")
        return Health(UNKNOWN, "unknown", f"{http}: an HTML page{what}, not a health answer")
    return _with_code(_from_text(text, code), code)


def _with_code(h: Health, code: int | None) -> Health:
    """A 4xx/5xx answer is never better than critical, whatever the body claims."""
    if code is not None and code >= 400 and h.status != CRITICAL:
        msg = f"{h.message} (but HTTP {code})"
        return Health(CRITICAL, h.format, msg, h.components, h.fields)
    return h


# ------------------------------------------------------------------ plain text


def _from_text(text: str, code: int | None) -> Health:
    first = text.splitlines()[0].strip()
    word = first.strip().strip(".!")
    if word in _LIGHTSHIP:
        status, shutting = _LIGHTSHIP[word]
        fields = {"draining": True} if shutting else {}
        return Health(status, "lightship", word, fields=fields)
    low = word.lower()
    if low in _ASPNET and word[:1].isupper():
        return Health(_ASPNET[low], "aspnetcore", word)
    if low in _GENERIC:
        return Health(_GENERIC[low], "text", _clip(first, MAX_MESSAGE))
    # Unrecognised words: the status code decides, as Kubernetes would.
    return Health(by_code(code), "text", f"HTTP {code}: {_clip(first, MAX_MESSAGE)}")


# ------------------------------------------------------------------------ JSON


def _not_a_word(obj: dict[str, Any], raw: object, fields: dict[str, Any]) -> Health:
    """A JSON object whose `status` is missing, a boolean or not a string."""
    if raw is None:
        for key in ("healthy", "ok", "up"):
            if isinstance(obj.get(key), bool):
                st = OK if obj[key] else CRITICAL
                return Health(st, "json", f"{key}: {str(obj[key]).lower()}", fields=fields)
        return Health(UNKNOWN, "unknown", "JSON object without a status field", fields=fields)
    if isinstance(raw, bool):
        return Health(OK if raw else CRITICAL, "json", f"status: {str(raw).lower()}", fields=fields)
    return Health(UNKNOWN, "unknown", f"status is {type(raw).__name__}, not a word", fields=fields)


def _from_json(obj: dict[str, Any], ctype: str, code: int | None) -> Health:
    fields = _common_fields(obj)
    raw = obj.get("status")
    if not isinstance(raw, str):
        return _not_a_word(obj, raw, fields)
    word = raw.strip()
    low = word.lower()

    if "draining" in obj or "activeOperations" in obj:
        status = _IETF.get(low) or _GENERIC.get(low) or UNKNOWN
        return Health(
            status,
            "ultramarket",
            _message(word, obj),
            _ietf_checks(obj.get("checks")),
            fields,
        )
    if ctype == "application/health+json" or (low in ("pass", "warn", "fail")):
        status = _IETF.get(low, UNKNOWN)
        msg = _message(word, obj) if status != UNKNOWN else f"unrecognised status {word!r}"
        return Health(status, "ietf", msg, _ietf_checks(obj.get("checks")), fields)
    if word in _SPRING or (word.isupper() and isinstance(obj.get("components"), dict)):
        status = _SPRING.get(word, UNKNOWN)
        comps: list[dict[str, Any]] = []
        # 2.x: `components` (2.2+) or `details`; 1.x: each indicator at the top level.
        tree = obj.get("components") or obj.get("details")
        if not isinstance(tree, dict):
            tree = {k: v for k, v in obj.items() if isinstance(v, dict) and "status" in v}
        _spring_components(tree, "", comps, 0)
        msg = word if status != UNKNOWN or word == "UNKNOWN" else f"unrecognised status {word!r}"
        return Health(status, "spring", msg, comps, fields)
    if low in _ASPNET and (word[:1].isupper() or "entries" in obj):
        return Health(_ASPNET[low], "aspnetcore", _message(word, obj), _entries(obj), fields)
    if low in _HEALTH_GO and (low != "ok" or "failures" in obj or "system" in obj):
        status = _HEALTH_GO[low]
        return Health(status, "health-go", _message(word, obj), _failures(obj, status), fields)
    if low in ("ok", "error") and any(k in obj for k in ("info", "error", "details")):
        comps = _terminus(obj)
        return Health(_GENERIC[low], "terminus", _message(word, obj), comps, fields)
    if low in _GENERIC:
        return Health(_GENERIC[low], "json", _message(word, obj), [], fields)
    return Health(UNKNOWN, "unknown", f"unrecognised status {_clip(word, 60)!r}", [], fields)


def _words(value: object) -> str:
    """A text field as words: a list (IETF `notes`) joined, empty entries dropped."""
    if isinstance(value, list):
        return "; ".join(w for v in value[:10] if (w := _words(v)))
    if isinstance(value, dict) or value is None or isinstance(value, bool):
        return ""
    return _clip(value, 120)


def _message(word: str, obj: dict[str, Any]) -> str:
    keys = ("output", "description", "message", "notes", "error")
    extra = [w for k in keys if (w := _words(obj.get(k)))]
    text = word + (": " + "; ".join(extra) if extra else "")
    return _clip(text, MAX_MESSAGE)


def _common_fields(obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj.get("draining"), bool):
        out["draining"] = obj["draining"]
    ops = obj.get("activeOperations")
    odd = odd_number(ops)
    if odd is not None:
        out["odd_numbers"] = {"activeOperations": odd}
    elif isinstance(ops, int) and not isinstance(ops, bool):
        out["activeOperations"] = ops
    for key in ("serviceId", "version", "releaseId"):
        if isinstance(obj.get(key), str | int | float) and not isinstance(obj.get(key), bool):
            out[key] = _clip(obj[key], 80)
    return out


def _component(name: object, status: str, detail: object = "") -> dict[str, Any]:
    return {"name": _clip(name, 80), "status": status, "detail": _clip(detail or "")}


def _status_word(word: object) -> str:
    if isinstance(word, bool):
        return OK if word else CRITICAL
    if not isinstance(word, str):
        return UNKNOWN
    return (
        _SPRING.get(word)
        or _IETF.get(word.lower())
        or _ASPNET.get(word.lower())
        or _HEALTH_GO.get(word.lower())
        or _GENERIC.get(word.lower())
        or UNKNOWN
    )


def _ietf_checks(checks: object) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not isinstance(checks, dict):
        return out
    for name, items in checks.items():
        for item in items if isinstance(items, list) else [items]:
            if len(out) >= MAX_COMPONENTS:
                return out
            if not isinstance(item, dict):
                continue
            label = str(name)
            if item.get("componentId") and str(item["componentId"]) not in label:
                label = f"{label} ({item['componentId']})"
            parts = [_words(item.get("output"))]
            if "observedValue" in item and not isinstance(item["observedValue"], dict | list):
                unit = item.get("observedUnit") or ""
                parts.append(f"{item['observedValue']} {unit}".strip())
            parts = [p for p in parts if p]
            out.append(_component(label, _status_word(item.get("status")), "; ".join(parts)))
    return out


def _spring_components(node: object, prefix: str, out: list[dict[str, Any]], depth: int) -> None:
    if not isinstance(node, dict) or depth > MAX_DEPTH:
        return
    for name, value in node.items():
        if len(out) >= MAX_COMPONENTS:
            return
        if not isinstance(value, dict):
            continue
        label = f"{prefix}{name}"
        details = value.get("details")
        if not isinstance(details, dict):  # 1.x: the details beside the status
            details = {k: v for k, v in value.items() if k != "status"}
        out.append(_component(label, _status_word(value.get("status")), _own_words(details)))
        _spring_components(value.get("components"), f"{label}/", out, depth + 1)


def _entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    entries = obj.get("entries")
    out: list[dict[str, Any]] = []
    if not isinstance(entries, dict):
        return out
    for name, e in list(entries.items())[:MAX_COMPONENTS]:
        if isinstance(e, dict):
            words = [_words(e.get(k)) for k in ("description", "exception")]
            detail = "; ".join(w for w in words if w) or _words(e.get("duration"))
            out.append(_component(name, _status_word(e.get("status")), detail))
    return out


def _failures(obj: dict[str, Any], status: str) -> list[dict[str, Any]]:
    failures = obj.get("failures")
    if not isinstance(failures, dict):
        return []
    each = WARNING if status == WARNING else CRITICAL
    return [_component(k, each, v) for k, v in list(failures.items())[:MAX_COMPONENTS]]


def _terminus(obj: dict[str, Any]) -> list[dict[str, Any]]:
    # `details` holds every indicator; older versions only `info` and `error`.
    src = obj.get("details")
    if not isinstance(src, dict):
        src = {}
        for key in ("info", "error"):
            if isinstance(obj.get(key), dict):
                src.update(obj[key])
    out = []
    for name, v in list(src.items())[:MAX_COMPONENTS]:
        if isinstance(v, dict):
            details = {k: x for k, x in v.items() if k != "status"}
            out.append(_component(name, _status_word(v.get("status")), _own_words(details)))
    return out


def _own_words(details: dict[str, Any]) -> str:
    """A component's own account of itself: its error or message first (the root
    cause), then its other plain fields as key=value."""
    first = [
        w for k in ("error", "message", "exception", "reason") if (w := _words(details.get(k)))
    ]
    rest = [
        f"{k}={v}"
        for k, v in list(details.items())[:8]
        if k not in ("error", "message", "exception", "reason") and not isinstance(v, dict | list)
    ]
    return "; ".join(first + ([", ".join(rest[:6])] if rest else []))


# ------------------------------------------------- UltraMarket detail endpoints


def _int(v: object) -> int | None:
    if isinstance(v, bool) or odd_number(v) is not None:
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v == v and abs(v) < 2**62:
        return int(v)
    return None


MAX_COUNT = 2**53  # beyond any real count or byte size: an absurd number


def odd_number(v: object) -> str | None:
    """Why a number a target sent cannot be a count or a size: NaN, an infinity
    (json accepts both literals), negative, or absurdly large; None when it can be
    (or when it is no number at all: absent or of another type is said elsewhere)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    if isinstance(v, float) and v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "Infinity" if v > 0 else "-Infinity"
    if v < 0:
        return f"{v:g} (negative)"
    if v > MAX_COUNT:
        return f"{v:g} (absurdly large)"
    return None


def _odd_numbers(obj: dict[str, Any]) -> dict[str, str]:
    """Every odd number in a detail answer, by where it is ("listeners.total")."""
    out: dict[str, str] = {}
    pool = obj.get("pool")
    lis = obj.get("listeners")
    places: list[tuple[str, object]] = [(k, obj.get(k)) for k in ("rss", "heapUsed")]
    if isinstance(pool, dict):
        places += [(f"pool.{k}", pool.get(k)) for k in ("max", "active", "idle", "waiting")]
    if isinstance(lis, dict):
        places += [(f"listeners.{k}", lis.get(k)) for k in ("total", "maxPerEvent")]
        by = lis.get("byEvent")
        if isinstance(by, dict):
            places += [(f"listeners.byEvent.{_clip(k, 80)}", v) for k, v in by.items()]
    for where, v in places:
        why = odd_number(v)
        if why is not None and len(out) < MAX_EVENTS:
            out[where] = why
    return out


def parse_details(code: int | None, body: bytes, truncated: bool) -> dict[str, Any]:
    """What UltraMarket's /health/connections, /memory and /security say.

    Returns only the keys found (pool, memory, listeners, security); {} for
    anything else. Never raises. NaN, infinities, negative or absurd numbers are
    read as absent, and said under `odd_numbers` (where -> why).
    """
    if truncated or code is None or not 200 <= code < 400 or not body:
        return {}
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(obj, dict):
        return {}
    out: dict[str, Any] = {}
    odd = _odd_numbers(obj)
    if odd:
        out["odd_numbers"] = odd
    pool = obj.get("pool")
    if isinstance(pool, dict):
        out["pool"] = {k: _int(pool.get(k)) for k in ("max", "active", "idle", "waiting")}
    if "rss" in obj or "heapUsed" in obj:
        out["memory"] = {"rss": _int(obj.get("rss")), "heapUsed": _int(obj.get("heapUsed"))}
    lis = obj.get("listeners")
    if isinstance(lis, dict):
        by = lis.get("byEvent")
        if not isinstance(by, dict):
            by = {}
        counts = sorted(
            ((_clip(k, 80), n) for k, v in by.items() if (n := _int(v)) is not None),
            key=lambda kv: -kv[1],
        )
        total = _int(lis.get("total"))
        out["listeners"] = {
            "total": total if total is not None else sum(n for _, n in counts),
            "maxPerEvent": _int(lis.get("maxPerEvent")),
            "byEvent": dict(counts[:MAX_EVENTS]),
        }
    jwt = obj.get("jwt")
    if isinstance(jwt, dict):
        out["security"] = {
            k: (_clip(jwt[k], 80) if isinstance(jwt.get(k), str) else None)
            for k in ("algorithm", "accessKeyFingerprint", "refreshKeyFingerprint", "loadedAt")
        }
    return out
