"""What cdcflow has on a source database: the input of leak checks and of reconciliation. Read-only.

Roles belong to the server; slots, publications and heartbeat tables to one
database, and are listed for the connection's current database. A role
counts as cdcflow's only when it carries the comment `ensure_replication_user`
sets, since other roles may share the prefix (the local stack's admin login
is `cdcflow_admin`).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from lambdas.naming import HEARTBEAT_SCHEMA, PLATFORM_PREFIX
from lambdas.source.replication_user import ROLE_COMMENT_PREFIX
from lambdas.source.tables import table_identifier

# LIKE patterns: `_` is a wildcard there, so the separator is escaped.
_PREFIXED = PLATFORM_PREFIX + r"\_%"
_HEARTBEAT_TABLE = r"heartbeat\_%"


@dataclass(frozen=True)
class SlotStatus:
    """A replication slot of the current database and how far behind its reader is."""

    name: str
    plugin: str
    active: bool
    active_pid: int | None
    lag_bytes: int | None  # WAL written since the reader's confirmed position
    wal_status: str | None = None  # reserved, extended, unreserved or lost
    confirmed_flush_lsn: int | None = None  # as a number of bytes (pg_lsn minus '0/0')
    decoded_txns: int | None = None  # pg_stat_replication_slots.total_txns: grows while the slot lives


def cdcflow_roles(conn: psycopg.Connection) -> list[str]:
    """Names of the server's cdcflow replication roles, sorted."""
    rows = conn.execute(
        """
        SELECT rolname FROM pg_roles
        WHERE rolname LIKE %s AND starts_with(coalesce(shobj_description(oid, 'pg_authid'), ''), %s)
        ORDER BY rolname
        """,
        [_PREFIXED, ROLE_COMMENT_PREFIX],
    ).fetchall()
    return [row[0] for row in rows]


def cdcflow_slots(conn: psycopg.Connection) -> list[SlotStatus]:
    """The current database's replication slots named `cdcflow_*`, with activity, lag, WAL status and the
    decoding statistics that tell a slot from one re-created under its name, by name."""
    rows = conn.execute(
        """
        SELECT r.slot_name, coalesce(r.plugin, ''), r.active, r.active_pid,
               pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(r.confirmed_flush_lsn, r.restart_lsn))::bigint,
               r.wal_status, pg_wal_lsn_diff(r.confirmed_flush_lsn, '0/0')::bigint, s.total_txns
        FROM pg_replication_slots r LEFT JOIN pg_stat_replication_slots s ON s.slot_name = r.slot_name
        WHERE r.slot_name LIKE %s AND r.database = current_database()
        ORDER BY r.slot_name
        """,
        [_PREFIXED],
    ).fetchall()
    return [SlotStatus(*row) for row in rows]


def cdcflow_publications(conn: psycopg.Connection) -> list[str]:
    """The current database's publications named `cdcflow_*`, sorted."""
    rows = conn.execute("SELECT pubname FROM pg_publication WHERE pubname LIKE %s ORDER BY pubname", [_PREFIXED])
    return [row[0] for row in rows.fetchall()]


def heartbeat_tables(conn: psycopg.Connection) -> list[str]:
    """The current database's `cdcflow.heartbeat_*` tables as `schema.table`, sorted."""
    rows = conn.execute(
        """
        SELECT n.nspname || '.' || c.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relname LIKE %s AND c.relkind = 'r'
        ORDER BY 1
        """,
        [HEARTBEAT_SCHEMA, _HEARTBEAT_TABLE],
    ).fetchall()
    return [row[0] for row in rows]


def list_cdcflow_resources(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Every cdcflow resource visible from `conn`, by kind: roles, slots, publications, heartbeat_tables."""
    return {
        "roles": cdcflow_roles(conn),
        "slots": [slot.name for slot in cdcflow_slots(conn)],
        "publications": cdcflow_publications(conn),
        "heartbeat_tables": heartbeat_tables(conn),
    }


def server_started_at(conn: psycopg.Connection) -> str:
    """When the server's postmaster started (ISO 8601): its statistics, slots' among them, may reset only then."""
    return conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0].isoformat()


def heartbeat_age_seconds(conn: psycopg.Connection, qualified_table: str, row_id: str) -> float | None:
    """Seconds since Debezium's heartbeat action last wrote row `row_id` of `qualified_table`; None when the
    table or row is missing."""
    query = sql.SQL("SELECT extract(epoch FROM now() - beat)::float8 FROM {table} WHERE id = %s").format(
        table=table_identifier(qualified_table))
    try:
        row = conn.execute(query, [row_id]).fetchone()
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        return None
    return None if row is None or row[0] is None else max(0.0, float(row[0]))
