"""`ultrawatch demo`: start the embedded UltraMarket, then the console on it (or just serve it).

Whatever ends the demo (quitting the TUI, Ctrl+C, SIGTERM, a failed start),
everything it started is stopped and a temporary state directory removed; the
audit log of its actions is kept (under the user's state dir when the state is
temporary) and named at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from dashboard.demo.scenarios import get_scenario

log = logging.getLogger("ultrawatch.demo")


class _Stop(BaseException):
    """Raised in the main thread by a stop signal outside the TUI. A BaseException,
    like KeyboardInterrupt, so no `except Exception` on the way can swallow it."""


class _Stopper:
    """The handler of SIGTERM, SIGINT and SIGHUP.

    While the TUI runs, the main thread is inside Textual's asyncio loop, which
    would swallow an exception raised there (the stop lost, the demo running on):
    the handler asks the app to exit instead, and run_demo's cleanup follows.
    Before and after the TUI (starting the platform, `--serve`) it raises in the
    main thread. Signals are ignored only once the cleanup has started.
    """

    def __init__(self) -> None:
        self.app: Any = None  # the running UltrawatchApp, if any
        self.stopping = False  # a stop was raised, or the cleanup began: nothing more to do
        self.received: int | None = None  # the first stop signal (logged outside the handler)

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            # `timeout`, uv and a terminal may all deliver the same stop; a second
            # exception must not interrupt the cleanup of the first.
            return
        if self.received is None:
            self.received = signum
        app = self.app
        if app is not None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                # Signal-safe: queues the call and wakes the loop via its self-pipe.
                loop.call_soon_threadsafe(app.exit)
                return
        self.stopping = True
        raise KeyboardInterrupt if signum == signal.SIGINT else _Stop


# SIGHUP too: a dropped SSH session must not leave PostgreSQL and Redis behind.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def run_demo(args: argparse.Namespace) -> int:
    try:
        scenario = get_scenario(args.scenario)
        pooled, hint = _pooler_wanted(args)
    except ValueError as e:
        print(f"ultrawatch demo: {e}", file=sys.stderr)
        return 2
    if args.state_dir:
        state_dir, temporary = Path(args.state_dir), False
        state_dir.mkdir(parents=True, exist_ok=True)
    else:
        state_dir, temporary = Path(tempfile.mkdtemp(prefix="ultrawatch-demo-")), True
    # The temporary dir goes at exit; what was done in the console stays on record.
    audit = demo_audit_path() if temporary and not args.serve else state_dir / "audit.jsonl"
    _setup_logging(state_dir, to_stderr=args.serve)
    if hint:
        log.info("%s", hint)

    from dashboard.demo.platform import Platform

    platform = Platform(
        state_dir,
        scenario,
        postgres_dsn=args.postgres_dsn,
        redis_url=args.redis_url,
        force_redis_locks=getattr(args, "force_redis_locks", False),
        pgbouncer=pooled,
        audit_log=audit,
    )
    stopper = _Stopper()
    previous = {sig: signal.signal(sig, stopper) for sig in _STOP_SIGNALS}
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
            from dashboard.tui.app import UltrawatchApp

            config = load_config(platform.config_path)
            app = UltrawatchApp(config, read_only=args.read_only)
            stopper.app = app
            try:
                app.run()
            finally:
                stopper.app = None
            code = app.return_code or 0
    except (KeyboardInterrupt, _Stop):
        code = 0
    except Exception as e:
        log.error("demo failed: %s: %s", type(e).__name__, e)
        print(f"ultrawatch demo: {e}", file=sys.stderr)
        code = 3
    finally:
        # No second Ctrl+C may cut the cleanup short and leave processes behind.
        stopper.stopping = True
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        if stopper.received is not None:
            log.info("%s received: stopping", signal.Signals(stopper.received).name)
        try:
            _stop(platform, audit, say=not args.serve)
        finally:
            logging.shutdown()
            if temporary:
                shutil.rmtree(state_dir, ignore_errors=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return code


def _pooler_wanted(args: argparse.Namespace) -> tuple[bool, str | None]:
    """(the services behind a real PgBouncer?, the one line said about it). The
    default: behind one when `pgbouncer` is installed; `--pgbouncer` insists on it,
    `--no-pgbouncer` goes straight to PostgreSQL."""
    from dashboard.demo.pgbouncer import INSTALL, pgbouncer_binary

    wanted = getattr(args, "pgbouncer", None)
    if wanted is False:
        return False, "--no-pgbouncer: the services reach PostgreSQL directly"
    found = pgbouncer_binary() is not None
    if wanted and not found:
        raise ValueError(f"--pgbouncer: pgbouncer not found: {INSTALL}")
    if found:
        return True, "the services reach PostgreSQL through PgBouncer (--no-pgbouncer: directly)"
    return (
        False,
        f"PgBouncer is not installed, the services reach PostgreSQL directly; to put them "
        f"behind one: {INSTALL}",
    )


def demo_audit_path() -> Path:
    """The demo's audit log when its state is temporary: under the user's state dir
    (XDG_STATE_HOME), beside the console's own audit log."""
    import platformdirs

    return Path(platformdirs.user_state_dir("ultrawatch")) / "demo-audit.jsonl"


def _stop(platform: Any, audit: Path, *, say: bool) -> None:
    """Stop the platform; with the TUI gone, stopping takes seconds: say so on the
    terminal (`say`), then where the audit log is."""
    if say:
        _say("stopping: draining services, stopping Redis, PostgreSQL…")
    t0 = time.monotonic()
    platform.stop()
    if say:
        where = f"; audit log of the actions taken: {audit}" if audit.exists() else ""
        _say(f"stopped in {time.monotonic() - t0:.1f}s{where}")


def _say(text: str) -> None:
    print(f"ultrawatch demo: {text}", file=sys.stderr, flush=True)


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
