"""Start-up cost of `ultrawatch check`, as a ratio to importing the client
libraries it needs (the floor: no tool can check PostgreSQL, Redis and HTTP
without loading their clients).

Starts an embedded PostgreSQL, an embedded Redis and a local /health server, and
checks them plus a secrets store (environment): one cold `ultrawatch check`
process against `python -c "import psycopg, redis.asyncio, aiohttp"` (the client
libraries that config loads: the secrets checks need no client), alternating,
repeated; medians of wall time and of CPU time, and their ratios (target <= 1.2).
The issue's earlier reference set (`psycopg, redis.asyncio, httpx, psutil, jwt`:
httpx is not the default engine, psutil and jwt are not loaded for this config)
is timed beside it for comparison. Then the warm reading, a `check --watch 1`
round's duration_ms, and (`--profile`) a cProfile summary of one cold run.

    uv run python bench/headless_startup.py [--repeat 15] [--profile]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import userrun

from dashboard.demo.embedded import EmbeddedPostgres, EmbeddedRedis

REFERENCE = "import psycopg, redis.asyncio, aiohttp"
ISSUE_REFERENCE = "import psycopg, redis.asyncio, httpx, psutil, jwt"
SECRET = secrets.token_urlsafe(48)  # a strong JWT secret, so the secrets checks are ok


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status":"pass"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/health+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    os.environ["JWT_SECRET"] = SECRET
    os.environ["JWT_SECRET_ROTATED_AT"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(f"machine: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        pg = EmbeddedPostgres(Path(tmp, "pg")).start()
        redis = EmbeddedRedis(Path(tmp, "redis")).start()
        http = ThreadingHTTPServer(("127.0.0.1", 0), Health)
        threading.Thread(target=http.serve_forever, daemon=True).start()
        config = Path(tmp, "ultrawatch.toml")
        config.write_text(
            f'[postgres]\ndsn = "{pg.dsn()}"\n\n[redis]\nurl = "{redis.url}"\n\n'
            f'[[services]]\nname = "svc"\nurl = "http://127.0.0.1:{http.server_address[1]}"\n\n'
            '[secrets]\nstore = { kind = "env" }\nkeys = ["JWT_SECRET"]\n'
        )
        # --timeout 60: a saturated shared machine must not cut a run short
        check = [userrun.EXE, "check", "--config", str(config), "--timeout", "60"]
        refs = {
            REFERENCE: [sys.executable, "-c", REFERENCE],
            ISSUE_REFERENCE: [sys.executable, "-c", ISSUE_REFERENCE],
        }
        try:
            userrun.timed(check)  # fill the bytecode and page caches
            for cmd in refs.values():
                userrun.timed(cmd)
            runs: dict[str, list[tuple[float, float]]] = {"check": []}
            runs.update({name: [] for name in refs})
            for _ in range(args.repeat):
                runs["check"].append(userrun.timed(check)[1:])
                for name, cmd in refs.items():
                    runs[name].append(userrun.timed(cmd)[1:])
            with userrun.Watch(check[2:]) as watch:
                rounds, cpu = watch.rounds(5)
            profile = userrun.profile_cold(check[2:]) if args.profile else ""
        finally:
            http.shutdown()
            redis.stop()
            pg.cleanup()
    wall = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
    cpu_ = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
    print(
        f"ultrawatch check (postgres+redis+1 service+secrets): median {wall['check'] * 1000:.0f} "
        f"ms wall, {cpu_['check'] * 1000:.0f} ms CPU"
    )
    for name in refs:
        print(
            f"python -c '{name}': median {wall[name] * 1000:.0f} ms wall, "
            f"{cpu_[name] * 1000:.0f} ms CPU: ratio wall **{wall['check'] / wall[name]:.2f}**, "
            f"CPU {cpu_['check'] / cpu_[name]:.2f}"
        )
    print(f"({args.repeat} alternating runs; target <= 1.2 against the first)")
    warm = statistics.median(r["duration_ms"] for r in rounds)
    print(f"warm: check --watch 1, 5 rounds: round {warm:.1f} ms, CPU {cpu / 5 * 1000:.1f} ms")
    print(f"machine: load average {os.getloadavg()[0]:.1f} at the end")
    if profile:
        print("\nprofile of one cold `ultrawatch check`:")
        print(profile)


if __name__ == "__main__":
    main()
