"""Third-party programs that have no wheel and come from Debian's packages.

Without the program, a test that needs it is skipped with the command that
installs it; where `CI` is set the same test fails instead, so CI can never pass
by skipping the real components (DESIGN.md, "Tests")."""

from __future__ import annotations

import os
import shutil

import pytest

# program -> the Debian package that ships it
PACKAGES = {
    "pgbouncer": "pgbouncer",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "promtool": "prometheus",
}


def require_program(program: str) -> str:
    """The program's path, or skip (fail under CI) naming the install command."""
    found = shutil.which(program) or _sbin(program)
    if found:
        return found
    reason = f"{program} not found: apt-get install -y {PACKAGES.get(program, program)}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
    pytest.skip(reason)


def _sbin(program: str) -> str | None:
    # Debian puts some daemons (pgbouncer) in /usr/sbin, which is not on every PATH.
    for folder in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        path = os.path.join(folder, program)
        if os.access(path, os.X_OK):
            return path
    return None
