"""The pipeline's heartbeat table, `cdcflow.heartbeat_<id>`, and the query Debezium beats with.

Debezium runs `heartbeat_action_query` as the replication role on every
heartbeat interval. The write keeps the slot's confirmed position moving on a
source whose captured tables are quiet (otherwise WAL from other databases
piles up behind the slot), and, because the table is in the publication, the
row travels the whole pipeline: the canary check relies on that.

The `cdcflow` schema is shared by every pipeline on the database; it is
created with the first heartbeat table and dropped with the last.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from lambdas.errors import StepError
from lambdas.source.connection import server_address
from lambdas.source.signals import drop_signal_table, ensure_signal_table, grant_signal_access
from lambdas.source.tables import PRIVILEGES_LOCK, lock_resource, table_identifier
from lambdas.spec import PipelineSpec

HEARTBEAT_ROW_ID = "heartbeat"
# Both steps take this lock, so dropping the last table cannot remove the schema under a table being created.
_SCHEMA_LOCK = PRIVILEGES_LOCK  # it also guards the schema being created and dropped
# (column, type) pairs and the primary key the heartbeat action's upsert relies on.
_COLUMNS = [("id", "text"), ("beat", "timestamp with time zone")]
_PRIMARY_KEY = ["id"]


class HeartbeatTableMismatch(StepError):
    """A table with the heartbeat table's name exists in another shape, so the heartbeat action would fail."""


def heartbeat_action_query(spec: PipelineSpec) -> str:
    """The SQL Debezium runs every heartbeat interval: an upsert of the row `id = 'heartbeat'`."""
    query = sql.SQL(
        "INSERT INTO {table} (id, beat) VALUES ({row_id}, now()) ON CONFLICT (id) DO UPDATE SET beat = EXCLUDED.beat"
    ).format(table=table_identifier(spec.names.heartbeat_qualified), row_id=sql.Literal(HEARTBEAT_ROW_ID))
    return query.as_string()


def ensure_heartbeat_table(conn: psycopg.Connection, spec: PipelineSpec) -> dict[str, Any]:
    """Create schema `cdcflow` and table `heartbeat_<id>` if absent; grant the replication role its use.

    The table is `(id text PRIMARY KEY, beat timestamptz NOT NULL DEFAULT
    now())` with replica identity DEFAULT (an existing table whose identity
    was changed by hand is set back; one of another shape raises
    `HeartbeatTableMismatch`). When the replication role already
    exists it gets USAGE on the schema and SELECT, INSERT, UPDATE on the
    table, which the heartbeat action needs (`ensure_replication_user` grants
    the same when it runs second). Idempotent: a second call changes nothing
    and returns the same result. Everything happens in one transaction.
    """
    names = spec.names
    schema = sql.Identifier(names.heartbeat_schema)
    table = table_identifier(names.heartbeat_qualified)
    with conn.transaction():
        lock_resource(conn, _SCHEMA_LOCK)
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (id text PRIMARY KEY, beat timestamptz NOT NULL DEFAULT now())")
            .format(table)
        )
        _check_shape(conn, names.heartbeat_qualified)
        identity = conn.execute(
            "SELECT relreplident FROM pg_class WHERE oid = %s::regclass", [names.heartbeat_qualified]
        ).fetchone()[0]
        if identity != "d":
            conn.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY DEFAULT").format(table))
        granted = grant_heartbeat_access(conn, spec)
        signals = ensure_signal_table(conn, spec)  # Debezium's signal table lives beside it
    return {
        "table": names.heartbeat_qualified,
        "replica_identity": "default",
        "granted_to": names.replication_role if granted else None,
        "signal_table": signals["table"],
    }


def _check_shape(conn: psycopg.Connection, qualified: str) -> None:
    columns = conn.execute(
        """
        SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
        WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum
        """,
        [qualified],
    ).fetchall()
    primary_key = conn.execute(
        """
        SELECT a.attname FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY a.attnum
        """,
        [qualified],
    ).fetchall()
    if [tuple(column) for column in columns] != _COLUMNS or [row[0] for row in primary_key] != _PRIMARY_KEY:
        found = ", ".join(f"{name} {type_}" for name, type_ in columns)
        raise HeartbeatTableMismatch(
            f"table {qualified} in database {conn.info.dbname!r} on {server_address(conn)} has columns ({found}) "
            f"and primary key ({', '.join(row[0] for row in primary_key)}), not (id text PRIMARY KEY, beat "
            "timestamptz); drop it and run again"
        )


def grant_heartbeat_access(conn: psycopg.Connection, spec: PipelineSpec) -> bool:
    """Grant the replication role what the heartbeat action needs, if both role and table exist.

    Returns whether they both exist (and so the grants are in place).
    Idempotent: granting a privilege the role holds changes nothing.
    """
    names = spec.names
    both_exist = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s) AND to_regclass(%s) IS NOT NULL",
        [names.replication_role, names.heartbeat_qualified],
    ).fetchone()[0]
    if not both_exist:
        return False
    role = sql.Identifier(names.replication_role)
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(names.heartbeat_schema), role))
    conn.execute(
        sql.SQL("GRANT SELECT, INSERT, UPDATE ON TABLE {} TO {}").format(
            table_identifier(names.heartbeat_qualified), role
        )
    )
    grant_signal_access(conn, spec)
    return True


def drop_heartbeat_table(conn: psycopg.Connection, spec: PipelineSpec) -> bool:
    """Drop the pipeline's heartbeat table, and the `cdcflow` schema once nothing else is in it.

    Returns whether the table existed. Idempotent: with no table it does
    nothing and returns False. The schema is kept while other pipelines'
    heartbeat tables (or anything else) live in it. Dropping the table also
    takes it out of the publication.
    """
    names = spec.names
    with conn.transaction():
        lock_resource(conn, _SCHEMA_LOCK)
        existed = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [names.heartbeat_qualified]).fetchone()[0]
        if existed:
            conn.execute(sql.SQL("DROP TABLE {}").format(table_identifier(names.heartbeat_qualified)))
        drop_signal_table(conn, spec)
        others_left = conn.execute(
            "SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s)",
            [names.heartbeat_schema],
        ).fetchone()[0]
        if not others_left:
            _drop_schema_if_empty(conn, names.heartbeat_schema)
    return bool(existed)


def _drop_schema_if_empty(conn: psycopg.Connection, schema: str) -> None:
    """Drop `schema` unless something (a function, a type someone added) still lives in it."""
    try:
        with conn.transaction():  # a savepoint: a refused drop must not undo the caller's work
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} RESTRICT").format(sql.Identifier(schema)))
    except psycopg.errors.DependentObjectsStillExist:
        pass
