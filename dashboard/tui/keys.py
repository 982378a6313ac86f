"""Every key of the console, once: the app's BINDINGS, the footer (Textual builds
it from them), the command palette, the help screen and which keys work when
(actions enabled, replay, live) are all made from KEYS.

The table is in footer order: the keys that act on the platform first, so an
80-column footer still shows them; `s`, `z`, `w`, `+`, `-` are only in the help
and the palette. No textual import here: the table is plain data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

Needs = Literal["actions", "replay", "live"]

Section = Literal["keys", "actions", "replay"]


@dataclass(frozen=True)
class Key:
    key: str  # Textual's name of the key ("question_mark")
    action: str  # the app's action; "" for Textual's own keys, which are only documented
    label: str  # the footer's word: short, so 80 columns show the keys that act
    shown: str  # how the help writes the key ("?")
    help: str  # what the help says it does ({snooze}: the configured snooze)
    name: str = ""  # the palette's name when the footer's word is too short for it
    about: str = ""  # the palette's line under the name
    footer: bool = True  # in the footer (else only in the help and the palette)
    palette: bool = True  # in the command palette (when it can work)
    needs: Needs | None = None  # works only with actions enabled, in a replay, or live
    with_key: str = ""  # shares the help line of this action's key ("d / u")
    replay_help: str = ""  # what it does in a replay too, listed there ("p  play / pause")
    rank: int = 0  # lower comes first within its help section (else table order)

    @property
    def bound(self) -> bool:
        return bool(self.action)

    @property
    def section(self) -> Section:
        """Its section of the help: the actions, the replay's keys, or the others."""
        return (
            "actions" if self.needs == "actions" else "replay" if self.needs == "replay" else "keys"
        )

    @property
    def palette_name(self) -> str:
        return self.name or self.label


KEYS: tuple[Key, ...] = (
    Key(
        "f",
        "fix",
        "Fix",
        "f",
        "fix the selected alert: its remedy, planned with every target (Alerts, fix column)",
        name="Fix alert",
        about="Apply the selected alert's remedy, with every exact target listed first",
        needs="actions",
    ),
    Key(
        "r",
        "rotate_secret",
        "Rotate",
        "r",
        "rotate the JWT secrets (grace period for the old one)",
        name="Rotate secret",
        about="Rotate the JWT secrets, keeping the old one for a grace period",
        needs="actions",
    ),
    Key(
        "d",
        "drain",
        "Drain",
        "d",
        "drain / undrain the selected service",
        about="Drain the selected service: stop new work, let in-flight work finish",
        needs="actions",
    ),
    Key(
        "u",
        "undrain",
        "Undrain",
        "u",
        "",
        about="Let the selected service take work again",
        needs="actions",
        with_key="drain",
    ),
    Key(
        "x",
        "release_lock",
        "Release",
        "x",
        "release the selected Redis lock (only if its owner is unchanged)",
        name="Release lock",
        about="Release the selected Redis lock if its owner is unchanged",
        needs="actions",
    ),
    Key(
        "c",
        "cancel_query",
        "Cancel",
        "c",
        "cancel the selected backend's query",
        name="Cancel query",
        about="Cancel the running query of the selected PostgreSQL backend",
        needs="actions",
    ),
    Key(
        "k",
        "terminate_session",
        "Terminate",
        "k",
        "terminate the selected backend's session",
        name="Terminate session",
        about="End the selected PostgreSQL backend's session",
        needs="actions",
    ),
    # PgBouncer: on the database selected in its panel, or the one a selected
    # pgbouncer.pool.* / pgbouncer.paused alert names (its remedy). Help and palette only.
    Key(
        "b",
        "pgbouncer_pause",
        "Pause db",
        "b",
        "pause / resume the selected PgBouncer database",
        name="PgBouncer pause / resume",
        about="PAUSE the selected PgBouncer database, or RESUME it when paused",
        footer=False,
        needs="actions",
    ),
    Key(
        "n",
        "pgbouncer_reconnect",
        "Reconnect",
        "n",
        "reconnect the selected PgBouncer database's servers",
        name="PgBouncer reconnect",
        about="RECONNECT: replace the selected PgBouncer database's server connections",
        footer=False,
        needs="actions",
    ),
    Key(
        "K",
        "pgbouncer_kill",
        "Kill db",
        "K",
        "kill every connection of the selected PgBouncer database",
        name="PgBouncer kill",
        about="KILL: drop every connection of the selected PgBouncer database (stays paused)",
        footer=False,
        needs="actions",
    ),
    Key(
        "a",
        "acknowledge",
        "Ack",
        "a",
        "acknowledge the selected alert (recorded with your user name)",
        name="Acknowledge alert",
        about="Acknowledge the selected alert (recorded with your user name)",
    ),
    # the alert keys together in the help
    Key(
        "z",
        "snooze",
        "Snooze",
        "z",
        "snooze the selected alert for {snooze}",
        about="Silence the selected alert for a while",
        footer=False,
    ),
    Key(
        "full_stop",
        "step",
        "Step",
        ".",
        "step forward / back",
        about="Replay: next round",
        needs="replay",
    ),
    Key(
        "comma",
        "step_back",
        "Back",
        ",",
        "",
        about="Replay: previous round",
        needs="replay",
        with_key="step",
    ),
    Key("g", "seek", "Seek", "g", "seek to a time", about="Replay: go to a time", needs="replay"),
    Key(
        "p",
        "pause",
        "Pause",
        "p",
        "pause / resume polling",
        about="Pause or resume polling (replay: play or pause)",
        replay_help="play / pause",
    ),
    # Before poll_now: in the sessions and locks tables space marks (the first
    # enabled binding of a key wins); elsewhere it polls.
    Key(
        "space",
        "toggle_mark",
        "Mark",
        "space",
        "mark / unmark the row (sessions, locks): c, k, x act on the marked rows",
        name="Mark row",
        about="Mark or unmark the selected session or lock; actions apply to the marked rows",
        needs="actions",
    ),
    Key(
        "escape",
        "thaw",
        "Unfreeze",
        "esc",
        "unfreeze a table: moving in a table freezes its order (new rows come last)",
        about="Let the focused table re-sort again",
        palette=False,
        # Its panel's title says "frozen (esc)"; a footer changing with it would
        # lay out the whole screen on the first cursor move.
        footer=False,
    ),
    Key(
        "space",
        "poll_now",
        "Poll now",
        "space",
        "poll now",
        about="Start a poll round now",
        needs="live",
    ),
    Key(
        "slash",
        "filter",
        "Filter",
        "/",
        "filter every panel",
        about="Show only rows containing some text",
    ),
    Key(
        "i",
        "hide_idle",
        "Hide idle",
        "i",
        "hide idle sessions",
        about="Hide idle PostgreSQL sessions",
    ),
    Key(
        "question_mark",
        "help",
        "Help",
        "?",
        "this help",
        about="Keys and what they do",
        rank=-1,
    ),
    # Not in the palette: Textual's own "Quit" command is there.
    Key("q", "quit", "Quit", "q", "quit", palette=False, rank=-1),
    Key(
        "s",
        "sort",
        "Sort",
        "s",
        "sort sessions",
        about="Change the order of the sessions table",
        footer=False,
    ),
    Key(
        "w",
        "handoff",
        "Handoff",
        "w",
        "write the handoff summary for the next on-call",
        about="Write open alerts and acknowledgements to the handoff file",
        footer=False,
    ),
    Key(
        "l",
        "notifications",
        "Log",
        "l",
        "notification log",
        name="Notification log",
        about="Recent notifications and action results, newest first",
        footer=False,
    ),
    Key(
        "plus",
        "faster",
        "Faster",
        "+",
        "faster / slower",
        about="Replay: play faster",
        footer=False,
        needs="replay",
    ),
    Key(
        "minus",
        "slower",
        "Slower",
        "-",
        "",
        about="Replay: play slower",
        footer=False,
        needs="replay",
        with_key="faster",
    ),
    # Textual's own keys (the tables' `enter`, focus, the palette): documented only.
    Key("enter", "", "", "enter", "details of the selected row"),
    Key("tab", "", "", "tab / shift+tab", "next / previous panel"),
    Key("ctrl+p", "", "", "ctrl+p", "command palette"),
)

BY_ACTION: dict[str, Key] = {k.action: k for k in KEYS if k.bound}
# Which actions work only with actions enabled, only in a replay, only live.
NEEDS: dict[str, Needs] = {k.action: k.needs for k in KEYS if k.bound and k.needs}


def bound_keys() -> Iterator[Key]:
    """The keys the app binds, in footer order."""
    return (k for k in KEYS if k.bound)


def palette_keys() -> Iterator[Key]:
    """The keys the palette offers (those that cannot work now are left out by the app)."""
    return (k for k in bound_keys() if k.palette)


# ---------------------------------------------------------------- the help

KEY_WIDTH = 6  # the help's key column ("ctrl+p")
TEXT_WIDTH = 28  # its first text column: shorter texts go two to a line


def _help_entries(section: Section, snooze: str) -> list[tuple[str, str]]:
    """(keys as written, what they do) of one help section, in its order."""
    rows: list[tuple[int, int, str, str]] = []
    for i, k in enumerate(KEYS):
        text = k.help if k.section == section else k.replay_help if section == "replay" else ""
        if not text:
            continue
        shown = " / ".join(
            [k.shown, *(j.shown for j in KEYS if k.bound and j.with_key == k.action)]
        )
        rows.append((k.rank, i, shown, text.format(snooze=snooze)))
    rows.sort(key=lambda r: r[:2])
    return [(shown, text) for _, _, shown, text in rows]


def help_lines(section: Section, snooze: str) -> list[str]:
    """One help section's key lines, `  key    what it does`: the short ones two
    to a line first, then the long ones a line each."""
    entries = _help_entries(section, snooze)
    short = [f"{shown:<{KEY_WIDTH}} {text}" for shown, text in entries if len(text) <= TEXT_WIDTH]
    long = [f"{shown:<{KEY_WIDTH}} {text}" for shown, text in entries if len(text) > TEXT_WIDTH]
    column = KEY_WIDTH + 1 + TEXT_WIDTH
    lines = [
        f"  {left:<{column}} {right}" if right else f"  {left}"
        for left, right in zip(short[::2], [*short[1::2], ""], strict=False)
    ]
    return lines + [f"  {entry}" for entry in long]
