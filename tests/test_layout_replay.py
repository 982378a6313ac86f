"""A recording made before the layout change (tests/data/pre_layout.sqlite: twelve
rounds of the live demo, incident scenario) must replay with the verdicts it had
then (tests/data/pre_layout_verdicts.json, written by that day's code)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from dashboard.recording import report_at

DATA = Path(__file__).parent / "data"


@pytest.fixture
def recording(tmp_path: Path) -> str:
    # Opening a recording may write (WAL files, schema): work on a copy.
    copy = tmp_path / "pre_layout.sqlite"
    shutil.copy(DATA / "pre_layout.sqlite", copy)
    return str(copy)


# Checks added since the recording was made, each for a stated reason; every other
# check must come back exactly as it was judged then.
ADDED = {
    # issue 17, a stable set of checks: the store's check is reported in every round,
    # not only when the store cannot be read
    "secrets.store": ("ok", "dotenv store /tmp/rec/state/.env read: 2 of 2 keys present"),
    # issue 13, the leak judged early: the heap each service reports (the recording
    # has the figure, not the trend kept since)
    **{
        f"service.{name}.heap": ("ok", r"heap \d+\.\d MiB; no trend recorded")
        for name in ("order-service", "payment-service", "product-service", "user-service")
    },
}


def test_pre_layout_recording_replays_with_the_same_verdicts(recording: str) -> None:
    expected = json.loads((DATA / "pre_layout_verdicts.json").read_text())
    assert len(expected) == 12
    for moment in expected:
        report = report_at(None, recording, moment["at"])
        got = [[c.id, c.status.value, c.summary, c.value] for c in report.checks]
        added = [g for g in got if g[0] in ADDED]
        assert sorted(g[0] for g in added) == sorted(ADDED)
        for check, status, summary, _value in added:
            want_status, want = ADDED[check]
            assert status == want_status and (re.fullmatch(want, summary) or summary == want), (
                check,
                summary,
            )
        kept = [g for g in got if g[0] not in ADDED]
        assert sorted(kept, key=str) == sorted(moment["checks"], key=str), moment["at"]
        assert report.status.value == moment["status"]


def test_the_recording_shows_all_five_failure_modes(recording: str) -> None:
    # The guard above is only worth something if the recording has alerts to keep.
    report = report_at(None, recording, None)
    raised = {c.id for c in report.checks if c.status.value != "ok"}
    assert {"redis.locks.no_ttl", "redis.locks.stale", "secrets.distinct"} <= raised
    assert "postgres.budget.payment-service" in raised
    assert "service.order-service.listeners" in raised
