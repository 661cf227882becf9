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

from lambdas.naming import HEARTBEAT_SCHEMA, PLATFORM_PREFIX
from lambdas.source.replication_user import ROLE_COMMENT_PREFIX

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
    """The current database's replication slots named `cdcflow_*`, with activity and lag, by name."""
    rows = conn.execute(
        """
        SELECT slot_name, coalesce(plugin, ''), active, active_pid,
               pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(confirmed_flush_lsn, restart_lsn))::bigint
        FROM pg_replication_slots
        WHERE slot_name LIKE %s AND database = current_database()
        ORDER BY slot_name
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
