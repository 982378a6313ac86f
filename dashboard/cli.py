"""The `ultrawatch` command. Heavy imports happen inside the subcommand that needs them,
so `ultrawatch check` never loads textual."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from collectors.config import Config, load_config
from collectors.core.settings import ConfigError

if TYPE_CHECKING:
    from dashboard.actions.base import Plan

EXIT_UNKNOWN = 3
_command = ""


def _add_config(p: argparse.ArgumentParser, default: Any = argparse.SUPPRESS) -> None:
    # Subcommands repeat the global flags; SUPPRESS keeps a flag given before
    # the subcommand from being reset by the subcommand's default.
    p.add_argument(
        "--config", metavar="FILE", default=default, help="configuration file (ultrawatch.toml)"
    )


def _target_names() -> tuple[str, ...]:
    from collectors.registry import NAMES

    return NAMES


def _add_read_only(p: argparse.ArgumentParser, default: Any = argparse.SUPPRESS) -> None:
    p.add_argument(
        "--read-only", action="store_true", default=default, help="no actions, only watching"
    )


def _add_alertmanager(p: argparse.ArgumentParser, default: Any = argparse.SUPPRESS) -> None:
    p.add_argument(
        "--alertmanager",
        action="store_true",
        default=default,
        help="the console sends alerts to [alertmanager] too (like `serve`)",
    )


def _add_action_flags(p: argparse.ArgumentParser) -> None:
    _add_config(p)
    p.add_argument("--yes", action="store_true", help="do it without asking")
    p.add_argument(
        "--confirm",
        metavar="TARGET",
        help="do it if TARGET is the action's target (needed with production = true)",
    )
    _add_read_only(p)


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 3 (UNKNOWN), not argparse's 2, which Nagios would read as
    CRITICAL; the first line says what was wrong. Subcommand parsers inherit this."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("ultrawatch").strip()
        print(f"ultrawatch: {where + ': ' if where else ''}{message}", file=sys.stderr)
        print(f"(see '{self.prog} --help')", file=sys.stderr)
        sys.exit(EXIT_UNKNOWN)


def _version() -> str:
    """The installed distribution's version (pyproject's), without importing anything heavy."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ultrawatch")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ultrawatch",
        description="On-call console for an UltraMarket-style platform.",
    )
    _add_config(parser, default=None)
    _add_read_only(parser, default=False)
    _add_alertmanager(parser, default=False)
    parser.add_argument("--version", action="version", version=f"ultrawatch {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("tui", help="the terminal console (the default)")
    _add_config(p)
    _add_read_only(p)
    _add_alertmanager(p)

    p = sub.add_parser("check", help="one headless round; Nagios exit codes")
    _add_config(p)
    p.add_argument("--format", choices=("json", "text", "nagios", "prometheus"))
    p.add_argument("--only", metavar="C,..", help=f"collectors: {','.join(_target_names())}")
    p.add_argument("--timeout", type=_timeout, default=10.0, metavar="S", help="hard bound")
    p.add_argument("--watch", type=_interval, metavar="S", help="a round every S seconds")
    p.add_argument(
        "--output", type=_output, metavar="FILE", help="write the result atomically to FILE"
    )
    p.add_argument("--replay", metavar="FILE", help="judge a recorded moment instead")
    p.add_argument("--at", metavar="TIME", help="with --replay: ISO time or seconds offset")

    p = sub.add_parser("serve", help="run for good: /metrics, /health, alerts to Alertmanager")
    _add_config(p)
    p.add_argument(
        "--listen",
        type=_listen,
        metavar="HOST:PORT",
        help="where /metrics and /health are served (default 127.0.0.1:9469)",
    )
    p.add_argument("--record", metavar="FILE", help="record every round to FILE too")
    p.add_argument("--keep", type=_retention, help="with --record: retention (default 24h)")
    p.add_argument(
        "--no-alerts", action="store_true", help="do not send alerts even with [alertmanager]"
    )

    p = sub.add_parser("silence", help="silence alerts in Alertmanager for a while")
    p.add_argument("check_id", nargs="?", metavar="CHECK_ID", help="the check whose alert to mute")
    p.add_argument(
        "--match",
        action="append",
        type=_matcher,
        default=[],
        metavar="LABEL=VALUE",
        help="match alerts by label (repeatable; platform is added)",
    )
    p.add_argument(
        "--for", dest="duration", type=_retention, required=True, metavar="D", help="1h, 30m, ..."
    )
    p.add_argument("--start", metavar="TIME", help="ISO time it starts (a maintenance window)")
    p.add_argument("--comment", required=True, metavar="TEXT", help="why (shown to the rota)")
    _add_action_flags(p)

    p = sub.add_parser("silences", help="list the platform's silences in Alertmanager")
    _add_config(p)
    p.add_argument("--all", action="store_true", help="expired ones and other platforms' too")

    p = sub.add_parser("unsilence", help="expire a silence in Alertmanager")
    p.add_argument("silence_id", metavar="ID")
    _add_action_flags(p)

    p = sub.add_parser("demo", help="an embedded UltraMarket in trouble, and the console on it")
    p.add_argument("--scenario", default="incident")
    p.add_argument("--state-dir", metavar="DIR")
    p.add_argument("--serve", action="store_true", help="only the platform; print its config")
    p.add_argument("--postgres-dsn", metavar="DSN")
    p.add_argument("--redis-url", metavar="URL")
    p.add_argument(
        "--force-redis-locks",
        action="store_true",
        help="use --redis-url although it holds lock:inventory:* keys (the demo writes such locks)",
    )
    p.add_argument(
        "--pgbouncer",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the services behind a real PgBouncer (Debian's pgbouncer program): the "
        "default when it is installed; --no-pgbouncer: straight to PostgreSQL",
    )
    _add_read_only(p)

    p = sub.add_parser("config", help="validate the configuration or print an example")
    p.add_argument("what", choices=("check", "example"))
    _add_config(p)

    p = sub.add_parser("rotate-secret", help="rotate JWT secrets with a grace period")
    p.add_argument("key", nargs="?", metavar="KEY")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--finish", action="store_true", help="drop the previous secret")
    _add_action_flags(p)

    for name, text in (
        ("drain", "stop a service taking work and let it finish"),
        ("undrain", "let a draining service take work again"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("service", metavar="SERVICE")
        _add_action_flags(p)

    p = sub.add_parser("release-lock", help="release a stuck Redis lock safely")
    p.add_argument("key", metavar="KEY")
    owner = p.add_mutually_exclusive_group()
    owner.add_argument("--owner", metavar="VALUE", help="only if the lock still holds this value")
    owner.add_argument(
        "--owner-sha1",
        type=_sha1_hex,
        metavar="HEX",
        help="only if the lock's value still has this SHA-1 (values over 512 bytes are "
        "shown by it)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="without --owner: release a lock that is not stuck too (still compare-and-delete)",
    )
    _add_action_flags(p)

    for name, text in (
        ("cancel", "cancel the running query of a PostgreSQL backend"),
        ("terminate", "end a PostgreSQL backend's session"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("pid", type=_count, metavar="PID")
        p.add_argument("--backend-start", metavar="TIME", help="only if it started then")
        _add_action_flags(p)

    p = sub.add_parser("pgbouncer", help="PAUSE, RESUME, RECONNECT or KILL a PgBouncer database")
    p.add_argument(
        "verb",
        choices=("pause", "resume", "reconnect", "kill"),
        metavar="COMMAND",
        help="pause | resume | reconnect | kill",
    )
    p.add_argument("database", metavar="DATABASE", help="a database of PgBouncer's [databases]")
    p.add_argument(
        "--instance",
        metavar="NAME",
        help="which [[pgbouncer]] (its name); required when the config has several",
    )
    _add_action_flags(p)

    p = sub.add_parser("fix", help="apply the remedy an alert carries (see the check ids)")
    p.add_argument("check_id", metavar="CHECK_ID")
    p.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    _add_action_flags(p)

    p = sub.add_parser("record", help="record every round's snapshot to a SQLite file")
    p.add_argument("file", metavar="FILE")
    _add_config(p)
    p.add_argument("--rounds", type=_count, help="stop after N rounds")
    p.add_argument("--keep", type=_retention, help="retention (seconds or duration)")

    p = sub.add_parser("replay", help="open the console on a recording")
    p.add_argument("file", metavar="FILE")
    _add_config(p)
    p.add_argument("--speed", type=_speed, default=1.0, help=f"{MIN_SPEED:g} to {MAX_SPEED:g}")
    return parser


# ------------------------------------------------------------ argument types
# Each number on the command line goes through the parser its config counterpart
# uses (collectors.core.units): the same floors, ceilings and words in the error.

MIN_SPEED, MAX_SPEED = 0.01, 1000.0  # replay: 1 round per 100 s of recording .. 1000x


def _duration(kind: Any, text: str) -> float:
    try:
        return float(kind.parse(float(text) if _is_number(text) else text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _timeout(text: str) -> float:
    from collectors.core.units import Timeout

    return _duration(Timeout, text)


def _interval(text: str) -> float:
    from collectors.core.units import Interval

    return _duration(Interval, text)


def _retention(text: str) -> float:
    from collectors.core.units import PositiveDuration

    return _duration(PositiveDuration, text)


def _count(text: str) -> int:
    from collectors.core.units import PositiveCount, parse_count

    try:
        return parse_count(text, PositiveCount)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _speed(text: str) -> float:
    from collectors.core.units import parse_factor

    try:
        return parse_factor(text, MIN_SPEED, MAX_SPEED)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _output(text: str) -> str:
    """A file `check` may replace: not a directory, in a directory that exists (a
    typo in the path must not create directories nobody will look in)."""
    from pathlib import Path

    path = Path(text)
    if not text or path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a file path, got {text!r} (a directory)")
    parent = path.parent
    if not parent.is_dir():
        why = "does not exist" if not parent.exists() else "is not a directory"
        raise argparse.ArgumentTypeError(
            f"expected a file in an existing directory, got {text!r} ({str(parent)!r} {why})"
        )
    return text


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT (a port from 0 to 65535), got {text!r}"
        )
    return host, int(port)


def _matcher(text: str) -> tuple[str, str]:
    import re

    name, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or not value:
        raise argparse.ArgumentTypeError(f"expected LABEL=VALUE, got {text!r}")
    return name, value


def _sha1_hex(text: str) -> str:
    if len(text) != 40 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise argparse.ArgumentTypeError(f"expected 40 hexadecimal digits, got {text!r}")
    return text.lower()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _load(args: argparse.Namespace, *, watch: bool = False) -> Config:
    """The configuration; `watch`: for a command that watches, so it must name a target."""
    return load_config(getattr(args, "config", None), watch=watch)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "tui"
    global _command
    _command = command
    try:
        return _dispatch(command, args)
    except ConfigError as e:
        print(f"ultrawatch: {e}", file=sys.stderr)
        return EXIT_UNKNOWN
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        # Nagios reads any other exit as a state: an internal error must be UNKNOWN (3),
        # with one line of reason; ULTRAWATCH_DEBUG=1 shows the traceback.
        if os.environ.get("ULTRAWATCH_DEBUG"):
            raise
        first = (str(e).strip().splitlines() or [""])[0]
        print(f"ultrawatch: internal error: {type(e).__name__}: {first}", file=sys.stderr)
        return EXIT_UNKNOWN


def _dispatch(command: str, args: argparse.Namespace) -> int:
    if command == "check":
        return _check(args)
    if command == "config":
        return _config(args)
    if command == "tui":
        from dashboard.tui.app import run_tui

        return run_tui(_load(args, watch=True), read_only=args.read_only, alerts=args.alertmanager)
    if command == "serve":
        from dashboard.serve import run_serve

        return run_serve(_load(args, watch=True), args)
    if command == "silences":
        from dashboard.actions.silence import run_silences

        return run_silences(_load(args), args)
    if command == "demo":
        from dashboard.demo.cli import run_demo

        return run_demo(args)
    if command in ("rotate-secret", "fix") and args.dry_run:
        return _dry_run(command, args)
    if command in ACTION_MODULES:
        return _action(command, args)
    if command == "record":
        from dashboard.recording import run_record

        return run_record(_load(args, watch=True), args)
    if command == "replay":
        from dashboard.tui.replay import run_replay

        return run_replay(args)
    raise AssertionError(command)


def _check(args: argparse.Namespace) -> int:
    from dashboard import headless

    # Options that would be silently ignored are usage errors (UNKNOWN to Nagios).
    if args.at is not None and not args.replay:
        return _usage("check: --at picks a moment in a recording; it needs --replay FILE")
    if args.replay and args.watch is not None:
        return _usage("check: --watch polls the live targets; it cannot be used with --replay")
    only = None
    if args.only is not None:
        from collectors.registry import NAMES as COLLECTOR_NAMES

        only = [x.strip() for x in args.only.split(",") if x.strip()]
        names = ",".join(COLLECTOR_NAMES)
        if not only:
            return _usage(f"--only: expected some of {names}, got {args.only!r}")
        bad = [x for x in only if x not in COLLECTOR_NAMES]
        if bad:
            return _usage(f"--only: unknown collector {bad[0]!r}; expected some of {names}")
    if args.replay:
        from dashboard.recording import report_at

        # The recording keeps the configuration it was made with (like `replay`);
        # only an explicit --config judges it with other thresholds.
        given = getattr(args, "config", None)
        config = load_config(given) if given else None
        report = report_at(config, args.replay, args.at, only=only)
        return headless.run_check(
            config or Config(), fmt=args.format, output=args.output, report=report
        )
    from collectors.config import find_config

    path = find_config(getattr(args, "config", None))
    config = load_config(path, watch=True)
    if only is not None:
        _check_only(config, only, str(path))
    return headless.run_check(
        config,
        fmt=args.format,
        only=only,
        timeout=args.timeout,
        watch=args.watch,
        output=args.output,
    )


def _check_only(config: Config, only: Sequence[str], source: str) -> None:
    """`--only` naming no target the config switches on would print "OK" with zero
    checks: "nothing to check", like an empty config (exit 3)."""
    from collectors.registry import TARGETS

    configured = [t.name for t in TARGETS if t.enabled(config)]
    if not any(name in configured for name in only):
        raise ConfigError(
            source,
            "",
            f"nothing to check: --only {','.join(only)} names no configured target "
            f"(configured: {', '.join(configured)})",
        )


def _usage(message: str) -> int:
    print(f"ultrawatch: {message}", file=sys.stderr)
    return EXIT_UNKNOWN


def _config(args: argparse.Namespace) -> int:
    if args.what == "example":
        from importlib.resources import files

        sys.stdout.write(files("collectors").joinpath("example.toml").read_text("utf-8"))
        return 0
    from collectors.config import find_config

    path = find_config(args.config)
    config = load_config(path, watch=True)
    parts = [
        f"platform {config.platform}",
        f"{len(config.services)} services",
        f"{len(config.processes)} processes",
        "postgres" if config.postgres else "no postgres",
        "redis" if config.redis else "no redis",
        "secrets" if config.secrets else "no secrets",
        *(["pgbouncer"] if config.pgbouncer else []),
    ]
    if config.alertmanager is not None:
        parts.append(f"alerts to {', '.join(config.alertmanager.all_urls)}")
    print(f"{path}: ok ({', '.join(parts)})")
    return 0


# command -> module in dashboard.actions providing `from_cli(config, args) -> Action`
ACTION_MODULES = {
    "rotate-secret": "dashboard.actions.rotate_secret",
    "drain": "dashboard.actions.drain",
    "undrain": "dashboard.actions.drain",
    "release-lock": "dashboard.actions.release_lock",
    "cancel": "dashboard.actions.backend",
    "terminate": "dashboard.actions.backend",
    "pgbouncer": "dashboard.actions.pgbouncer",
    "silence": "dashboard.actions.silence",
    "unsilence": "dashboard.actions.silence",
    "fix": "dashboard.actions.fix",
}


def _action(command: str, args: argparse.Namespace) -> int:
    import asyncio

    from dashboard.actions.base import ActionRefused, ActionRunner, Outcome, Result, refusal

    config = _load(args)
    why = refusal(config, args.read_only)
    if why is not None:
        print(f"ultrawatch: refused: {why}", file=sys.stderr)
        return Result.REFUSED.exit_code
    production = config.dashboard.production
    given = args.confirm
    if not args.yes and given is None and not sys.stdin.isatty():
        need = "--confirm TARGET" if production else "--yes"
        print(
            f"ultrawatch: refused: {command} needs {need} when stdin is not a terminal",
            file=sys.stderr,
        )
        return Result.REFUSED.exit_code
    module: Any = importlib.import_module(ACTION_MODULES[command])
    try:
        action = module.from_cli(config, args)
    except ActionRefused as e:
        print(f"ultrawatch: refused: {e}", file=sys.stderr)
        return Result.REFUSED.exit_code

    async def confirm(plan: Plan) -> bool:
        _print_plan(plan)
        return _confirmed(plan, given, yes=args.yes, production=production)

    def progress(message: str) -> None:
        print(f"  .. {message}", file=sys.stderr, flush=True)

    runner = ActionRunner(config, read_only=args.read_only)
    outcome: Outcome = asyncio.run(runner.run(action, confirm, progress))
    stream = sys.stdout if outcome.ok else sys.stderr
    # Said once: a message that names its result already is not prefixed again.
    label = f"{outcome.result.value}: "
    print(
        outcome.message if outcome.message.startswith(label) else label + outcome.message,
        file=stream,
    )
    for k, v in outcome.details:
        print(f"  {k}: {v}", file=stream)
    return outcome.result.exit_code


def _confirmed(plan: Plan, given: str | None, *, yes: bool, production: bool) -> bool:
    """The CLI's confirmation of a plan. `--confirm TARGET` must name the target
    (the name the plan asks for, or the target as the plan says it); with
    `production = true` nothing else will do but the name typed at a terminal:
    `--yes` alone is refused, saying what to add."""
    from dashboard.actions.base import ActionRefused

    want = plan.confirm_name or plan.target
    if given is not None:
        if given.strip() in (want, plan.target):
            return True
        raise ActionRefused(
            f"--confirm {given!r} is not the target: expected --confirm {want!r}; nothing was done"
        )
    if production:
        if sys.stdin.isatty():
            answer = input(f"production: type {want!r} to proceed: ")
            return answer.strip() == want
        raise ActionRefused(
            f"production = true: --yes alone is not enough; add --confirm {want!r} "
            "(the target's name); nothing was done"
        )
    if yes:
        return True
    return input("proceed? [y/N] ").strip().lower() in ("y", "yes")


def _dry_run(command: str, args: argparse.Namespace) -> int:
    """`rotate-secret --dry-run` / `fix --dry-run`: the plan, and nothing else. It
    changes nothing, so it needs neither --yes nor actions enabled, and works under
    --read-only."""
    import asyncio

    from collectors.core.redact import printable
    from dashboard.actions.base import ActionError, ActionRefused, Result

    module: Any = importlib.import_module(ACTION_MODULES[command])
    action = module.from_cli(_load(args), args)

    async def plan() -> Plan:
        try:
            return await action.plan()
        finally:
            await action.close()

    try:
        p = asyncio.run(plan())
    except ActionRefused as e:
        print(f"ultrawatch: refused: {printable(str(e))}", file=sys.stderr)
        return Result.REFUSED.exit_code
    except ActionError as e:
        print(f"ultrawatch: {printable(str(e))}", file=sys.stderr)
        return Result.ERROR.exit_code
    print(f"{p.action} {printable(p.target)}: {printable(p.summary)}")
    for k, v in p.details:
        print(f"  {printable(k)}: {printable(v)}")
    return 0


def _print_plan(plan: Plan) -> None:
    print(f"{plan.action} {plan.target}: {plan.summary}", file=sys.stderr)
    for k, v in plan.details:
        print(f"  {k}: {v}", file=sys.stderr)


def quiet_library_logs() -> None:
    """Libraries' warnings never reach stderr: psycopg logs "query cancellation
    failed" when a round's deadline cancels a query on a slow server, and cron
    mails every line. What matters reaches the user as a reading's error."""
    logging.getLogger().addHandler(logging.NullHandler())


def entry() -> None:
    """Console-script entry point."""
    quiet_library_logs()
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # A collector stuck in a thread must not hold the process past --timeout.
    if _command == "check":
        os._exit(code)
    sys.exit(code)
