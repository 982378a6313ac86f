"""Letting go of a psycopg connection, shared by the targets that speak the
PostgreSQL protocol (PostgreSQL itself, PgBouncer's admin console)."""

from __future__ import annotations

from typing import Any


def close_socket(conn: Any) -> None:
    """Close the connection's socket now, without a goodbye or a cancel request:
    for a connection whose state is unknown, or a command to abandon at once."""
    try:
        conn.pgconn.finish()
    except Exception:  # best effort: the socket may be gone already
        pass


def drop(conn: Any) -> None:
    """Forget a connection whose state is unknown; closed without waiting."""
    if conn is not None and not conn.closed:
        close_socket(conn)


async def close_quietly(conn: Any) -> None:
    """Close a connection at the end, ignoring a server that is already gone."""
    import psycopg

    if conn is not None and not conn.closed:
        try:
            await conn.close()
        except psycopg.Error:
            pass
