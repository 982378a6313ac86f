"""Alertmanager, API v2: the alerts ultrawatch raises, posted and re-sent; silences.

There is no maintained Python client, so this is the API over the project's one
HTTP client (collectors/core/http.py, aiohttp). `serve`, the TUI and the silence
commands share it; nothing here imports textual.

Labels identify an alert, and Alertmanager deduplicates alerts with equal labels:
every sender (a `serve`, a console with --alertmanager) builds them from the check
alone (`alertname` = check id, `severity`, `platform`, `component`, `target`), so two
senders watching one platform make one alert, and two platforms never collide.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from collectors.config import AlertmanagerConfig, Config, HttpConfig
from collectors.core.http import HttpClient
from collectors.core.model import CheckResult, Report, Status
from collectors.core.redact import printable, scrub
from collectors.core.units import (
    ByteSize,
    PositiveCount,
    Timeout,
    clock_time,
    format_duration,
    iso_time,
    parse_iso,
)
from collectors.registry import alertmanager_secrets

T = TypeVar("T")
SELF_CHECK = "self.alertmanager"
# A check's status -> the alert's `severity`. Unknown is sent as a warning and says
# so in a label of its own (`check_status`), so routes can tell a blind spot apart.
SEVERITY = {Status.WARNING: "warning", Status.CRITICAL: "critical", Status.UNKNOWN: "warning"}
BACKOFF_CAP = 30.0  # seconds between attempts at an Alertmanager that is down, at most
# Open alerts carry endsAt = now + ENDS_AFTER resends: a sender that stops (stopped,
# crashed) resolves nothing itself; Alertmanager lets them lapse after that.
ENDS_AFTER = 4

# The remedy an alert carries: the command that fixes it (the check id's head).
REMEDIES: tuple[tuple[str, str], ...] = (
    ("postgres.idle_in_transaction", "ultrawatch terminate PID (the session holding it open)"),
    ("postgres.blocked", "ultrawatch cancel PID | terminate PID (the blocking session)"),
    ("postgres.connections", "ultrawatch terminate PID (idle sessions of the top user)"),
    ("postgres.budget.", "ultrawatch drain SERVICE (the service over its budget)"),
    ("redis.locks.stale", "ultrawatch release-lock KEY (the stale lock)"),
    ("redis.locks.no_ttl", "ultrawatch release-lock KEY (after checking its owner is gone)"),
    ("pgbouncer.paused", "ultrawatch pgbouncer resume DATABASE"),
    ("secrets.", "ultrawatch rotate-secret KEY"),
    ("service.", "ultrawatch drain SERVICE | undrain SERVICE"),
)


def remedy(check: CheckResult) -> str | None:
    if check.id.endswith((".reachable", ".latency")):
        return None
    return next((text for head, text in REMEDIES if check.id.startswith(head)), None)


def alert_labels(check: CheckResult, platform: str) -> dict[str, str]:
    labels = {
        "alertname": check.id,
        "severity": SEVERITY.get(check.status, "warning"),
        "platform": platform,
        "component": check.component,
        "target": check.target,
    }
    if check.status is Status.UNKNOWN:
        labels["check_status"] = "unknown"
    return labels


def alert_annotations(check: CheckResult) -> dict[str, str]:
    out = {"summary": check.summary}
    fix = remedy(check)
    if fix:
        out["remedy"] = fix
    return out


LabelKey = tuple[tuple[str, str], ...]


def _key(labels: Mapping[str, str]) -> LabelKey:
    return tuple(sorted(labels.items()))


# ------------------------------------------------------------------ the API


class AlertmanagerError(Exception):
    """An Alertmanager that did not answer as the API says; the text says which and why."""


class AlertmanagerApi:
    """The API v2 calls ultrawatch makes, each against one base URL. Credentials go in
    headers, never in URLs, and every error text is scrubbed of them."""

    def __init__(self, settings: AlertmanagerConfig, secrets: Sequence[str] = ()) -> None:
        self.settings = settings
        self.urls = settings.all_urls
        self.secrets = [s for s in secrets if s]
        self.http = HttpClient(
            HttpConfig(
                concurrency=PositiveCount(8),
                timeout=Timeout(settings.timeout),
                max_body=ByteSize(64 << 20),  # GET /api/v2/alerts of a big platform
                max_redirects=0,
                ca_file=settings.ca_file,
            )
        )
        self.headers = {"Content-Type": "application/json"}
        if settings.bearer_token:
            self.headers["Authorization"] = f"Bearer {settings.bearer_token}"
        elif settings.username is not None and settings.password is not None:
            import base64

            pair = f"{settings.username}:{settings.password}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()

    @classmethod
    def from_config(cls, config: Config) -> AlertmanagerApi:
        assert config.alertmanager is not None
        return cls(config.alertmanager, alertmanager_secrets(config))

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _call(self, method: str, url: str, body: Any = None) -> Any:
        got = await self.http.request(method, url, headers=self.headers, json=body)
        if got.error is not None:
            raise AlertmanagerError(self._clean(f"{url}: {got.error}"))
        if got.status is None or not 200 <= got.status < 300:
            text = got.body[:200].decode("utf-8", "replace").strip()
            raise AlertmanagerError(self._clean(f"{url}: HTTP {got.status}: {text}"))
        if not got.body:
            return None
        try:
            return json.loads(got.body)
        except ValueError:
            raise AlertmanagerError(self._clean(f"{url}: not JSON: {got.body[:80]!r}")) from None

    def _clean(self, text: str) -> str:
        return printable(scrub(text, self.secrets))

    async def post_alerts(self, base: str, alerts: list[dict[str, Any]]) -> None:
        await self._call("POST", f"{base}/api/v2/alerts", alerts)

    async def alerts(self, base: str, matchers: Mapping[str, str]) -> list[dict[str, Any]]:
        query = urlencode([("filter", f'{k}="{v}"') for k, v in matchers.items()])
        got = await self._call("GET", f"{base}/api/v2/alerts?{query}")
        return got if isinstance(got, list) else []

    async def silences(self, base: str) -> list[dict[str, Any]]:
        got = await self._call("GET", f"{base}/api/v2/silences")
        return got if isinstance(got, list) else []

    async def create_silence(self, base: str, body: dict[str, Any]) -> str:
        got = await self._call("POST", f"{base}/api/v2/silences", body)
        sid = got.get("silenceID") if isinstance(got, dict) else None
        if not isinstance(sid, str):
            raise AlertmanagerError(f"{base}: no silenceID in the answer")
        return sid

    async def expire_silence(self, base: str, silence_id: str) -> None:
        await self._call("DELETE", f"{base}/api/v2/silence/{quote(silence_id, safe='')}")

    async def first(self, call: Callable[[str], Awaitable[T]]) -> T:
        """`call(base)` against each URL in turn until one answers (an HA pair shares
        silences and alerts through its gossip); the last error if none does."""
        errors = []
        for base in self.urls:
            try:
                return await call(base)
            except AlertmanagerError as e:
                errors.append(str(e))
        raise AlertmanagerError("; ".join(errors) or "no Alertmanager URL configured")


def silence_body(
    matchers: Mapping[str, str],
    *,
    starts: float,
    ends: float,
    created_by: str,
    comment: str,
) -> dict[str, Any]:
    return {
        "matchers": [
            {"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers.items()
        ],
        "startsAt": iso_time(starts, "milliseconds"),
        "endsAt": iso_time(ends, "milliseconds"),
        "createdBy": created_by,
        "comment": comment,
    }


# ------------------------------------------------------ what Alertmanager says


@dataclass(frozen=True)
class Silenced:
    """Alertmanager's word on one open alert: silenced (by whom, until when) or inhibited."""

    state: str  # "active", "suppressed", "unprocessed"
    silenced_by: tuple[tuple[str, str, float | None], ...] = ()  # (id, createdBy, endsAt)
    inhibited: bool = False

    @property
    def text(self) -> str:
        if self.silenced_by:
            _, who, until = self.silenced_by[0]
            end = clock_time(until) if until else "?"
            return f"silenced by {who} until {end}"
        if self.inhibited:
            return "inhibited"
        return ""


async def alert_states(api: AlertmanagerApi, platform: str) -> dict[str, Silenced]:
    """alertname -> what Alertmanager says of this platform's open alerts (one
    answering Alertmanager of the pair: they gossip silences)."""

    async def read(base: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return await api.alerts(base, {"platform": platform}), await api.silences(base)

    alerts, silences = await api.first(read)
    by_id = {s.get("id"): s for s in silences if isinstance(s, dict)}
    out: dict[str, Silenced] = {}
    for a in alerts:
        name = (a.get("labels") or {}).get("alertname")
        status = a.get("status") or {}
        if not isinstance(name, str):
            continue
        sil = []
        for sid in status.get("silencedBy") or []:
            s = by_id.get(sid) or {}
            sil.append(
                (str(sid), printable(str(s.get("createdBy", "?"))), parse_iso(s.get("endsAt")))
            )
        out[name] = Silenced(
            state=str(status.get("state", "")),
            silenced_by=tuple(sil),
            inhibited=bool(status.get("inhibitedBy")),
        )
    return out


# ---------------------------------------------------------------- the sender


@dataclass
class _Url:
    base: str
    pending: dict[LabelKey, dict[str, Any]] = field(default_factory=dict)  # not yet delivered
    ok: bool | None = None  # None: not tried yet
    error: str | None = None
    failures: int = 0
    next_attempt: float = 0.0
    last_full: float = -1e18  # when every open alert was last delivered here
    delivered: int = 0  # posts that succeeded


@dataclass
class _Open:
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float


class Alerter:
    """Turns judged rounds into Alertmanager alerts and delivers them to each URL.

    `observe(report)` after every round (cheap, no I/O): what opened, changed or
    cleared is queued for every URL; `run()` delivers in the background, so a slow or
    absent Alertmanager never holds a round. Every `resend` all open alerts go again
    (an Alertmanager that restarted has them back within one resend), and an
    Alertmanager that comes back after failures gets the whole state at once.
    Cleared alerts are posted with endsAt = now until delivered: none is lost.
    Stopping resolves nothing (a stopped watcher is not a fixed platform).
    """

    def __init__(
        self,
        config: Config,
        api: AlertmanagerApi | None = None,
        *,
        clock: Any = time.time,
    ) -> None:
        assert config.alertmanager is not None
        self.config = config
        self.settings = config.alertmanager
        self.platform = config.platform
        self.api = api or AlertmanagerApi.from_config(config)
        self.clock = clock
        self.resend = float(self.settings.resend)
        self.open: dict[str, _Open] = {}  # check id -> the alert sent for it
        self.urls = [_Url(u) for u in self.api.urls]
        self._wake = asyncio.Event()

    # ------------------------------------------------------------- observe

    def observe(self, report: Report) -> None:
        now = self.clock()
        seen: set[str] = set()
        blind = {(r.component, r.target) for r in report.snapshot.readings if not r.ok}
        for c in report.checks:
            if c.status is Status.OK or (c.id == SELF_CHECK and c.status is Status.CRITICAL):
                # No Alertmanager takes alerts: that one would reach none, and would be
                # delivered, stale, the moment one answers again (/metrics, /health and
                # the console say it meanwhile).
                continue
            if c.unread:
                # Not read this round: no verdict. An alert already open stays open
                # (a target down does not resolve its alerts); none is opened.
                if c.id in self.open:
                    seen.add(c.id)
                continue
            seen.add(c.id)
            self._raise(c, now)
        for gone in self.open.keys() - seen:
            a = self.open[gone]
            if (a.labels["component"], a.labels["target"]) in blind:
                continue  # its target was not read: kept open, like the TUI's alerts
            self._resolve(gone, now)
        if any(u.pending for u in self.urls):
            self._wake.set()

    def _raise(self, c: CheckResult, now: float) -> None:
        labels, notes = alert_labels(c, self.platform), alert_annotations(c)
        held = self.open.get(c.id)
        if held is not None and held.labels == labels:
            if held.annotations != notes:
                held.annotations = notes  # a new summary rides on the next resend
            return
        if held is not None:
            # Severity changed: another label set, so another alert; the old one ends.
            self._resolve(c.id, now)
        alert = self.open[c.id] = _Open(labels, notes, now)
        for u in self.urls:
            u.pending[_key(labels)] = self._payload(alert, now)

    def _resolve(self, check_id: str, now: float) -> None:
        alert = self.open.pop(check_id)
        for u in self.urls:
            u.pending[_key(alert.labels)] = self._payload(alert, now, ends=now)

    def _payload(self, a: _Open, now: float, *, ends: float | None = None) -> dict[str, Any]:
        end = ends if ends is not None else now + ENDS_AFTER * self.resend
        return {
            "labels": a.labels,
            "annotations": a.annotations,
            "startsAt": iso_time(a.starts_at, "milliseconds"),
            "endsAt": iso_time(end, "milliseconds"),
        }

    # ------------------------------------------------------------- deliver

    async def deliver(self) -> None:
        """One delivery pass: each URL that is due gets what it lacks."""
        now = self.clock()
        due = [u for u in self.urls if now >= u.next_attempt and self._wants(u, now)]
        if due:
            await asyncio.gather(*(self._send(u, now) for u in due))

    def _wants(self, u: _Url, now: float) -> bool:
        return bool(u.pending) or not u.ok or now - u.last_full >= self.resend

    async def _send(self, u: _Url, now: float) -> None:
        full = not u.ok or now - u.last_full >= self.resend
        batch = dict(u.pending)
        if full:
            for a in self.open.values():
                batch[_key(a.labels)] = self._payload(a, now)
        try:
            await self.api.post_alerts(u.base, list(batch.values()))
        except AlertmanagerError as e:
            u.ok, u.error = False, str(e)
            u.failures += 1
            u.next_attempt = now + min(BACKOFF_CAP, self.resend, 2.0 ** (u.failures - 1))
            return
        for k in batch:
            # Keep what was queued while the post was under way.
            if u.pending.get(k) is batch[k]:
                del u.pending[k]
        u.ok, u.error, u.failures, u.next_attempt = True, None, 0, 0.0
        u.delivered += 1
        if full:
            u.last_full = now

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Deliver until cancelled (or `stop`): at once when a round queued something,
        else when the next resend or retry is due."""
        while stop is None or not stop.is_set():
            self._wake.clear()
            await self.deliver()
            try:
                await asyncio.wait_for(self._wake.wait(), self._next_due())
            except TimeoutError:
                pass

    def _next_due(self) -> float:
        now = self.clock()
        times = []
        for u in self.urls:
            at = u.next_attempt if not u.ok else max(u.next_attempt, u.last_full + self.resend)
            times.append(at - now)
        return max(0.05, min(times, default=self.resend))

    async def aclose(self) -> None:
        await self.api.aclose()

    # ---------------------------------------------------------- self check

    def check(self) -> CheckResult:
        """`self.alertmanager`: are alerts reaching Alertmanager? Critical when none
        of the URLs takes them, warning when one of a pair does not."""
        down = [u for u in self.urls if u.ok is False]
        n_open = len(self.open)
        where = ", ".join(u.base for u in self.urls)
        if not down:
            tried = any(u.ok for u in self.urls)
            summary = (
                f"{n_open} open alerts delivered to {where} (re-sent every "
                f"{format_duration(self.resend)})"
                if tried
                else f"{n_open} open alerts; first delivery to {where} under way"
            )
            status = Status.OK
        else:
            status = Status.CRITICAL if len(down) == len(self.urls) else Status.WARNING
            waits = [max(0.0, u.next_attempt - self.clock()) for u in down]
            summary = (
                f"{len(down)} of {len(self.urls)} Alertmanagers not taking alerts "
                f"({down[0].error}); {n_open} open alerts kept, retrying in {min(waits):.0f}s"
            )
        return CheckResult(
            SELF_CHECK,
            "self",
            "alertmanager",
            status,
            summary,
            value=float(len(down)),
            unit="count",
        )


def with_self_check(report: Report, alerter: Alerter | None) -> Report:
    """The report with `self.alertmanager` added (when alerts are sent)."""
    if alerter is None:
        return report
    return Report(snapshot=report.snapshot, checks=(*report.checks, alerter.check()))
