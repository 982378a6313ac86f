"""`ultrawatch demo`: start the embedded UltraMarket, then the console on it (or just serve it).

Whatever ends the demo (quitting the TUI, Ctrl+C, SIGTERM, a failed start),
everything it started is stopped and a temporary state directory removed.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from dashboard.demo.scenarios import get_scenario

log = logging.getLogger("ultrawatch.demo")


class _Stop(Exception):
    """Raised in the main thread by the SIGTERM handler."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    # Once only: `timeout`, uv and a terminal may all deliver the same stop, and a
    # second exception must not interrupt the cleanup of the first.
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt if signum == signal.SIGINT else _Stop


# SIGHUP too: a dropped SSH session must not leave PostgreSQL and Redis behind.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def run_demo(args: argparse.Namespace) -> int:
    try:
        scenario = get_scenario(args.scenario)
    except ValueError as e:
        print(f"ultrawatch demo: {e}", file=sys.stderr)
        return 2
    if args.state_dir:
        state_dir, temporary = Path(args.state_dir), False
        state_dir.mkdir(parents=True, exist_ok=True)
    else:
        state_dir, temporary = Path(tempfile.mkdtemp(prefix="ultrawatch-demo-")), True
    _setup_logging(state_dir, to_stderr=args.serve)

    from dashboard.demo.platform import Platform

    platform = Platform(
        state_dir, scenario, postgres_dsn=args.postgres_dsn, redis_url=args.redis_url
    )
    previous = {sig: signal.signal(sig, _on_signal) for sig in _STOP_SIGNALS}
    code = 0
    try:
        text = platform.start()
        if args.serve:
            sys.stdout.write(text)
            sys.stdout.flush()
            log.info(
                "serving scenario %r from %s; Ctrl+C or SIGTERM stops it", scenario.name, state_dir
            )
            forever = threading.Event()
            while not forever.wait(3600):
                pass
        else:
            from collectors.config import load_config
            from dashboard.app import run_tui

            config = load_config(platform.config_path)
            code = run_tui(config, read_only=args.read_only)
    except (KeyboardInterrupt, _Stop):
        code = 0
    except Exception as e:
        log.error("demo failed: %s: %s", type(e).__name__, e)
        print(f"ultrawatch demo: {e}", file=sys.stderr)
        code = 3
    finally:
        # No second Ctrl+C may cut the cleanup short and leave processes behind.
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        try:
            platform.stop()
        finally:
            logging.shutdown()
            if temporary:
                shutil.rmtree(state_dir, ignore_errors=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return code


def _setup_logging(state_dir: Path, *, to_stderr: bool) -> None:
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [logging.FileHandler(state_dir / "logs" / "demo.log")]
    if to_stderr:  # with the TUI on screen, stderr would scribble over it
        handlers.append(logging.StreamHandler(sys.stderr))
    fmt = logging.Formatter("%(asctime)s demo %(levelname)s %(message)s")
    for h in handlers:
        h.setFormatter(fmt)
        log.addHandler(h)
    log.setLevel(logging.INFO)
    log.propagate = False
