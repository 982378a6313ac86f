"""A tiny UltraMarket-like service for the drain tests (run as a child process).

It keeps `--ops` operations in flight (each takes `--op-time` seconds and logs
"start N" / "done N" to `--log`). POST /admin/drain (admin JWT checked against
$JWT_SECRET) or SIGTERM: stop starting work, let in-flight work finish, log
"drained", exit 0 (or, with --stay, keep answering as draining until
POST /admin/undrain). With --forced, SIGTERM kills it at once, work in flight.
Prints its port on stdout once listening.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

lock = threading.Lock()
state = {"draining": False, "active": 0, "next": 0}
args: argparse.Namespace


def log(line: str) -> None:
    with lock, open(args.log, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def operation(n: int) -> None:
    log(f"start {n}")
    # Staggered lengths, so a drain shows active operations falling one by one.
    time.sleep(args.op_time * ((n - 1) % args.ops + 1) / args.ops)
    log(f"done {n}")
    with lock:
        state["active"] -= 1
    start_work()


def start_work() -> None:
    """Top up to --ops in-flight operations unless draining."""
    while True:
        with lock:
            if state["draining"] or state["active"] >= args.ops:
                return
            state["active"] += 1
            state["next"] += 1
            n = state["next"]
        threading.Thread(target=operation, args=(n,), daemon=True).start()


def drain() -> None:
    with lock:
        if state["draining"]:
            return
        state["draining"] = True

    def finish() -> None:
        while True:
            with lock:
                if state["active"] == 0:
                    break
            time.sleep(0.02)
        log("drained")
        if not args.stay:
            # Still answering "draining, 0 active" for a moment, as a graceful service
            # does while it closes its listener: a watcher sees the 0 before the exit.
            time.sleep(args.linger)
            os._exit(0)

    threading.Thread(target=finish, daemon=True).start()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a: object) -> None:
        pass

    def reply(self, code: int, obj: object) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        with lock:
            draining, active = state["draining"], state["active"]
        if self.path == "/health":
            self.reply(
                503 if draining else 200,
                {
                    "status": "fail" if draining else "pass",
                    "serviceId": "um-test",
                    "draining": draining,
                    "activeOperations": active,
                },
            )
        else:
            self.reply(404, {})

    def do_POST(self) -> None:
        auth = self.headers.get("Authorization", "")
        try:
            claims = jwt.decode(
                auth.removeprefix("Bearer "),
                os.environ["JWT_SECRET"],
                algorithms=["HS256"],
                options={"require": ["exp"]},
            )
            ok = claims.get("role") == "admin" and claims["exp"] - time.time() <= 60
        except jwt.PyJWTError:
            ok = False
        if not ok:
            self.reply(401, {"error": "admin token required"})
            return
        if self.path == "/admin/drain":
            drain()
            self.reply(202, {"draining": True})
        elif self.path == "/admin/undrain":
            with lock:
                state["draining"] = False
            start_work()
            self.reply(200, {"draining": False})
        else:
            self.reply(404, {})


def main() -> None:
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--log", required=True)
    p.add_argument("--ops", type=int, default=3)
    p.add_argument("--op-time", type=float, default=1.0)
    p.add_argument("--stay", action="store_true")
    p.add_argument("--linger", type=float, default=0.5)
    # --forced: SIGTERM keeps its default action, so the process dies at once with
    # its work in flight: the "graceful" shutdown that was really forced.
    p.add_argument("--forced", action="store_true")
    args = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if not args.forced:
        signal.signal(signal.SIGTERM, lambda *_: drain())
    start_work()
    print(server.server_address[1], flush=True)
    sys.stdout.close()
    server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
