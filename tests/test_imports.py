"""Import hygiene, enforced: the headless path and the actions never load
textual or rich, and collectors/ never imports dashboard/."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import importlib, pkgutil, sys
import collectors
for m in pkgutil.iter_modules(collectors.__path__):
    importlib.import_module(f"collectors.{m.name}")
import dashboard.headless, dashboard.cli, dashboard.actions
import dashboard.actions as actions
for m in pkgutil.iter_modules(actions.__path__):
    importlib.import_module(f"dashboard.actions.{m.name}")
bad = sorted(n for n in sys.modules if n.split(".")[0] in ("textual", "rich"))
print(",".join(bad))
"""


def test_headless_and_actions_load_no_textual_or_rich() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_collectors_never_import_dashboard_textual_or_rich() -> None:
    files = sorted((ROOT / "collectors").rglob("*.py"))
    assert files
    offenders = {
        str(f.relative_to(ROOT)): sorted(_imports(f) & {"dashboard", "textual", "rich"})
        for f in files
    }
    assert {f: bad for f, bad in offenders.items() if bad} == {}


def test_actions_and_headless_never_import_textual_or_rich() -> None:
    files = [ROOT / "dashboard" / "headless.py", *(ROOT / "dashboard" / "actions").rglob("*.py")]
    offenders = {str(f.relative_to(ROOT)): _imports(f) & {"textual", "rich"} for f in files}
    assert {f: bad for f, bad in offenders.items() if bad} == {}


CHECK_PROBE = """
import contextlib, io, sys
from dashboard.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    main(["check", "--config", sys.argv[1], "--timeout", "2"])
heavy = ("textual", "rich", "psycopg", "httpx", "aiohttp", "psutil", "jwt")
print(",".join(sorted({n.split(".")[0] for n in sys.modules} & set(heavy))))
"""


def test_check_imports_only_what_the_configured_collectors_need(tmp_path: Path) -> None:
    config = tmp_path / "ultrawatch.toml"
    config.write_text(
        '[redis]\nurl = "redis://127.0.0.1:1/0"\n'
        f'[actions]\naudit_log = "{tmp_path / "audit.jsonl"}"\n'
    )
    result = subprocess.run(
        [sys.executable, "-c", CHECK_PROBE, str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""  # a Redis-only check loads no other client library
