"""The one table of keys: the app's bindings, the footer, the palette and the help
are all made from it, and they agree."""

from __future__ import annotations

from collections import Counter

from textual.binding import Binding

from dashboard.tui import keys
from dashboard.tui.app import PANELS, UltrawatchApp
from dashboard.tui.screens.help import help_text

HELP = """\
Keys
  ?      this help                    q      quit
  p      pause / resume polling       space  poll now
  /      filter every panel           i      hide idle sessions
  s      sort sessions                l      notification log
  enter  details of the selected row  tab / shift+tab next / previous panel
  ctrl+p command palette
  a      acknowledge the selected alert (recorded with your user name)
  z      snooze the selected alert for 30m
  esc    unfreeze a table: moving in a table freezes its order (new rows come last)
  w      write the handoff summary for the next on-call
  a, z and the action keys act on the focused panel's selected row only

Actions: DISABLED (replay); the keys do nothing
  f      fix the selected alert: its remedy, planned with every target (Alerts, fix column)
  r      rotate the JWT secrets (grace period for the old one)
  d / u  drain / undrain the selected service
  x      release the selected Redis lock (only if its owner is unchanged)
  c      cancel the selected backend's query
  k      terminate the selected backend's session
  b      pause / resume the selected PgBouncer database
  n      reconnect the selected PgBouncer database's servers
  K      kill every connection of the selected PgBouncer database
  space  mark / unmark the row (sessions, locks): c, k, x act on the marked rows

Replay
  . / ,  step forward / back          g      seek to a time
  p      play / pause                 + / -  faster / slower

An action applies to the row you selected, identified by what you saw
(pid and backend start, lock key and owner): if it changed, it is refused;
if the row went away, nothing is selected until you move the cursor.
"""


def test_each_key_and_action_is_in_the_table_once() -> None:
    # One key, two bindings: space marks a row in the sessions and locks tables (the
    # first enabled binding wins) and polls everywhere else.
    assert [k for k, n in Counter(k.key for k in keys.KEYS).items() if n > 1] == ["space"]
    space = [k.action for k in keys.KEYS if k.key == "space"]
    assert space == ["toggle_mark", "poll_now"]
    bound = [k.action for k in keys.KEYS if k.bound]
    assert [a for a, n in Counter(bound).items() if n > 1] == []
    for k in keys.KEYS:
        if k.with_key:
            assert keys.BY_ACTION[k.with_key].section == k.section, k
        # every key is said in the help, on its own line or on another key's
        assert k.help or k.with_key, k


def test_bindings_are_the_tables_bound_keys_in_footer_order() -> None:
    made = [(b.key, b.action, b.description, b.show) for b in UltrawatchApp.BINDINGS]
    assert all(isinstance(b, Binding) for b in UltrawatchApp.BINDINGS)
    assert made == [(k.key, k.action, k.label, k.footer) for k in keys.KEYS if k.bound]
    # The keys that act on the platform come first: an 80-column footer shows them.
    shown = [k.action for k in keys.KEYS if k.bound and k.footer]
    assert shown[:7] == [
        "fix",
        "rotate_secret",
        "drain",
        "undrain",
        "release_lock",
        "cancel_query",
        "terminate_session",
    ]
    for k in keys.KEYS:
        if k.bound:  # the app (or Textual's App) does what the key says
            assert callable(getattr(UltrawatchApp, f"action_{k.action}", None)), k.action


def test_what_each_key_needs_decides_when_it_works() -> None:
    assert {a for a, n in keys.NEEDS.items() if n == "actions"} == {
        "fix",
        "toggle_mark",
        "rotate_secret",
        "drain",
        "undrain",
        "release_lock",
        "cancel_query",
        "terminate_session",
        "pgbouncer_pause",
        "pgbouncer_reconnect",
        "pgbouncer_kill",
    }
    assert {a for a, n in keys.NEEDS.items() if n == "replay"} == {
        "step",
        "step_back",
        "seek",
        "faster",
        "slower",
    }
    assert {a for a, n in keys.NEEDS.items() if n == "live"} == {"poll_now"}


def test_help_is_made_from_the_table() -> None:
    assert help_text(1800, "replay") == HELP
    on = help_text(900)
    assert "Actions (each asks first: y confirms, n or Esc cancels; Cancel is focused)\n" in on
    assert "snooze the selected alert for 15m" in on


def test_the_panel_map_names_each_panel_once_with_its_grid_place() -> None:
    assert [p.id for p in PANELS] == [
        "alerts",
        "postgres",
        "redis",
        "services",
        "processes",
        "security",
        "pgbouncer",
    ]
    assert sorted(p.grid for p in PANELS) == list(range(len(PANELS)))
    assert len({p.cls for p in PANELS}) == len(PANELS)
