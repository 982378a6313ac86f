"""Start-up cost of `ultrawatch check`, as a ratio to importing the client
libraries it needs (the floor: no tool can check PostgreSQL, Redis and HTTP
without loading their clients).

Starts an embedded PostgreSQL, an embedded Redis and a local /health server,
then alternates the two commands, repeated, and prints medians and the ratio.
Target: ratio <= 1.3.

    uv run python bench/headless_startup.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from dashboard.demo.embedded import EmbeddedPostgres, EmbeddedRedis

REFERENCE = "import psycopg, redis.asyncio, aiohttp"


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


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        sys.exit(f"{cmd} failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pg = EmbeddedPostgres(Path(tmp, "pg")).start()
        redis = EmbeddedRedis(Path(tmp, "redis")).start()
        http = ThreadingHTTPServer(("127.0.0.1", 0), Health)
        threading.Thread(target=http.serve_forever, daemon=True).start()
        config = Path(tmp, "ultrawatch.toml")
        config.write_text(
            f'[postgres]\ndsn = "{pg.dsn()}"\n\n[redis]\nurl = "{redis.url}"\n\n'
            f'[[services]]\nname = "svc"\nurl = "http://127.0.0.1:{http.server_address[1]}"\n'
        )
        exe = str(Path(sys.executable).with_name("ultrawatch"))
        check = [exe, "check", "--config", str(config)]
        ref = [sys.executable, "-c", REFERENCE]
        try:
            timed(check), timed(ref)  # warm the page cache
            checks, refs = [], []
            for _ in range(args.repeat):
                checks.append(timed(check))
                refs.append(timed(ref))
        finally:
            http.shutdown()
            redis.stop()
            pg.cleanup()
    c, r = statistics.median(checks), statistics.median(refs)
    print(f"ultrawatch check (postgres+redis+1 service): median {c * 1000:.0f} ms")
    print(f"python -c '{REFERENCE}': median {r * 1000:.0f} ms")
    print(f"ratio: {c / r:.2f}  (target <= 1.3, {args.repeat} alternating runs)")


if __name__ == "__main__":
    main()
