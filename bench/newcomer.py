"""The newcomer's run: `ultrawatch demo` in a real terminal (tmux), read with
`capture-pane`, fixed with keys only, and only keys the screen or `?` shows.

1. At 80x24: each alert row on the first screen shows the start of its summary
   (compared with `ultrawatch check --format json` on the demo's config, digits
   masked: counts change between rounds).
2. At 200x60 (the same demo, resized): the clock starts when all five failures
   are on screen (the connection storm's budget alert, order-service's leak, the
   lock without a TTL, the stale lock, the weak secret); the script reads the
   help (`?`), then fixes them, counting every key it sends, and stops the clock
   when the header says OK with no critical or warning.

When the footer offers `f` (else the help, `?`, is read for it), it fixes from
the Alerts panel: Tab until the heavy focus border is on Alerts, then the cursor
to each alert whose fix column shows `f`, `f`, and `y` once the plan names that
alert (the rotation's `f` again once its grace period is over). The line above
the alerts names the selected alert's remedy: that is how the script knows where
the cursor is. Without `f` (an older build) it goes panel by panel (`k` on each
storm session, `x` on each stuck lock, `d` on order-service, `r` twice). Every
dialog is read before `y`: a target that is not what the script meant gets `n`.
The keys sent are printed.

What bounds the time: the rotation's grace period (10 s in the demo), the
order-service drain (its jobs take up to 4.5 s, then a restart), and the alerts'
clear_after (2 rounds of 2 s).

    uv run python bench/newcomer.py [--keep]     # prints the figures; exit 1 if a step failed
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

SESSION = f"uw-newcomer-{os.getpid()}"
# Each failure as the screen shows it (the Alerts panel cannot hold every alert at
# once: the panels show them too).
FIVE = {
    # straight to PostgreSQL its budget alert; behind PgBouncer (the default) the
    # pooler's budget or pool alert
    "connection storm": r"(postgres|pgbouncer)\.budget\.payment-service|"
    r"pgbouncer\.pool\.ultramarket|payment-service (1\d|[2-9]\d)/5",
    "memory leak": r"service\.order-service\.(listeners|heap)|order-service\s+✖ critical",
    "lock without TTL": r"NO TTL\s+lock:",
    "stale lock": r"STALE\s+lock:",
    "weak secret": r"known-weak",
}
DIALOG = "n or Esc cancel"  # the confirmation's key line
BUSY = "⏳"  # the progress line while an action runs


class Term:
    """A tmux session running one command; every key sent is counted."""

    def __init__(self, argv: list[str], width: int, height: int, env: dict[str, str]) -> None:
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        command = f"env {exports} {' '.join(argv)}; sleep 60"  # the last lines stay readable
        subprocess.run(
            [
                "tmux",
                "new-session",
                "-d",
                "-s",
                SESSION,
                "-x",
                str(width),
                "-y",
                str(height),
                command,
            ],
            check=True,
        )
        self.keys = 0
        self.sent: list[str] = []  # every key, in order (printed with the figures)

    def screen(self) -> str:
        out = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", SESSION], capture_output=True, text=True
        )
        return out.stdout

    def press(self, *keys: str) -> None:
        for key in keys:
            subprocess.run(["tmux", "send-keys", "-t", SESSION, key], check=True)
            self.keys += 1
            self.sent.append(key)
            time.sleep(0.05)

    def resize(self, width: int, height: int) -> None:
        subprocess.run(
            ["tmux", "resize-window", "-t", SESSION, "-x", str(width), "-y", str(height)],
            check=True,
        )

    def wait(self, cond: Callable[[str], bool], timeout: float, what: str) -> str:
        end = time.monotonic() + timeout
        while True:
            text = self.screen()
            if cond(text):
                return text
            if time.monotonic() > end:
                raise TimeoutError(f"{what}: not seen in {timeout:g}s\n{text}")
            time.sleep(0.2)

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)


def mask(text: str) -> str:
    return re.sub(r"\d+(\.\d+)?", "#", text)


# ------------------------------------------------------------- 80x24


def narrow_check(term: Term, config: Path) -> list[str]:
    """Each alert row on the first 80x24 screen shows the start of its summary."""
    screen = term.wait(lambda s: "open," in s and "critical" in s, 120, "alerts at 80x24")
    time.sleep(6)  # a few rounds: the alerts raise after raise_after rounds
    screen = term.screen()
    exe = Path(sys.executable).parent / "ultrawatch"
    out = subprocess.run(
        [str(exe), "check", "--config", str(config), "--format", "json"],
        capture_output=True,
        text=True,
    )
    summaries = {c["id"]: c["summary"] for c in json.loads(out.stdout)["checks"]}
    lines = [re.sub(r"^[┃│]\s?|\s?[┃│]$", "", line) for line in screen.splitlines()]
    problems, seen, same, cut = [], 0, 0, 0
    for i, line in enumerate(lines):
        m = re.search(r"[✖▲?]\s+\w+\s+(?:f(?: \d\S*)?\s+|—\s+)?(\S+)", line)
        if not m or m.group(1) not in summaries:
            continue
        check = m.group(1)
        if i + 1 < len(lines) and lines[i + 1].lstrip().startswith(("┗", "╰")):
            cut += 1  # the panel's last line: a row cut by its edge (the table scrolls)
            continue
        seen += 1
        # The summary starts on its row (wide) or on the line below the id (folded):
        # text there, not the next alert's row.
        after = line[m.end() :].strip()
        below = lines[i + 1].strip() if i + 1 < len(lines) else ""
        shown = below if not re.search(r"[✖▲?]\s+\w+\s+\S+\.", below) else ""
        text = re.sub(r"\s+", " ", f"{after} {shown}")
        if len(re.sub(r"[\d:ZsmhKiB —]", "", text)) < 10:
            problems.append(f"{check}: no summary on its row: {lines[i : i + 2]}")
        # The one-shot check's words may differ from the live round's (rates, counts):
        # how many start the same way is only reported.
        first = mask(summaries[check]).split()[:2]
        same += " ".join(first) in mask(text)
    if not seen:
        problems.append("no alert row on the first screen")
    print(
        f"80x24: {seen} alert rows on the first screen, {seen - len(problems)} with their "
        f"summary; {same} start as the one-shot check's summary does; {cut} cut by the "
        "panel's bottom edge"
    )
    return problems


# ------------------------------------------------------------- 200x60


def five_visible(screen: str) -> bool:
    return all(re.search(rx, screen) for rx in FIVE.values())


def fixed(screen: str) -> bool:
    head = screen.splitlines()[0] if screen else ""
    return "0 critical" in head and not any(re.search(rx, screen) for rx in FIVE.values())


def all_green(screen: str) -> bool:
    head = screen.splitlines()[0] if screen else ""
    return "OK" in head and "0 critical · 0 warning" in head


def settle(term: Term, timeout: float = 60) -> str:
    """Wait until no dialog is open and no action runs."""
    return term.wait(lambda s: DIALOG not in s and BUSY not in s, timeout, "the action to end")


def answer(term: Term, wanted: Callable[[str], bool]) -> str | None:
    """A dialog is (about to be) open: `y` when it names what we meant (the dialog's
    text is returned), else `n` (None)."""
    asked = time.monotonic()

    def over(s: str) -> bool:
        # The dialog, or the planning over without one (its progress line gone; on a
        # loaded machine the line comes late, so not before 4 s).
        return DIALOG in s or (time.monotonic() - asked > 4 and BUSY not in s)

    dialog = term.wait(over, 20, "the confirmation")
    if DIALOG not in dialog:
        return None  # refused before a plan, or nothing selected: a toast said why
    ok = wanted(dialog)
    term.press("y" if ok else "n")
    settle(term)
    return dialog if ok else None


def gone(term: Term, dialog: str, pattern: str, row: str) -> None:
    """Wait until the table row the dialog named (`row`, with {} for what `pattern`
    found) has left the screen: until the next round the table still shows it, and
    the cursor would choose it again."""
    m = re.search(pattern, dialog)
    if m:
        what = re.compile(row.format(re.escape(m.group(1))))
        term.wait(lambda s: not what.search(s), 15, f"{m.group(1)} to go")


def learn_keys(term: Term) -> str:
    term.press("?")
    text = term.wait(lambda s: "Keys" in s and "quit" in s, 10, "the help")
    term.press("Escape")
    time.sleep(0.5)  # a lone Esc: a key right after it would read as Alt+key
    return text + "\n" + term.screen()


def offered(keys_text: str, key: str, word: str) -> bool:
    # The footer separates a key from its name with a no-break space.
    found = re.search(rf"(^|\s){re.escape(key)}[\s\xa0]+{word}", keys_text, re.M | re.I)
    return found is not None


def fix_storm(term: Term) -> None:
    """`k` on each idle payment-service session running `select 1` (the storm)."""
    storm = re.compile(r"payment-service\s+\d+\s+idle\b.*select 1")
    for _ in range(40):
        if not storm.search(term.screen()):
            return
        term.press("Up")  # row 0: the storm sorts first; after a terminate it re-chooses
        term.press("k")
        done = answer(
            term, lambda d: "payment-service" in d and "select 1" in d and "Terminate" in d
        )
        if done:
            gone(term, done, r"Terminate session pid (\d+)", r"\s{}\s+idle")


def fix_locks(term: Term) -> None:
    flagged = re.compile(r"(NO TTL|STALE)\s+(lock:\S+)")
    for _ in range(6):
        found = flagged.findall(term.screen())
        if not found:
            return
        keys = {k for _, k in found}
        term.press("Up")
        term.press("x")
        done = answer(term, lambda d, keys=keys: any(k in d for k in keys) and "Release lock" in d)
        if done:
            gone(term, done, r"Release lock (lock:\S+)", r"(NO TTL|STALE)\s+{}\s")


def fix_leak(term: Term) -> None:
    term.press("Up")
    for _ in range(5):
        term.press("d")
        if answer(term, lambda d: "Drain order-service" in d):
            return
        term.press("Down")


def rotate(term: Term) -> None:
    """`r`: new secrets, the old kept for the grace period. Refused while a service
    cannot say which key it holds (restarting): the toast says so; try again."""
    for _ in range(5):
        term.press("r")
        if answer(term, lambda d: "Rotate" in d and "JWT_SECRET" in d):
            return
        time.sleep(3)


def finish_rotation(term: Term) -> None:
    """`r` again once the Security panel says the grace period is over."""
    term.wait(lambda s: "grace over: r finishes it" in s, 90, "the grace period's end")
    for _ in range(5):
        term.press("r")
        if answer(term, lambda d: "Finish rotation: drop" in d):
            return
        time.sleep(3)


def by_panel(term: Term) -> None:
    # Focus starts on PostgreSQL's sessions; tab goes Redis, Services, ...
    fix_storm(term)
    term.press("Tab")
    fix_locks(term)
    rotate(term)  # before the drain: a restarting service blocks a rotation
    term.press("Tab")
    fix_leak(term)
    finish_rotation(term)


# The Alerts panel's first line names the selected alert's remedy: "│ f CHECK: what".
REMEDY = re.compile(r"\d+ open, \d+ acknowledged.*?│ f (\S+): (\w+)(.*)")
# An alert row with `f` in its fix column (a remedy that can run now; "f 9s" waits).
FIX_ROW = re.compile(r"[✖▲?] \w+\s+f\s+([a-z]\S*\.\S+)")


def waits(m: re.Match[str] | None) -> bool:
    """The selected alert's remedy is a finish planned before it can run: "finish the
    rotation (drop ...) once its grace period is over" (ready: "finish the rotation:")."""
    return m is not None and m.group(2) == "finish" and m.group(3).startswith(" the rotation (")


FOCUSED = re.compile(r"┏━ (\w[\w ]*?) ·")  # the heavy border: the focused panel


def focus(term: Term) -> None:
    """Tab until the heavy (focus) border is the Alerts panel's; each Tab waits for
    the border to move (a loaded machine paints late)."""
    for _ in range(8):
        now = FOCUSED.findall(term.screen())
        if now == ["Alerts"]:
            return
        term.press("Tab")
        term.wait(lambda s, now=now: FOCUSED.findall(s) not in ([], now), 10, "the focus to move")
    raise TimeoutError("Tab never reached the Alerts panel")


ROW = re.compile(r"[✖▲?] \w+\s+(f(?: \S+)?|—)\s+([a-z]\S*\.\S+)")  # fix column, check id


ROW_IDS = re.compile(r"[✖▲?] \w+\s+f\s+([a-z]\S*\.\S+)")  # alerts showing `f`


def late_plan_or_focus(term: Term, screen: str) -> None:
    """A plan that came after the script gave up on it is read as any other (`y`
    when it fixes an alert showing `f`); else the focus goes back to Alerts."""
    if DIALOG in screen:
        ids = ROW_IDS.findall(screen)
        answer(term, lambda d: any(f"fixes: {c}" in d for c in ids))
    else:
        focus(term)


def to_fix(
    screen: str, done: set[tuple[str, str]], refused: dict[str, float], here: str | None
) -> list[int]:
    """The alert rows (indices on screen) showing `f` that were not fixed yet (a
    rotated alert's `f` again is its finish, once the grace period is over), nor
    refused in the last 3 s."""
    fixed_verbs: dict[str, set[str]] = {}
    for c, v in done:
        fixed_verbs.setdefault(c, set()).add(v)
    now = time.monotonic()
    # Until the Security panel says the grace period is over, a rotated alert's `f`
    # is the rotation just made (its badge turns to `f 9s` a round later).
    fresh = "grace over" in screen
    rotated = any(v == "rotate" for _, v in done)
    finished = any(v == "finish" for _, v in done)
    return [
        i
        for i, (badge, c) in enumerate(ROW.findall(screen))
        if badge == "f"
        and fixed_verbs.get(c, set()) in (set(), {"rotate"} if fresh else set())
        # One rotation covers every secrets alert: until its grace is over, none is left.
        and not (rotated and (finished or not fresh) and c.startswith("secrets."))
        and now - refused.get(c, -10.0) > 3
        and c != here
    ]


def pooler_first(rows: list[str], targets: list[int], done: set[tuple[str, str]]) -> list[int]:
    """The pooler's alerts showing `f`, to fix before any other: behind PgBouncer the
    pool's alert says every service's clients wait behind the storm, and a drain
    would wait for work queued there. One fix ends the storm (then none)."""
    if any(c.startswith("pgbouncer.") for c, _ in done):
        return []
    return [i for i in targets if rows[i].startswith("pgbouncer.")]


def nothing_on_screen(term: Term, screen: str, shown: int, move: str, hold: bool) -> None:
    """No alert on screen to fix: scroll when more are open than shown (alerts below
    the panel's edge), unless `hold` (a finish that waits, or alerts just fixed still
    clearing: clear_after is 2 rounds of 2 s); else wait a little."""
    n = re.search(r"(\d+) open,", screen)
    if n and int(n.group(1)) > shown and not hold:
        term.press(move)
        time.sleep(0.3)
    else:
        time.sleep(0.5)  # nothing to fix on screen yet


def by_alert(term: Term) -> None:
    """Part A's `f`, from the Alerts panel. The line above the alerts names the
    selected alert's remedy (so where the cursor is, when that alert has one); the
    fix column shows which alerts have one. The script moves the cursor to the
    nearest alert showing `f` that it has not fixed yet, presses `f`, and `y` once
    the plan names that alert. With none left on screen it waits (alerts clear
    after 2 rounds; a rotation's finish waits for its grace period, `f 8s`)."""
    focus(term)
    done: set[tuple[str, str]] = set()  # (alert, remedy verb) confirmed
    order: list[tuple[str, str]] = []  # the same, in the order applied (printed)
    refused: dict[str, float] = {}  # alert -> when its plan was refused (retry later)
    end = time.monotonic() + 150
    move = "Down"  # when the cursor's row is unknown (no remedy, or its row went)
    blind = 0  # moves made without knowing the cursor's row
    last = 0.0  # when the last fix was confirmed
    while time.monotonic() < end:
        screen = term.screen()
        if fixed(screen):
            print("  fixed: " + ", ".join(f"{c} ({v})" for c, v in order))
            return
        if DIALOG in screen or FOCUSED.findall(screen) != ["Alerts"]:
            late_plan_or_focus(term, screen)
            continue
        m = REMEDY.search(screen)
        now = time.monotonic()
        rows = [check for _, check in ROW.findall(screen)]
        targets = to_fix(screen, done, refused, m.group(1) if m else None)
        pooler = pooler_first(rows, targets, done)
        if pooler and m and not m.group(1).startswith("pgbouncer."):
            m = None  # not this one yet: move to the pooler's alert
        if m and (m.group(1), m.group(2)) not in done and not waits(m):
            if m.group(2) in ("rotate", "finish") and any(v == m.group(2) for _, v in done):
                refused[m.group(1)] = now  # one rotation (and finish) for the secrets' alerts
            check = m.group(1)
            if now - refused.get(check, -10.0) > 3:
                term.press("f")
                if answer(term, lambda d, check=check: f"fixes: {check}" in d):
                    done.add((check, m.group(2)))
                    order.append((check, m.group(2)))
                    last = time.monotonic()
                else:
                    refused[check] = time.monotonic()  # the toast says why
                continue
        m = REMEDY.search(screen)
        here = rows.index(m.group(1)) if m and m.group(1) in rows else None
        if not targets:
            nothing_on_screen(term, screen, len(rows), move, waits(m) or now - last < 5)
            continue
        if here is None:
            # Not on an alert with a remedy: step on; past the last row, turn round.
            blind += 1
            if blind > len(rows):
                move, blind = ("Up" if move == "Down" else "Down"), 0
            term.press(move)
            time.sleep(0.3)
            continue
        blind = 0
        goal = min(pooler or targets, key=lambda i: abs(i - here))
        move = "Down" if goal > here else "Up"
        term.press(move)
        time.sleep(0.3)  # the remedy line follows the cursor


def run(keep: bool) -> int:
    if shutil.which("tmux") is None:
        sys.exit("tmux is needed: apt-get install tmux")
    tmp = Path(tempfile.mkdtemp(prefix="uw-newcomer-"))
    state = tmp / "state"
    exe = Path(sys.executable).parent / "ultrawatch"
    env = {"TERM": "xterm-256color", "XDG_STATE_HOME": str(tmp / "xdg")}
    term = Term([str(exe), "demo", "--state-dir", str(state)], 80, 24, env)
    failed = False
    try:
        problems = narrow_check(term, state / "ultrawatch.toml")
        for p in problems:
            print("  80x24:", p)
        failed |= bool(problems)
        term.resize(200, 60)
        term.wait(five_visible, 120, "all five failures")
        t0, keys0 = time.monotonic(), term.keys
        print("200x60: all five visible; fixing")
        # The footer first: `?` only when it does not offer `f`.
        try:  # (the footer is repainted after the resize)
            keys_text = term.wait(lambda s: offered(s, "f", "fix"), 5, "`f` in the footer")
        except TimeoutError as e:
            print(f"  no `f` in the footer: {str(e).splitlines()[-1][:100]!r}")
            keys_text = learn_keys(term)
        if offered(keys_text, "f", "fix"):
            print("  `f` is offered: fixing from each alert")
            by_alert(term)
        else:
            print("  no `f` on this build: panel by panel (k, x, d, r)")
            by_panel(term)
        keys = term.keys - keys0
        print(f"  keys: {' '.join(term.sent[keys0:])}")
        term.wait(fixed, 180, "the five fixed")
        fixed_s = time.monotonic() - t0
        print(
            f"200x60: the five fixed (none on screen, 0 critical) after {keys} keypresses "
            f"and {fixed_s:.1f} s"
        )
        try:
            term.wait(all_green, 90, "all green")
            green = f"{time.monotonic() - t0:.1f}"
            print(f"200x60: all green after {keys} keypresses and {green} s")
        except TimeoutError as e:
            green = "no"
            still = re.findall(r"[✖▲?] \w+\s+(\S+\.\S+)", str(e))
            print(f"200x60: not all green 90 s later; still open: {sorted(set(still))}")
        print(f"RESULT keys={keys} fixed_s={fixed_s:.1f} green_s={green} narrow_ok={not problems}")
    except TimeoutError as e:
        print(f"FAILED: {e}")
        failed = True
    finally:
        term.press("q")
        try:
            term.wait(lambda s: "stopped in" in s, 60, "the demo to stop")
        except TimeoutError:
            pass
        term.close()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the demo's state dir")
    sys.exit(run(parser.parse_args().keep))


if __name__ == "__main__":
    main()
