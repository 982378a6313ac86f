"""Judge a secrets Reading: strength, distinct, age, services' fingerprints, the probe.

A pure function of the reading and the `[secrets]` section (so recordings judge the
same, and a replay with another config judges with that config's max_age and grace
period). Summaries hold lengths, fingerprints and reasons; never a value.
"""

from __future__ import annotations

from collectors.core.model import CheckResult, Reading, Status
from collectors.core.thresholds import failure
from collectors.core.units import format_duration
from collectors.secrets.config import SecretsConfig, grace_period
from collectors.secrets.data import KeyInfo, Probe, Rotation, SecretsData, ServiceKeys

_STRENGTH_STATUS = {
    "ok": Status.OK,
    "low-entropy": Status.WARNING,
    "short": Status.CRITICAL,
    "known-weak": Status.CRITICAL,
    "missing": Status.CRITICAL,
}


def judge_secrets(reading: Reading, settings: SecretsConfig | None) -> list[CheckResult]:
    if not reading.ok:
        return [failure(reading, "secrets.store", "secret store")]
    assert settings is not None, "a secrets reading needs the [secrets] section"
    d: SecretsData = reading.data
    t = reading.target
    where = f"{d.store.kind} store" + (f" {d.store.path}" if d.store.path else "")
    out = [_strength(key, info, where, t) for key, info in d.keys.items()]
    wl = d.wordlist
    if wl is not None and wl.error:
        out.append(
            CheckResult(
                "secrets.wordlist",
                "secrets",
                t,
                Status.UNKNOWN,
                f"known-weak wordlist {wl.path} unreadable: {wl.error}",
            )
        )
    if len(settings.keys) >= 2:
        out.append(_distinct(d.distinct, settings.keys[0], settings.keys[1], t))
    out.append(_age(d.keys, float(settings.max_age), t, where))
    out.extend(_services(d, _grace_ends(d.rotation, settings), reading.taken_at))
    if d.probe is not None:
        out.append(_probe(d.probe, t))
    return out


def _strength(key: str, info: KeyInfo, where: str, t: str) -> CheckResult:
    strength = info.strength
    if strength == "missing":
        summary = f"{key} is missing from the {where}"
    else:
        reason = strength if info.reason is None else info.reason
        summary = f"{key} ({info.length} bytes, {info.fingerprint}): {reason}"
    status = _STRENGTH_STATUS.get(strength, Status.UNKNOWN)
    if info.previous_weak:
        # The old weak secret still signs valid tokens until --finish.
        summary += (
            f"; previous {info.previous_fingerprint} ({info.previous_weak}) is "
            "still accepted: finish the rotation once the grace period is over"
        )
        status = Status.worst([status, Status.WARNING])
    return CheckResult(
        f"secrets.{key}.strength",
        "secrets",
        t,
        status,
        summary,
        value=info.length,
        unit="bytes",
        crit=info.required_bytes,
        below=True,  # too few bytes is the alert
    )


def _distinct(distinct: bool | None, a: str, b: str, t: str) -> CheckResult:
    if distinct is None:
        status, summary = Status.UNKNOWN, f"cannot compare {a} and {b}: one is missing"
    elif distinct:
        status, summary = Status.OK, f"{a} and {b} differ"
    else:
        status = Status.CRITICAL
        summary = f"{a} and {b} are the same secret: a refresh token works as an access token"
    return CheckResult("secrets.distinct", "secrets", t, status, summary)


def _age(keys: dict[str, KeyInfo], max_age: float, t: str, where: str) -> CheckResult:
    present = {key: info for key, info in keys.items() if info.present}
    aged = [(info.age_s, key, info) for key, info in present.items() if info.age_s is not None]
    blind = [key for key, info in present.items() if info.age_s is None]
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
    source = "rotated" if info.age_source == "rotated_at" else "file last modified"
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


def _grace_ends(rotation: Rotation | None, settings: SecretsConfig) -> float | None:
    """When the rotation's grace period ends, by this config's grace period."""
    if rotation is None:
        return None
    if rotation.started_at is None:
        return rotation.grace_ends_at
    return rotation.started_at + grace_period(settings)


def _services(d: SecretsData, ends: float | None, taken_at: float) -> list[CheckResult]:
    return [_service(name, svc, ends, taken_at) for name, svc in d.services.items()]


def _service(name: str, svc: ServiceKeys, ends: float | None, taken_at: float) -> CheckResult:
    cid = f"service.{name}.secret_fingerprint"
    if svc.error:
        return CheckResult(
            cid,
            "services",
            name,
            Status.UNKNOWN,
            f"cannot read {name}'s key fingerprints: {svc.error}",
        )
    in_grace = ends is not None and taken_at < ends
    fp = svc.fingerprint
    if svc.matches:
        status, summary = Status.OK, f"{name} uses the store's current key ({fp})"
    elif svc.on_previous and ends is not None and in_grace:
        status = Status.WARNING
        summary = (
            f"{name} still on the previous key ({fp}); grace period ends in "
            f"{format_duration(max(0.0, ends - taken_at))}"
        )
    elif svc.on_previous:
        status = Status.CRITICAL
        summary = f"{name} still on the previous key ({fp}) after the grace period"
    elif in_grace:
        status = Status.WARNING
        summary = f"{name} reports key {fp}, not the store's; rotation in progress"
    else:
        status = Status.CRITICAL
        summary = f"{name} reports key {fp}, which is not the store's current key"
    return CheckResult(cid, "services", name, status, summary)


def _probe(probe: Probe, t: str) -> CheckResult:
    svc, path = probe.service, probe.path
    if probe.accepted:
        return CheckResult(
            "secrets.forged_token",
            "secrets",
            t,
            Status.CRITICAL,
            f"{svc} accepted forged admin tokens on {path}: {', '.join(probe.accepted)}",
            value=len(probe.accepted),
            unit="count",
            crit=0,
        )
    err = probe.error
    if err:
        # a wrong/unprotected path is a configuration problem; anything else means
        # we do not know whether forgeries would work
        wrong_path = probe.error_kind == "not_protected" or "without any token" in err
        status = Status.WARNING if wrong_path else Status.UNKNOWN
        return CheckResult(
            "secrets.forged_token", "secrets", t, status, f"probe of {svc} {path}: {err}"
        )
    tried = max(0, probe.tried - 1)  # minus the baseline request
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
