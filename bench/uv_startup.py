"""`uv run ultrawatch check` with uv's `compile-bytecode` (before issue 13) and
without it (after: ultrawatch writes the bytecode of what it imports on first
use), cold (every .pyc of the environment removed first) and warm; alternating,
medians, ratios after / before. Also checks that the "after" run prints nothing
on stderr but the check's own output.

    uv run python bench/uv_startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = "[dashboard]\ninterval = '2s'\n[[services]]\nname = 'x'\nurl = 'http://127.0.0.1:9'\n"


def drop_bytecode(root: Path) -> None:
    for cache in root.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def timed(before: bool, config: Path) -> tuple[float, str]:
    env = dict(os.environ)
    env.pop("UV_COMPILE_BYTECODE", None)
    if before:
        env["UV_COMPILE_BYTECODE"] = "1"  # what `[tool.uv] compile-bytecode = true` did
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["uv", "run", "ultrawatch", "check", "--config", str(config), "--format", "nagios"],
        capture_output=True,
        text=True,
        env=env,
    )
    return time.perf_counter() - t0, proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    venv = Path(sys.prefix)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "ultrawatch.toml")
        config.write_text(CONFIG)
        runs: dict[tuple[str, bool], list[float]] = {}
        stray = set()
        for _ in range(args.repeat):
            for before in (True, False):
                drop_bytecode(venv)
                cold, err = timed(before, config)
                warm, err2 = timed(before, config)
                runs.setdefault(("cold", before), []).append(cold)
                runs.setdefault(("warm", before), []).append(warm)
                if not before:
                    stray |= {line for line in (err + err2).splitlines() if line.strip()}
        drop_bytecode(venv)
        timed(False, config)  # leave the environment warm
    for kind in ("cold", "warm"):
        b = statistics.median(runs[(kind, True)])
        a = statistics.median(runs[(kind, False)])
        print(f"{kind}: before {b * 1000:.0f} ms, after {a * 1000:.0f} ms: ratio {a / b:.2f}")
    print("stderr of the 'after' runs:", sorted(stray) or "nothing")


if __name__ == "__main__":
    main()
