"""A real Alertmanager (Debian's `prometheus-alertmanager`) on 127.0.0.1, with a
throwaway config and storage directory, shared by the session; restartable (on the
same port and storage, like a real restart)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard.demo.embedded import free_port
from tests.external import require_program

CONFIG = """\
route:
  receiver: nobody
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: nobody
"""


class AlertmanagerServer:
    def __init__(self, program: str, base: Path) -> None:
        self.program = program
        self.base = base
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        (base / "alertmanager.yml").write_text(CONFIG)

    def start(self) -> AlertmanagerServer:
        log = (self.base / "alertmanager.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.program,
                f"--config.file={self.base / 'alertmanager.yml'}",
                f"--storage.path={self.base / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited: {self.log_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"alertmanager not ready: {self.log_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        path = self.base / "alertmanager.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as r:
            return json.loads(r.read())

    def alerts(self, platform: str | None = None, **params: str) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds (active, silenced and inhibited alike)."""
        from urllib.parse import urlencode

        query = [("filter", f'platform="{platform}"')] if platform else []
        query += list(params.items())
        return self.get(f"/api/v2/alerts?{urlencode(query)}")

    def silences(self) -> list[dict[str, Any]]:
        return self.get("/api/v2/silences")


@pytest.fixture(scope="session")
def alertmanager() -> Iterator[AlertmanagerServer]:
    program = require_program("prometheus-alertmanager")
    base = Path(tempfile.mkdtemp(prefix="ultrawatch-test-alertmanager-"))
    server = AlertmanagerServer(program, base).start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


def wait_for(condition: Any, timeout: float = 15.0, every: float = 0.05) -> Any:
    """Poll `condition()` until it returns something true; that value, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout:g}s: {condition}")
        time.sleep(every)
