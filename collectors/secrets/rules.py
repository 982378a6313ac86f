"""Judge a secrets Reading: strength, distinct, age, services' fingerprints, the probe.

A pure function of the reading and the config (so recordings judge the same).
Summaries hold lengths, fingerprints and reasons; never a value.
"""

from __future__ import annotations

from typing import Any

from collectors.config import Config
from collectors.core.model import CheckResult, Reading, Status
from collectors.core.thresholds import failure
from collectors.core.units import format_duration

_STRENGTH_STATUS = {
    "ok": Status.OK,
    "low-entropy": Status.WARNING,
    "short": Status.CRITICAL,
    "known-weak": Status.CRITICAL,
    "missing": Status.CRITICAL,
}


def judge_secrets(reading: Reading, config: Config) -> list[CheckResult]:
    if not reading.ok:
        return [failure(reading, "secrets.store", "secret store")]
    s = config.secrets
    assert s is not None
    d = reading.data
    t = reading.target
    keys: dict[str, Any] = d.get("keys") or {}
    store = d.get("store") or {}
    where = f"{store.get('kind', '?')} store" + (f" {store['path']}" if store.get("path") else "")
    out: list[CheckResult] = []

    for key, info in keys.items():
        strength = info.get("strength", "missing")
        if strength == "missing":
            summary = f"{key} is missing from the {where}"
        else:
            summary = f"{key} ({info.get('length')} bytes, {info.get('fingerprint')}): " + str(
                info.get("reason", strength)
            )
        status = _STRENGTH_STATUS.get(strength, Status.UNKNOWN)
        if info.get("previous_weak"):
            # The old weak secret still signs valid tokens until --finish.
            summary += (
                f"; previous {info.get('previous_fingerprint')} ({info['previous_weak']}) is "
                "still accepted: finish the rotation once the grace period is over"
            )
            status = Status.worst([status, Status.WARNING])
        out.append(
            CheckResult(
                f"secrets.{key}.strength",
                "secrets",
                t,
                status,
                summary,
                value=info.get("length"),
                unit="bytes",
                crit=info.get("required_bytes"),
                below=True,  # too few bytes is the alert
            )
        )

    wl = d.get("wordlist")
    if wl and wl.get("error"):
        out.append(
            CheckResult(
                "secrets.wordlist",
                "secrets",
                t,
                Status.UNKNOWN,
                f"known-weak wordlist {wl.get('path')} unreadable: {wl['error']}",
            )
        )

    distinct = d.get("distinct")
    if len(s.keys) >= 2:
        a, b = s.keys[0], s.keys[1]
        if distinct is None:
            status, summary = Status.UNKNOWN, f"cannot compare {a} and {b}: one is missing"
        elif distinct:
            status, summary = Status.OK, f"{a} and {b} differ"
        else:
            status = Status.CRITICAL
            summary = f"{a} and {b} are the same secret: a refresh token works as an access token"
        out.append(CheckResult("secrets.distinct", "secrets", t, status, summary))

    out.append(_age(keys, float(s.max_age), t, where))
    out.extend(_services(d, reading.taken_at))
    probe = d.get("probe")
    if probe is not None:
        out.append(_probe(probe, t))
    return out


def _age(keys: dict[str, Any], max_age: float, t: str, where: str) -> CheckResult:
    present = {key: info for key, info in keys.items() if info.get("present", True)}
    aged = [
        (info["age_s"], key, info) for key, info in present.items() if info.get("age_s") is not None
    ]
    blind = [key for key, info in present.items() if info.get("age_s") is None]
    if not aged:
        hint = " (set <KEY>_ROTATED_AT to an ISO time)" if where.startswith("env") else ""
        return CheckResult(
            "secrets.age",
            "secrets",
            t,
            Status.UNKNOWN,
            f"age not known ({where} has no rotation time or modification time){hint}",
            unit="s",
            warn=max_age,
        )
    age, key, info = max(aged, key=lambda x: x[0])
    source = "rotated" if info.get("age_source") == "rotated_at" else "file last modified"
    summary = f"{key} {source} {format_duration(age)} ago"
    if age > max_age:
        status = Status.WARNING
        summary += f" (older than max_age {format_duration(max_age)})"
    elif blind:
        # another key's rotation rewrote the file: this key's age is not known
        status = Status.UNKNOWN
        summary = (
            f"age of {', '.join(blind)} not known (no <KEY>_ROTATED_AT, and the file was "
            f"rewritten when another key was rotated); {summary}"
        )
    else:
        status = Status.OK
    return CheckResult(
        "secrets.age", "secrets", t, status, summary, value=age, unit="s", warn=max_age
    )


def _services(d: dict[str, Any], taken_at: float) -> list[CheckResult]:
    rotation = d.get("rotation") or {}
    ends = rotation.get("grace_ends_at")
    in_grace = bool(rotation) and ends is not None and taken_at < ends
    out: list[CheckResult] = []
    for name, svc in (d.get("services") or {}).items():
        cid = f"service.{name}.secret_fingerprint"
        if svc.get("error"):
            out.append(
                CheckResult(
                    cid,
                    "services",
                    name,
                    Status.UNKNOWN,
                    f"cannot read {name}'s key fingerprints: {svc['error']}",
                )
            )
            continue
        fp = svc.get("fingerprint")
        if svc.get("matches"):
            status, summary = Status.OK, f"{name} uses the store's current key ({fp})"
        elif svc.get("on_previous"):
            if in_grace:
                status = Status.WARNING
                summary = (
                    f"{name} still on the previous key ({fp}); grace period ends in "
                    f"{format_duration(max(0.0, ends - taken_at))}"
                )
            else:
                status = Status.CRITICAL
                summary = f"{name} still on the previous key ({fp}) after the grace period"
        elif in_grace:
            status = Status.WARNING
            summary = f"{name} reports key {fp}, not the store's; rotation in progress"
        else:
            status = Status.CRITICAL
            summary = f"{name} reports key {fp}, which is not the store's current key"
        out.append(CheckResult(cid, "services", name, status, summary))
    return out


def _probe(probe: dict[str, Any], t: str) -> CheckResult:
    svc, path = probe.get("service"), probe.get("path")
    accepted = probe.get("accepted") or []
    if accepted:
        return CheckResult(
            "secrets.forged_token",
            "secrets",
            t,
            Status.CRITICAL,
            f"{svc} accepted forged admin tokens on {path}: {', '.join(accepted)}",
            value=len(accepted),
            unit="count",
            crit=0,
        )
    err = probe.get("error")
    if err:
        # a wrong/unprotected path is a configuration problem; anything else means
        # we do not know whether forgeries would work
        wrong_path = probe.get("error_kind") == "not_protected" or "without any token" in err
        status = Status.WARNING if wrong_path else Status.UNKNOWN
        return CheckResult(
            "secrets.forged_token", "secrets", t, status, f"probe of {svc} {path}: {err}"
        )
    tried = max(0, int(probe.get("tried") or 0) - 1)  # minus the baseline request
    return CheckResult(
        "secrets.forged_token",
        "secrets",
        t,
        Status.OK,
        f"{svc} rejected all {tried} forged tokens on {path}",
        value=0,
        unit="count",
        crit=0,
    )
