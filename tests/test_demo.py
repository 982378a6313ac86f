"""`ultrawatch demo`: the embedded UltraMarket, run as a user runs it (`demo --serve`).

Real PostgreSQL, real Redis, four real service processes; the checks are the
real `ultrawatch check` and the remedies the real action subcommands.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import json
import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import psutil
import psycopg
import pytest

from collectors.config import Config, parse_config
from collectors.secrets.store import DotenvStore, fingerprint
from dashboard.demo.schema import NO_TTL_PRODUCT, STALE_PRODUCT, lock_key
from tests.conftest import ULTRAWATCH, run_cli
from tests.jwt_service import assert_no_secret

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]  # the whole platform, end to end

SERVICES = ("product-service", "order-service", "payment-service", "user-service")


@dataclass
class Demo:
    proc: subprocess.Popen[bytes]
    text: str
    config: Config
    config_path: Path
    state_dir: Path
    stderr_path: Path
    temporary: bool

    def url(self, service: str) -> str:
        svc = self.config.service(service)
        assert svc is not None
        return str(svc.url).rstrip("/")

    def secret(self, key: str = "JWT_SECRET") -> str:
        value = DotenvStore(self.state_dir / ".env").get(key)
        assert value is not None
        return value

    def check(self) -> tuple[int, dict[str, dict[str, object]]]:
        res = run_cli("check", "--config", str(self.config_path), "--format", "json")
        assert res.returncode in (0, 1, 2), res.stderr
        checks = {c["id"]: c for c in json.loads(res.stdout)["checks"]}
        return res.returncode, checks

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "--config", str(self.config_path), "--yes")

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def _read_config(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """What `demo --serve` prints: the whole config, ending with the audit_log line."""
    assert proc.stdout is not None
    out = b""
    deadline = time.monotonic() + timeout
    while b"\naudit_log = " not in out or not out.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            raise AssertionError(f"no config from the demo (exit {proc.poll()}): {out!r}")
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                continue
            out += chunk
    return out.decode()


@contextlib.contextmanager
def running_demo(
    scenario: str, log_dir: Path, *, state_dir: Path | None = None, extra: list[str] | None = None
) -> Iterator[Demo]:
    stderr_path = log_dir / f"demo-{scenario}.stderr"
    argv = [ULTRAWATCH, "demo", "--serve", "--scenario", scenario]
    if state_dir is not None:
        argv += ["--state-dir", str(state_dir)]
    argv += extra or []
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
    try:
        text = _read_config(proc, timeout=60)
        config = parse_config(text)
        state = Path(config.audit_log_path).parent
        yield Demo(
            proc, text, config, state / "ultrawatch.toml", state, stderr_path, state_dir is None
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _token(secret: str, **claims: object) -> str:
    payload = {"sub": "test", "role": "admin", "exp": int(time.time()) + 60, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _wait(predicate, timeout: float, what: str, every: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def _health(url: str) -> httpx.Response | None:
    try:
        return httpx.get(f"{url}/health", timeout=2)
    except httpx.HTTPError:
        return None


def _demo_processes(demo: Demo) -> list[psutil.Process]:
    """The demo and everything it started: descendants, plus the daemonized postmaster."""
    root = psutil.Process(demo.proc.pid)
    procs = [root, *root.children(recursive=True)]
    pidfile = demo.state_dir / "pg" / "pgdata" / "postmaster.pid"
    procs.append(psutil.Process(int(pidfile.read_text().split()[0])))
    return procs


def _stop_and_expect_nothing_left(demo: Demo, sig: signal.Signals) -> None:
    procs = _demo_processes(demo)
    names = " ".join(" ".join(p.cmdline()) for p in procs)
    assert names.count("dashboard.demo.service") == 4 and "redis-server" in names
    assert "postgres" in names
    assert demo.state_dir.is_dir() and (demo.state_dir / ".env").is_file()
    demo.proc.send_signal(sig)
    assert demo.proc.wait(40) == 0
    _wait(lambda: not _gone(procs), 10, f"every demo process to end: {_gone(procs)}")
    if demo.temporary:
        assert not demo.state_dir.exists()  # the temporary state directory is removed


def _gone(procs: list[psutil.Process]) -> list[str]:
    alive = []
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
    return alive


# ------------------------------------------------------------------- healthy


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with running_demo("healthy", tmp_path_factory.mktemp("demo-healthy")) as demo:
        yield demo


def test_healthy_config_validates_and_check_exits_0(healthy: Demo) -> None:
    res = run_cli("config", "check", "--config", str(healthy.config_path))
    assert res.returncode == 0, res.stderr
    assert "4 services" in res.stdout
    assert healthy.config_path.read_text() == healthy.text
    # The healthy demo is healthy from the start: the first check after the
    # config is printed exits 0 (the config is written once every service answers).
    code, checks = healthy.check()
    bad = {k: v["summary"] for k, v in checks.items() if v["status"] != "ok"}
    assert code == 0, bad
    for service in SERVICES:
        assert checks[f"service.{service}.health"]["status"] == "ok"
        assert checks[f"process.{service}.memory"]["status"] == "ok"
    assert checks["postgres.invariant.oversold"]["status"] == "ok"
    assert checks["postgres.invariant.lost_orders"]["status"] == "ok"


def test_health_contract_of_every_service(healthy: Demo) -> None:
    store = DotenvStore(healthy.state_dir / ".env")
    for service in SERVICES:
        url = healthy.url(service)
        r = httpx.get(f"{url}/health")
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "pass" and body["serviceId"] == service
        assert body["draining"] is False and isinstance(body["activeOperations"], int)
        assert body["version"]
        pool = httpx.get(f"{url}/health/connections").json()["pool"]
        assert pool["max"] == 5 and pool["active"] + pool["idle"] <= 5
        assert {"waiting"} <= pool.keys()
        mem = httpx.get(f"{url}/health/memory").json()
        assert mem["rss"] > 10_000_000 and mem["heapUsed"] > 0
        assert mem["listeners"]["maxPerEvent"] == 10
        assert max(mem["listeners"]["byEvent"].values()) <= 10
        sec = httpx.get(f"{url}/health/security").json()["jwt"]
        assert sec["algorithm"] == "HS256"
        assert sec["accessKeyFingerprint"] == fingerprint(store.get("JWT_SECRET") or "")
        assert sec["refreshKeyFingerprint"] == fingerprint(store.get("JWT_REFRESH_SECRET") or "")
        assert sec["loadedAt"].endswith("Z")
    # Each service is its own process, found by its config's pattern and by nothing else.
    cmdlines = [" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])]
    for service in SERVICES:
        svc = healthy.config.service(service)
        assert svc is not None and svc.process is not None and svc.process.cmdline
        assert sum(bool(re.search(svc.process.cmdline, c)) for c in cmdlines) == 1
    # Each has its own pool, named after it in PostgreSQL, or behind PgBouncer (the
    # demo's default when it is installed) in the pooler's clients: there the server
    # connections keep the name of whichever client used them last.
    if healthy.config.pgbouncer is not None:
        from collectors.pgbouncer.config import instances

        admin = instances(healthy.config.pgbouncer)[0].dsn
        with psycopg.connect(admin, autocommit=True, prepare_threshold=None) as conn:
            cur = conn.execute("SHOW CLIENTS", prepare=False)
            names = [d.name for d in cur.description or []]
            apps = [dict(zip(names, r, strict=False)) for r in cur.fetchall()]
        counts = collections.Counter(
            str(a["application_name"]) for a in apps if a["database"] != "pgbouncer"
        )
    else:
        with psycopg.connect(healthy.config.postgres.dsn) as conn:  # type: ignore[union-attr]
            rows = conn.execute(
                "select application_name, count(*) from pg_stat_activity "
                "where backend_type = 'client backend' group by 1"
            ).fetchall()
        counts = collections.Counter(dict(rows))
    for service in SERVICES:
        assert 1 <= counts.get(service, 0) <= 5, counts


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_admin_endpoints_need_an_admin_token(healthy: Demo) -> None:
    url = healthy.url("user-service")
    secret = healthy.secret()
    assert httpx.get(f"{url}/api/admin/me").status_code == 401
    assert httpx.post(f"{url}/admin/undrain").status_code == 401
    wrong = _token("not-the-secret-" * 4)
    assert httpx.get(f"{url}/api/admin/me", headers=_auth(wrong)).status_code == 401
    user = _token(secret, role="user")
    assert httpx.get(f"{url}/api/admin/me", headers=_auth(user)).status_code == 403
    expired = _token(secret, exp=int(time.time()) - 120)
    assert httpx.get(f"{url}/api/admin/me", headers=_auth(expired)).status_code == 401
    unsigned = jwt.encode({"role": "admin"}, None, algorithm="none")  # type: ignore[arg-type]
    assert httpx.get(f"{url}/api/admin/me", headers=_auth(unsigned)).status_code == 401
    weak = _token("your-secret-key")
    assert httpx.get(f"{url}/api/admin/me", headers=_auth(weak)).status_code == 401
    # DESIGN.md: an admin token carries exp, at most 60 s ahead
    forever = jwt.encode({"sub": "test", "role": "admin"}, secret, algorithm="HS256")
    assert httpx.get(f"{url}/api/admin/me", headers=_auth(forever)).status_code == 401
    distant = _token(secret, exp=int(time.time()) + 3600)
    r = httpx.get(f"{url}/api/admin/me", headers=_auth(distant))
    assert r.status_code == 401 and "60 s" in r.json()["error"]
    assert httpx.post(f"{url}/admin/drain", headers=_auth(distant)).status_code == 401
    r = httpx.get(f"{url}/api/admin/me", headers=_auth(_token(secret)))
    assert r.status_code == 200 and r.json()["role"] == "admin"
    # undrain of a service that is not draining is harmless
    r = httpx.post(f"{url}/admin/undrain", headers=_auth(_token(secret)))
    assert r.status_code == 200 and r.json()["draining"] is False


def test_reload_takes_new_secret_and_honours_previous(healthy: Demo) -> None:
    url = healthy.url("product-service")
    old = healthy.secret()
    new = "n3w-" + os.urandom(32).hex()
    DotenvStore(healthy.state_dir / ".env").write({"JWT_SECRET": new, "JWT_SECRET_PREVIOUS": old})
    assert httpx.post(f"{url}/admin/reload-secrets").status_code == 401
    r = httpx.post(f"{url}/admin/reload-secrets", headers=_auth(_token(old)))
    assert r.status_code == 200
    assert r.json()["accessKeyFingerprint"] == fingerprint(new)
    assert old not in r.text and new not in r.text
    sec = httpx.get(f"{url}/health/security").json()["jwt"]
    assert sec["accessKeyFingerprint"] == fingerprint(new)
    # during the grace period both the new and the previous secret are accepted
    for secret in (new, old):
        r = httpx.get(f"{url}/api/admin/me", headers=_auth(_token(secret)))
        assert r.status_code == 200
    # a service that has not reloaded still holds the old secret
    other = httpx.get(f"{healthy.url('user-service')}/health/security").json()["jwt"]
    assert other["accessKeyFingerprint"] == fingerprint(old)


def _service_pid(demo: Demo, service: str) -> int:
    port = f"--port {httpx.URL(demo.url(service)).port}"
    return next(
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if f"--name {service}" in " ".join(p.info["cmdline"] or [])
        and port in " ".join(p.info["cmdline"] or [])
    )


def test_a_crashed_service_is_restarted_on_its_port(healthy: Demo) -> None:
    url = healthy.url("user-service")
    pid = _service_pid(healthy, "user-service")
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: "user-service exited with code -9" in healthy.log(), 10, "the crash logged")
    _wait(lambda: (h := _health(url)) is not None and h.status_code == 200, 20, "restart")
    assert _service_pid(healthy, "user-service") != pid
    r = httpx.get(f"{url}/api/users/1")
    assert r.status_code == 200 and r.json()["id"] == 1


def test_sighup_ends_every_process_and_removes_the_state_dir(healthy: Demo) -> None:
    # the last test on this demo: it ends it, as a dropped SSH session would
    # (SIGTERM and SIGINT are covered below)
    _stop_and_expect_nothing_left(healthy, signal.SIGHUP)


# ------------------------------------------------------------ drain, signals


def _other_db(redis_url: str, db: int) -> str:
    """The fixture's Redis, another database: the demo's lock names are its own there."""
    parts = httpx.URL(redis_url)
    return str(parts.copy_with(path=f"/{db}"))


def test_existing_postgres_and_redis_are_used_and_left_running(
    tmp_path: Path, pg_dsn: str, redis_url: str
) -> None:
    import redis

    url = _other_db(redis_url, 7)
    client = redis.Redis.from_url(url)
    client.flushdb()
    # someone else's lock under the demo's names: used only with --force-redis-locks
    client.set(lock_key(7), "theirs", ex=600)
    argv = ["--postgres-dsn", pg_dsn, "--redis-url", url, "--force-redis-locks"]
    try:
        with running_demo("stuck-lock", tmp_path, extra=argv) as demo:
            assert demo.config.postgres.dsn == pg_dsn  # type: ignore[union-attr]
            assert demo.config.redis.url == url  # type: ignore[union-attr]
            assert not (demo.state_dir / "pg").exists()
            assert not (demo.state_dir / "redis").exists()
            assert client.ttl(lock_key(NO_TTL_PRODUCT)) == -1
            r = httpx.post(f"{demo.url('order-service')}/api/orders", json={"product_id": 1})
            assert r.status_code == 201
            with psycopg.connect(pg_dsn) as conn:
                row = conn.execute(
                    "select count(*) from ultramarket_demo.orders where id = %s",
                    (r.json()["order_id"],),
                ).fetchone()
                assert row == (1,)
            # their lock is theirs: an order for that product waits and is refused
            r = httpx.post(f"{demo.url('order-service')}/api/orders", json={"product_id": 7})
            assert r.status_code == 409
            demo.proc.send_signal(signal.SIGTERM)
            assert demo.proc.wait(40) == 0
        # ours are gone, theirs is untouched, and both servers still run
        assert client.ping()
        assert sorted(client.scan_iter("lock:inventory:*")) == [lock_key(7).encode()]
        assert client.get(lock_key(7)) == b"theirs"
        with psycopg.connect(pg_dsn) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        client.flushdb()
        client.close()


def test_an_existing_redis_with_inventory_locks_is_refused(
    tmp_path: Path, pg_dsn: str, redis_url: str
) -> None:
    import redis

    url = _other_db(redis_url, 8)
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.set(lock_key(3), "a-real-holder", ex=600)
    try:
        argv = ["demo", "--serve", "--scenario", "stuck-lock", "--state-dir", str(tmp_path / "s")]
        res = run_cli(*argv, "--postgres-dsn", pg_dsn, "--redis-url", url)
        assert res.returncode == 3, res.stdout + res.stderr
        assert res.stdout == ""  # no config: no platform
        assert "already holds lock:inventory:* keys (lock:inventory:3)" in res.stderr
        assert "--force-redis-locks" in res.stderr
        # nothing was written: their lock holds their value, no TTL change
        assert sorted(client.scan_iter("*")) == [lock_key(3).encode()]
        assert client.get(lock_key(3)) == b"a-real-holder" and client.ttl(lock_key(3)) > 500
    finally:
        client.flushdb()
        client.close()


def test_stuck_locks_are_seen_by_every_one_shot_check(tmp_path: Path) -> None:
    """Cron runs `check` again and again: reading the locks must not make them look
    young to the next run (a GET on Redis < 7.2 resets the idle time the age comes
    from), nor may the orders that wait on the stale lock."""
    with running_demo("stuck-lock", tmp_path) as demo:
        order_url = demo.url("order-service")
        ages = []
        for n in range(3):
            code, checks = demo.check()
            failing = {k: v["summary"] for k, v in checks.items() if v["status"] != "ok"}
            assert code == 2, failing
            assert {"redis.locks.no_ttl", "redis.locks.stale"} <= failing.keys(), failing
            stale = checks["redis.locks.stale"]
            assert lock_key(STALE_PRODUCT) in str(stale["summary"]), stale
            ages.append(float(stale["value"]))  # type: ignore[arg-type]
            if n == 2:
                break
            # an order for each locked product waits, is refused, and touches nothing
            # (both at once: each waits the service's whole lock timeout)
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                answers = pool.map(
                    lambda p: httpx.post(
                        f"{order_url}/api/orders", json={"product_id": p}, timeout=10
                    ),
                    (NO_TTL_PRODUCT, STALE_PRODUCT),
                )
                for r in answers:
                    assert r.status_code == 409, r.text
        # planted ten minutes old, and older at every check
        assert ages[0] >= 600 and ages == sorted(ages) and ages[2] > ages[0], ages


def test_unknown_scenario_is_refused() -> None:
    res = run_cli("demo", "--serve", "--scenario", "nope")
    assert res.returncode == 2
    assert "incident" in res.stderr and "healthy" in res.stderr


# ---------------------------------------------------------------- end to end

INCIDENT_CHECKS = (
    "postgres.budget.payment-service",  # connection storm
    "service.order-service.listeners",  # memory and listener leak
    "redis.locks.no_ttl",  # stuck lock
    "redis.locks.stale",  # stale lock
    "secrets.JWT_SECRET.strength",  # weak secret
    "secrets.distinct",
    "secrets.forged_token",
)


def test_incident_end_to_end_fixed_by_ultrawatch(tmp_path: Path) -> None:
    # Straight to PostgreSQL on purpose: the storm's remedy here is terminating its
    # backends (tests/test_demo_pgbouncer.py runs the incident behind PgBouncer).
    direct = ["--no-pgbouncer"]
    with running_demo("incident", tmp_path, state_dir=tmp_path / "state", extra=direct) as demo:
        assert demo.config.pgbouncer is None
        assert "--no-pgbouncer: the services reach PostgreSQL directly" in demo.log()
        order_url = demo.url("order-service")

        def leaked() -> bool:
            mem = httpx.get(f"{order_url}/health/memory").json()
            return mem["listeners"]["byEvent"].get("order.created", 0) > 10

        _wait(leaked, 30, "the listener leak")
        code, checks = demo.check()
        failing = {k: v["summary"] for k, v in checks.items() if v["status"] != "ok"}
        assert code == 2, failing
        for check_id in INCIDENT_CHECKS:
            assert check_id in failing, (check_id, failing)
        assert checks["postgres.invariant.oversold"]["status"] == "ok"
        assert checks["postgres.invariant.lost_orders"]["status"] == "ok"
        assert _health(order_url).json()["activeOperations"] >= 1  # type: ignore[union-attr]

        # the remedies, each with ultrawatch's own subcommands
        weak = [demo.secret(), demo.secret("JWT_REFRESH_SECRET")]
        res = demo.cli("rotate-secret")
        assert res.returncode == 0, res.stdout + res.stderr
        # no value, old or new, in what the rotation printed
        rotated = [demo.secret(), demo.secret("JWT_REFRESH_SECRET")]
        assert_no_secret([*weak, *rotated], res.stdout, res.stderr)
        # the shoppers try the locked products too, and no order for them went through
        assert _acknowledged(demo, NO_TTL_PRODUCT, STALE_PRODUCT) == {}
        for product in (NO_TTL_PRODUCT, STALE_PRODUCT):
            res = demo.cli("release-lock", lock_key(product))
            assert res.returncode == 0, res.stdout + res.stderr
        # a drain can be called off while in-flight work still runs
        pid = _service_pid(demo, "order-service")
        admin = _auth(_token(demo.secret()))
        assert httpx.post(f"{order_url}/admin/drain", headers=admin).status_code == 202
        r = httpx.post(f"{order_url}/admin/undrain", headers=admin)
        assert r.status_code == 200 and r.json()["draining"] is False
        assert httpx.get(f"{order_url}/health").status_code == 200
        assert _service_pid(demo, "order-service") == pid
        # drain order-service while its slow operations run: it is seen to wait for them
        drain = subprocess.Popen(
            [ULTRAWATCH, "drain", "order-service", "--config", str(demo.config_path), "--yes"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        draining = _wait(
            lambda: (h := _health(order_url)) is not None and h.status_code == 503 and h.json(),
            20,
            "order-service draining",
            every=0.05,
        )
        assert draining["draining"] is True and draining["activeOperations"] >= 1
        try:  # new work is refused while the old finishes (unless it already exited)
            refused = httpx.post(f"{order_url}/api/orders", json={"product_id": 1})
            assert refused.status_code == 503
        except httpx.ConnectError:
            pass  # its listener is already closed: no new work either
        out, err = drain.communicate(timeout=90)
        assert drain.returncode == 0, out + err
        assert "active operations" in out + err
        _wait(lambda: not psutil.pid_exists(pid), 10, "the drained service to exit")
        _wait(lambda: "order-service exited with code 0" in demo.log(), 5, "exit 0 logged")
        with psycopg.connect(demo.config.postgres.dsn, autocommit=True) as conn:  # type: ignore[union-attr]
            pids = [
                r[0]
                for r in conn.execute(
                    "select pid from pg_stat_activity where application_name = "
                    "'payment-service' and state = 'idle'"
                )
            ]
        assert len(pids) > 5
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda p: demo.cli("terminate", str(p)), pids))
        assert all(r.returncode == 0 for r in results), [r.stderr for r in results]

        # orders for the formerly locked products go through again: the shoppers'
        # (acknowledged, so committed) and ours
        _wait(lambda: (h := _health(order_url)) is not None and h.status_code == 200, 20, "restart")
        _wait(
            lambda: len(_acknowledged(demo, NO_TTL_PRODUCT, STALE_PRODUCT)) == 2,
            60,
            f"the shoppers' orders for the released products "
            f"{_acknowledged(demo, NO_TTL_PRODUCT, STALE_PRODUCT)}",
            every=1,
        )
        for product in (NO_TTL_PRODUCT, STALE_PRODUCT):
            r = httpx.post(f"{order_url}/api/orders", json={"product_id": product}, timeout=10)
            assert r.status_code == 201, r.text
        listeners = httpx.get(f"{order_url}/health/memory").json()["listeners"]
        assert listeners["byEvent"]["order.created"] <= 10

        # once the grace period is over, the rotation is finished: the weak secret is gone
        _wait(
            lambda: demo.cli("rotate-secret", "--finish").returncode == 0,
            40,
            "rotate-secret --finish",
            every=2,
        )
        deadline = time.monotonic() + 60
        while True:
            code, checks = demo.check()
            if code == 0 or time.monotonic() > deadline:
                break
            time.sleep(2)
        failing = {k: v["summary"] for k, v in checks.items() if v["status"] != "ok"}
        assert code == 0, failing
        assert checks["postgres.invariant.lost_orders"]["status"] == "ok"
        audit = (demo.state_dir / "audit.jsonl").read_text()
        assert audit.count("\n") >= 4 + len(pids)
        # the supervisor started it fresh, on the same port, without the fault
        assert _service_pid(demo, "order-service") != pid
        logs = demo.log() + "".join(p.read_text() for p in (demo.state_dir / "logs").iterdir())
        for secret in (demo.secret(), "your-secret-key"):
            assert secret not in audit and secret not in logs
        # Ctrl+C ends it all; an explicit state directory is kept
        _stop_and_expect_nothing_left(demo, signal.SIGINT)
        assert (demo.state_dir / "ultrawatch.toml").is_file()


def _acknowledged(demo: Demo, *products: int) -> dict[int, int]:
    """Orders the shoppers placed and order-service acknowledged, per product."""
    with psycopg.connect(demo.config.postgres.dsn, autocommit=True) as conn:  # type: ignore[union-attr]
        rows = conn.execute(
            "select o.product_id, count(*) from ultramarket_demo.acknowledgements a "
            "join ultramarket_demo.orders o on o.id = a.order_id "
            "where o.product_id = any(%s) group by 1",
            (list(products),),
        ).fetchall()
    return {int(p): int(n) for p, n in rows}


def test_each_scenario_switches_on_its_own_failure() -> None:
    from dashboard.demo.scenarios import SCENARIOS, WEAK_SECRET, get_scenario

    flags = ("connection_storm", "memory_leak", "stuck_lock", "weak_secret", "slow_drain")
    on = {name: {f for f in flags if getattr(s, f)} for name, s in SCENARIOS.items()}
    assert on["incident"] == set(flags) and on["healthy"] == set()
    for flag in flags:
        assert on[flag.replace("_", "-")] == {flag}
    assert "--storm" in get_scenario("connection-storm").service_faults("payment-service")
    assert get_scenario("connection-storm").service_faults("order-service") == []
    assert "--leak" in get_scenario("memory-leak").service_faults("order-service")
    assert "--slow-ops" in get_scenario("slow-drain").service_faults("order-service")
    weak = parse_dotenv_text(get_scenario("weak-secret").dotenv())
    assert weak["JWT_SECRET"] == weak["JWT_REFRESH_SECRET"] == WEAK_SECRET
    strong = parse_dotenv_text(get_scenario("healthy").dotenv())
    assert strong["JWT_SECRET"] != strong["JWT_REFRESH_SECRET"]
    assert min(len(v) for v in strong.values()) >= 64


def parse_dotenv_text(text: str) -> dict[str, str]:
    from collectors.secrets.store import parse_dotenv

    return parse_dotenv(text)


def test_free_ports_are_below_the_ephemeral_range_and_bindable() -> None:
    """The demo's servers take ports an outgoing connection can never get as its source
    port (one taken between the pick and the bind made a demo exit 3)."""
    import socket

    from dashboard.demo.embedded import _ephemeral_low, free_port

    ports = {free_port() for _ in range(20)}
    assert len(ports) > 10  # spread, not one port again and again
    assert all(1024 < p < _ephemeral_low() for p in ports), sorted(ports)
    for p in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))
