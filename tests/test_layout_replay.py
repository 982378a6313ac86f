"""A recording made before the layout change (tests/data/pre_layout.sqlite: twelve
rounds of the live demo, incident scenario) must replay with the verdicts it had
then (tests/data/pre_layout_verdicts.json, written by that day's code)."""

from __future__ import annotations

import json
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


def test_pre_layout_recording_replays_with_the_same_verdicts(recording: str) -> None:
    expected = json.loads((DATA / "pre_layout_verdicts.json").read_text())
    assert len(expected) == 12
    for moment in expected:
        report = report_at(None, recording, moment["at"])
        got = [[c.id, c.status.value, c.summary, c.value] for c in report.checks]
        assert sorted(got, key=str) == sorted(moment["checks"], key=str), moment["at"]
        assert report.status.value == moment["status"]


def test_the_recording_shows_all_five_failure_modes(recording: str) -> None:
    # The guard above is only worth something if the recording has alerts to keep.
    report = report_at(None, recording, None)
    raised = {c.id for c in report.checks if c.status.value != "ok"}
    assert {"redis.locks.no_ttl", "redis.locks.stale", "secrets.distinct"} <= raised
    assert "postgres.budget.payment-service" in raised
    assert "service.order-service.listeners" in raised
