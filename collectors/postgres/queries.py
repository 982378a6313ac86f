"""The PostgreSQL target's SQL: capacity and names at connect, and the round's one
prepared query (its columns by position). Only constants are composed in."""

from __future__ import annotations

from psycopg import sql

from collectors.postgres.config import PostgresConfig

# Set at server start: read once per connection (a restart means a reconnect).
CAPACITY_SQL = """
select current_setting('server_version'),
       current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int,
       coalesce(current_setting('reserved_connections', true), '0')::int
"""

# Client backends except ours, one row each; grouping and ranking happen in
# Python on these rows (cheaper than building JSON on the server). Rows hidden
# by missing privileges have a NULL backend_type; those with a database and a
# user are counted as sessions. The lock manager (pg_blocking_pids, pg_locks)
# is only asked about rows waiting on a heavyweight lock.
ROUND_SQL = """
select s.pid, date_part('epoch', s.backend_start), s.application_name, s.usesysid, s.datid,
       s.state, s.backend_type is null,
       date_part('epoch', s.xact_start), date_part('epoch', s.state_change),
       date_part('epoch', s.query_start),
       s.wait_event_type, s.wait_event,
       case when s.query_start > {since} then left(s.query, {query_chars}) end,
       age(s.backend_xmin),
       case when s.wait_event_type = 'Lock' then pg_blocking_pids(s.pid) end,
       case when s.wait_event_type = 'Lock' then date_part('epoch', now() - {waitstart}) end,
       (select date_part('epoch', now()))
from pg_stat_get_activity(null) as s
where s.pid <> pg_backend_pid()
  and (s.backend_type = 'client backend'
       or (s.backend_type is null and s.datid is not null and s.usesysid is not null))
"""

# Column positions in ROUND_SQL's rows.
(
    PID,
    START,
    APP,
    USESYSID,
    DATID,
    STATE,
    HIDDEN,
    XACT_START,  # epoch seconds: ages are taken against the server's now (NOW)
    STATE_CHANGE,
    QUERY_START,
    WAIT_TYPE,
    WAIT_EVENT,
    QUERY,
    XMIN_AGE,
    BLOCKERS,
    WAITING,
    NOW,
) = range(17)

# The round for judges alone (`check`: no session list): the counts are made on
# the server, grouped by what the judges count by, and only the rows a judge names
# travel whole (waiting on a lock; the oldest transaction, the longest idle in
# transaction and the oldest xmin among visible rows, ties to the earlier backend
# slot as Python's min/max over ROUND_SQL's rows break them). Group rows have
# ROUND_SQL's columns with only APP, USESYSID, DATID, STATE, HIDDEN and NOW set, and
# their count in COUNT; named rows have every column (a query text only for lock
# waits: the blocked list shows it), COUNT null and their slot in SLOT, and a row
# named twice comes twice. 500 idle pooled sessions come back as a handful of rows
# (pg_activity filters idle sessions on the server for the same reason). `s`, read
# more than once, is materialized (pg_stat_get_activity runs once) without the
# MATERIALIZED keyword PostgreSQL 11 would refuse. Only the columns used are kept
# between the scans: the query texts made them 3x wider.
JUDGE_SQL = """
with s as (
  select a.pid, a.backend_start, a.application_name, a.usesysid, a.datid, a.state,
         a.backend_type is null as hidden, a.xact_start, a.state_change, a.query_start,
         a.wait_event_type, a.wait_event, a.backend_xmin, a.ordinality as slot,
         case when a.wait_event_type = 'Lock' then left(a.query, {query_chars}) end as query
  from pg_stat_get_activity(null) with ordinality as a
  where a.pid <> pg_backend_pid()
    and (a.backend_type = 'client backend'
         or (a.backend_type is null and a.datid is not null and a.usesysid is not null))
), named as (
  select * from s where wait_event_type = 'Lock'
  union all (select * from s
             where not hidden and state_change is not null
               and state in ('idle in transaction', 'idle in transaction (aborted)')
             order by state_change, slot limit 1)
  union all (select * from s where not hidden and xact_start is not null
             order by xact_start, slot limit 1)
  union all (select * from s where not hidden and backend_xmin is not null
             order by age(backend_xmin) desc, slot limit 1)
)
select s.pid, date_part('epoch', s.backend_start), s.application_name, s.usesysid, s.datid,
       s.state, s.hidden,
       date_part('epoch', s.xact_start), date_part('epoch', s.state_change),
       date_part('epoch', s.query_start),
       s.wait_event_type, s.wait_event, s.query, age(s.backend_xmin),
       case when s.wait_event_type = 'Lock' then pg_blocking_pids(s.pid) end,
       case when s.wait_event_type = 'Lock' then date_part('epoch', now() - {waitstart}) end,
       (select date_part('epoch', now())),
       null::bigint, s.slot
from named as s
union all
select null, null, application_name, usesysid, datid, state, hidden,
       null, null, null, null, null, null, null, null, null,
       (select date_part('epoch', now())),
       count(*), null
from s group by application_name, usesysid, datid, state, hidden
"""

# JUDGE_SQL's two columns after ROUND_SQL's.
COUNT, SLOT = 17, 18

# Names for the oids above; asked again only when an unknown oid shows up.
NAMES_SQL = """
select 'd', oid, datname::text from pg_database
union all
select 'u', oid, rolname::text from pg_roles
"""

# pg_locks.waitstart exists from PostgreSQL 14; before, the state change is the best guess.
WAITSTART_14 = "(select min(l.waitstart) from pg_locks l where l.pid = s.pid and not l.granted)"
WAITSTART_OLD = "s.state_change"


def round_query(pg: PostgresConfig, server_version: int) -> sql.Composed:
    """The whole round's SQL; only constants are composed in, as literals."""
    waitstart = WAITSTART_14 if server_version >= 140000 else WAITSTART_OLD
    return sql.SQL(ROUND_SQL).format(
        waitstart=sql.SQL(waitstart),
        query_chars=sql.Literal(max(0, pg.query_chars)),
        since=sql.Placeholder("since"),
    )


def judge_query(pg: PostgresConfig, server_version: int) -> sql.Composed:
    """The judges' round (JUDGE_SQL); only constants are composed in, as literals."""
    waitstart = WAITSTART_14 if server_version >= 140000 else WAITSTART_OLD
    return sql.SQL(JUDGE_SQL).format(
        waitstart=sql.SQL(waitstart), query_chars=sql.Literal(max(0, pg.query_chars))
    )
