"""The lint the project keeps clean, run by the suite itself, so `uv run pytest`
(the README's one test command, and all `.ci/run` runs) also proves it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "args", [("check", "--no-fix", "."), ("format", "--check", ".")], ids=["check", "format"]
)
def test_ruff_is_clean(args: tuple[str, ...]) -> None:
    # ruff from the dev group, in the same environment as the tests.
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"ruff {' '.join(args)}:\n{result.stdout}{result.stderr}"
