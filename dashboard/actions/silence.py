"""Silences in Alertmanager: `ultrawatch silence`, `silences`, `unsilence`, and the
TUI's acknowledge / snooze when `[alertmanager]` is configured.

A silence is made in Alertmanager, not kept here, so the whole rota (every console,
every `serve`, the pager) sees the same one. Like every action it is planned,
confirmed, done, verified (read back from Alertmanager) and audited.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Mapping
from typing import Any

from collectors.config import Config
from collectors.core.redact import printable
from collectors.core.units import format_duration, iso_time, parse_iso
from dashboard.actions.audit import os_user
from dashboard.actions.base import ActionRefused, Outcome, Plan, Progress, Result
from dashboard.alertmanager import AlertmanagerApi, AlertmanagerError, silence_body


def _api(config: Config) -> AlertmanagerApi:
    if config.alertmanager is None:
        raise ActionRefused("no [alertmanager] in the configuration: silences live there")
    return AlertmanagerApi.from_config(config)


def _matchers_text(matchers: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in matchers.items())


class SilenceAction:
    name = "silence"

    def __init__(
        self,
        config: Config,
        matchers: Mapping[str, str],
        *,
        duration: float,
        comment: str,
        start: float | None = None,
        created_by: str | None = None,
    ) -> None:
        self.config = config
        # The platform's own alerts only, unless the engineer named another.
        self.matchers = {**dict(matchers), "platform": matchers.get("platform", config.platform)}
        self.duration = duration
        self.comment = comment
        self.start = start
        self.created_by = created_by or os_user()
        self.audit_target = _matchers_text(self.matchers)
        self.audit_params = {"matchers": self.matchers, "comment": comment}
        self.silence_id: str | None = None
        self._api: AlertmanagerApi | None = None

    def api(self) -> AlertmanagerApi:
        if self._api is None:
            self._api = _api(self.config)
        return self._api

    async def plan(self) -> Plan:
        api = self.api()
        now = time.time()
        starts = self.start if self.start is not None else now
        if starts + self.duration <= now:
            raise ActionRefused("that window is over already: nothing to silence")
        ends = starts + self.duration
        target = _matchers_text(self.matchers)
        when = "now" if self.start is None else iso_time(starts)
        return Plan(
            action="silence",
            target=target,
            summary=(
                f"silence alerts matching {target} from {when} for "
                f"{format_duration(self.duration)} in {', '.join(api.urls)}"
            ),
            details=[
                ("matchers", target),
                ("starts", iso_time(starts)),
                ("ends", iso_time(ends)),
                ("created by", self.created_by),
                ("comment", self.comment),
            ],
            params={
                "matchers": self.matchers,
                "starts": iso_time(starts),
                "ends": iso_time(ends),
                "comment": self.comment,
            },
            # production = true: the check id is what the engineer types (else the matchers).
            confirm_name=self.matchers.get("alertname", target),
            dangerous=False,
        )

    async def execute(self, plan: Plan, progress: Progress) -> None:
        body = silence_body(
            self.matchers,
            starts=parse_iso(plan.params["starts"]) or time.time(),
            ends=parse_iso(plan.params["ends"]) or time.time(),
            created_by=self.created_by,
            comment=self.comment,
        )
        api = self.api()
        progress(f"creating the silence in {api.urls[0]}")
        self.silence_id = await api.first(lambda base: api.create_silence(base, body))

    async def verify(self, plan: Plan, progress: Progress) -> Outcome:
        assert self.silence_id is not None
        found = await _find(self.api(), self.silence_id)
        state = ((found or {}).get("status") or {}).get("state")
        details = [("id", self.silence_id), ("state", str(state)), ("ends", plan.params["ends"])]
        if state in ("active", "pending"):
            return Outcome(
                Result.VERIFIED,
                f"silence {self.silence_id} {state} until {plan.params['ends']}: {plan.target}",
                details,
            )
        return Outcome(
            Result.NOT_VERIFIED,
            f"silence {self.silence_id} created but Alertmanager shows it {state or 'absent'}",
            details,
        )

    async def close(self) -> None:
        if self._api is not None:
            await self._api.aclose()


class UnsilenceAction:
    name = "unsilence"

    def __init__(self, config: Config, silence_id: str) -> None:
        self.config = config
        self.silence_id = silence_id
        self.audit_target = silence_id
        self.audit_params: dict[str, Any] = {}
        self._api: AlertmanagerApi | None = None

    def api(self) -> AlertmanagerApi:
        if self._api is None:
            self._api = _api(self.config)
        return self._api

    async def plan(self) -> Plan:
        found = await _find(self.api(), self.silence_id)
        if found is None:
            raise ActionRefused(f"no silence {self.silence_id!r} in Alertmanager")
        state = (found.get("status") or {}).get("state")
        if state == "expired":
            raise ActionRefused(f"silence {self.silence_id} has expired already")
        matchers = _shown_matchers(found)
        return Plan(
            action="unsilence",
            target=self.silence_id,
            summary=f"expire silence {self.silence_id} ({matchers}): its alerts notify again",
            details=[
                ("matchers", matchers),
                ("state", str(state)),
                ("created by", printable(str(found.get("createdBy", "")))),
                ("comment", printable(str(found.get("comment", "")))),
            ],
            params={"matchers": matchers},
            dangerous=False,
        )

    async def execute(self, plan: Plan, progress: Progress) -> None:
        api = self.api()
        await api.first(lambda base: api.expire_silence(base, self.silence_id))

    async def verify(self, plan: Plan, progress: Progress) -> Outcome:
        found = await _find(self.api(), self.silence_id)
        state = ((found or {}).get("status") or {}).get("state")
        if state == "expired":
            return Outcome(Result.VERIFIED, f"silence {self.silence_id} expired")
        return Outcome(Result.NOT_VERIFIED, f"silence {self.silence_id} is still {state}")

    async def close(self) -> None:
        if self._api is not None:
            await self._api.aclose()


async def _find(api: AlertmanagerApi, silence_id: str) -> dict[str, Any] | None:
    silences = await api.first(api.silences)
    return next((s for s in silences if s.get("id") == silence_id), None)


def _shown_matchers(silence: Mapping[str, Any]) -> str:
    parts = []
    for m in silence.get("matchers") or []:
        op = ("=" if m.get("isEqual", True) else "!=") if not m.get("isRegex") else "=~"
        if m.get("isRegex") and not m.get("isEqual", True):
            op = "!~"
        parts.append(f"{m.get('name')}{op}{m.get('value')}")
    return printable(",".join(parts))


def from_cli(config: Config, args: argparse.Namespace) -> SilenceAction | UnsilenceAction:
    if hasattr(args, "silence_id"):
        return UnsilenceAction(config, args.silence_id)
    matchers = dict(args.match)
    if args.check_id:
        matchers["alertname"] = args.check_id
    if not matchers:
        raise ActionRefused("silence: name a CHECK_ID or give --match LABEL=VALUE")
    start = None
    if args.start:
        start = parse_iso(args.start)
        if start is None:
            raise ActionRefused(f"--start: expected an ISO time, got {args.start!r}")
    return SilenceAction(
        config, matchers, duration=args.duration, comment=args.comment, start=start
    )


# ----------------------------------------------------------------- listing


def run_silences(config: Config, args: argparse.Namespace) -> int:
    """`ultrawatch silences`: this platform's silences that are active or pending."""
    if config.alertmanager is None:
        print("ultrawatch: silences: no [alertmanager] in the configuration", file=sys.stderr)
        return 3
    try:
        silences = asyncio.run(_list(config))
    except AlertmanagerError as e:
        print(f"ultrawatch: silences: {e}", file=sys.stderr)
        return 3
    shown = [s for s in silences if args.all or _ours(s, config.platform)]
    if not shown:
        print("no silences")
        return 0
    shown.sort(key=lambda s: (str(s.get("status", {}).get("state")), str(s.get("endsAt"))))
    for s in shown:
        state = (s.get("status") or {}).get("state", "?")
        print(
            f"{printable(str(s.get('id')))}  {state:8}  {_shown_matchers(s)}  "
            f"{printable(str(s.get('startsAt')))} .. {printable(str(s.get('endsAt')))}  "
            f"by {printable(str(s.get('createdBy')))}: {printable(str(s.get('comment')))}"
        )
    return 0


async def _list(config: Config) -> list[dict[str, Any]]:
    api = AlertmanagerApi.from_config(config)
    try:
        return await api.first(api.silences)
    finally:
        await api.aclose()


def _ours(silence: Mapping[str, Any], platform: str) -> bool:
    if (silence.get("status") or {}).get("state") == "expired":
        return False
    return any(
        m.get("name") == "platform" and m.get("value") == platform and not m.get("isRegex")
        for m in silence.get("matchers") or []
    )
