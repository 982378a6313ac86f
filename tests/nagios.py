"""Plugin output read the way Nagios core reads it (base/utils.c, parse_check_output):
the first line is the short output and, after a `|`, perfdata; the lines after it are
the long output up to the first `|`, and everything after that `|` is perfdata too."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nagiosplugin import Range

# 'label'=value[UOM];[warn];[crit];[min];[max]
PERF = re.compile(r"('(?:[^']|'')+'|[^\s=']+)=(-?[0-9.]+|U)([a-zA-Z%]*)((?:;[-0-9.:@~]*){0,4})")


@dataclass
class PluginOutput:
    first: str
    long: list[str]
    perf: dict[str, tuple[str, str, list[str]]]  # label -> (value, UOM, [warn, crit, ...])


def parse(text: str) -> PluginOutput:
    first, _, rest = text.partition("\n")
    first, _, perf_text = first.partition("|")
    long_text, bar, more = rest.partition("|")
    if bar:
        perf_text += " " + more
    perf: dict[str, tuple[str, str, list[str]]] = {}
    for item in perf_text.split():
        m = PERF.fullmatch(item)
        assert m, f"not valid perfdata: {item!r}"
        assert m.group(1) not in perf, f"label twice: {m.group(1)}"
        perf[m.group(1)] = (m.group(2), m.group(3), m.group(4).split(";")[1:])
    return PluginOutput(first.rstrip(), [ln for ln in long_text.splitlines() if ln], perf)


def derived_status(field: tuple[str, str, list[str]]) -> str:
    """The status a Nagios parser derives from one perfdata field: critical when the
    value is outside the critical range, else warning outside the warning range."""
    value, _, ranges = field
    warn, crit = [*ranges, "", ""][:2]
    v = Range._parse_atom(value, 0)  # as the parser reads a range's numbers: int or float
    if crit and v not in Range(crit):
        return "critical"
    if warn and v not in Range(warn):
        return "warning"
    return "ok"
