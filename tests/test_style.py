"""The lint the project keeps clean, run by the suite itself, so `uv run pytest`
(the README's one test command, and all `.ci/run` runs) also proves it: ruff (with
C901 at 12), the import contracts of the one rule of dependency (import-linter,
`[tool.importlinter]`), and the types (mypy, `[tool.mypy]`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    # Tools from the dev group, in the same environment as the tests.
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    "args", [("check", "--no-fix", "."), ("format", "--check", ".")], ids=["check", "format"]
)
def test_ruff_is_clean(args: tuple[str, ...]) -> None:
    result = _run([sys.executable, "-m", "ruff", *args])
    assert result.returncode == 0, f"ruff {' '.join(args)}:\n{result.stdout}{result.stderr}"


def test_imports_follow_the_rule_of_dependency() -> None:
    # core <- target packages (independent) <- engine <- dashboard <- dashboard.tui;
    # textual and rich only under dashboard.tui. --no-cache: nothing written to the tree.
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = _run([str(lint_imports), "--no-cache"])
    assert result.returncode == 0, f"lint-imports:\n{result.stdout}{result.stderr}"


def test_mypy_is_clean() -> None:
    # Files and settings from [tool.mypy] in pyproject.toml.
    result = _run([sys.executable, "-m", "mypy"], timeout=300)
    assert result.returncode == 0, f"mypy:\n{result.stdout}{result.stderr}"
