"""The demo's data: schema, seed, the two invariants, and the stuck locks.

Everything lives in one schema (SCHEMA) so the demo can also run inside an
existing database given with --postgres-dsn without touching anything else.
"""

from __future__ import annotations

import time
import uuid

import psycopg
import redis

SCHEMA = "ultramarket_demo"
PRODUCTS = 12
STOCK = 1_000_000  # plenty: the demo runs for hours at a few orders a second
NO_TTL_PRODUCT = 3  # its lock never expires (a holder that forgot the timeout)
STALE_PRODUCT = 5  # its lock is held long past stale_after (a holder that hung)
STALE_AGE_S = 600  # how old the stale lock looks from the start
STALE_TTL_S = 3600
LOCK_PREFIX = "lock:inventory:"

_DDL = f"""
drop schema if exists {SCHEMA} cascade;
create schema {SCHEMA};
create table {SCHEMA}.products (
  id int primary key, name text not null, price_cents int not null);
create table {SCHEMA}.inventory (
  product_id int primary key references {SCHEMA}.products(id), quantity int not null);
create table {SCHEMA}.users (id int primary key, email text not null);
create table {SCHEMA}.orders (
  id bigserial primary key, product_id int not null references {SCHEMA}.products(id),
  quantity int not null, status text not null default 'created',
  created_at timestamptz not null default now());
-- Written by the workload client only after order-service acknowledged the order:
-- an acknowledged order missing from orders is a lost order.
create table {SCHEMA}.acknowledgements (
  order_id bigint primary key, acknowledged_at timestamptz not null default now());
create table {SCHEMA}.payments (
  id bigserial primary key, order_id bigint not null, amount_cents int not null,
  created_at timestamptz not null default now());
insert into {SCHEMA}.products
  select i, 'product ' || i, 100 * i from generate_series(1, {PRODUCTS}) i;
insert into {SCHEMA}.inventory select i, {STOCK} from generate_series(1, {PRODUCTS}) i;
insert into {SCHEMA}.users select i, 'user' || i || '@example.test' from generate_series(1, 50) i;
"""

INVARIANTS = {
    "oversold": f"select count(*) from {SCHEMA}.inventory where quantity < 0",
    "lost_orders": (
        f"select count(*) from {SCHEMA}.acknowledgements a "
        f"where not exists (select 1 from {SCHEMA}.orders o where o.id = a.order_id)"
    ),
}


def create_schema(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True, application_name="ultramarket-setup") as conn:
        conn.execute(_DDL)


def lock_key(product: int) -> str:
    return f"{LOCK_PREFIX}{product}"


def clear_locks(client: redis.Redis) -> None:
    """Remove inventory locks left by an earlier run (SCAN, never KEYS). Only on
    the demo's own Redis: on an existing one these names may be a platform's locks."""
    keys = list(client.scan_iter(match=f"{LOCK_PREFIX}*", count=1000))
    if keys:
        client.delete(*keys)


def existing_locks(client: redis.Redis, limit: int = 3) -> list[str]:
    """Up to `limit` lock:inventory:* keys already in this Redis (SCAN, never KEYS)."""
    found: list[str] = []
    for key in client.scan_iter(match=f"{LOCK_PREFIX}*", count=1000):
        found.append(key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key))
        if len(found) >= limit:
            break
    return found


# Deletes a key only while it still holds the value we wrote (as redis-py's Lock
# releases): a lock someone else has taken since is left alone.
_DELETE_IF_OURS = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


def remove_planted(client: redis.Redis, planted: dict[str, str]) -> int:
    """Delete the stuck locks plant_stuck_locks wrote, those still holding its token."""
    return sum(int(client.eval(_DELETE_IF_OURS, 1, k, v)) for k, v in planted.items())


def _uuid1_at(epoch: float) -> str:
    """A version-1 UUID for a past moment: redis-py's Lock token format, dated then."""
    ticks = int(epoch * 10_000_000) + 0x01B21DD213814000  # 100 ns since 1582-10-15
    fields = (
        ticks & 0xFFFFFFFF,
        (ticks >> 32) & 0xFFFF,
        ((ticks >> 48) & 0x0FFF) | 0x1000,
        0x80 | (uuid.getnode() >> 40 & 0x3F),
        uuid.getnode() & 0xFF,
        uuid.getnode(),
    )
    return uuid.UUID(fields=fields).hex


def plant_stuck_locks(client: redis.Redis) -> dict[str, str]:
    """A lock with no expiry, and one held for ten minutes already with an hour to go.

    Both look like redis-py `Lock`s whose holders died: a uuid1 hex token. The
    stale one is written with RESTORE ... IDLETIME so Redis itself reports its
    age (OBJECT IDLETIME), and its token is dated accordingly. Returns {key: token}.
    """
    planted = {lock_key(NO_TTL_PRODUCT): uuid.uuid1().hex}
    client.set(lock_key(NO_TTL_PRODUCT), planted[lock_key(NO_TTL_PRODUCT)])
    stale = lock_key(STALE_PRODUCT)
    planted[stale] = _uuid1_at(time.time() - STALE_AGE_S)
    client.set(stale, planted[stale])
    dump = client.dump(stale)
    assert isinstance(dump, bytes), dump  # just written above
    ttl_ms = (STALE_TTL_S - STALE_AGE_S) * 1000
    client.restore(stale, ttl_ms, dump, replace=True, idletime=STALE_AGE_S)
    return planted
