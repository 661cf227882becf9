"""The heartbeat table against the local PostgreSQL: its shape, repair, grants, and the shared schema."""

import pytest
from psycopg import sql

from lambdas.naming import HEARTBEAT_SCHEMA
from lambdas.secrets import Credentials
from lambdas.source.connection import connect_as
from lambdas.source.heartbeat import (
    HeartbeatTableMismatch,
    drop_heartbeat_table,
    ensure_heartbeat_table,
    heartbeat_action_query,
)
from lambdas.source.replication_user import ensure_replication_user

PASSWORD = "Beat-Pa55word"


def _columns(conn, qualified):
    schema, table = qualified.split(".")
    return conn.execute(
        """
        SELECT column_name, data_type, is_nullable, column_default
        FROM information_schema.columns WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position
        """,
        [schema, table],
    ).fetchall()


def _replica_identity(conn, qualified):
    return conn.execute("SELECT relreplident FROM pg_class WHERE oid = %s::regclass", [qualified]).fetchone()[0]


def _schema_exists(conn):
    return conn.execute("SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = %s)", [HEARTBEAT_SCHEMA]).fetchone()[0]


def _table_exists(conn, qualified):
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", [qualified]).fetchone()[0]


def test_ensure_creates_the_table_and_a_second_call_returns_the_same(source_admin, pipeline_spec):
    first = ensure_heartbeat_table(source_admin, pipeline_spec)
    second = ensure_heartbeat_table(source_admin, pipeline_spec)

    table = pipeline_spec.names.heartbeat_qualified
    assert first == second == {"table": table, "replica_identity": "default", "granted_to": None,
                               "signal_table": pipeline_spec.names.signal_qualified}
    assert _columns(source_admin, table) == [
        ("id", "text", "NO", None),
        ("beat", "timestamp with time zone", "NO", "now()"),
    ]
    primary_key = source_admin.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = %s::regclass AND i.indisprimary",
        [table],
    ).fetchall()
    assert primary_key == [("id",)]
    assert _replica_identity(source_admin, table) == "d"


def test_ensure_sets_a_changed_replica_identity_back_to_default(source_admin, pipeline_spec):
    ensure_heartbeat_table(source_admin, pipeline_spec)
    table = pipeline_spec.names.heartbeat_qualified
    source_admin.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(sql.Identifier(*table.split("."))))

    ensure_heartbeat_table(source_admin, pipeline_spec)

    assert _replica_identity(source_admin, table) == "d"


def test_a_table_made_after_the_role_is_granted_to_it_and_the_action_query_runs_as_the_role(
    source_admin, pipeline_spec
):
    ensure_replication_user(source_admin, pipeline_spec, PASSWORD, rds=False)

    result = ensure_heartbeat_table(source_admin, pipeline_spec)

    assert result["granted_to"] == pipeline_spec.names.replication_role
    with connect_as(pipeline_spec.source, Credentials(pipeline_spec.names.replication_role, PASSWORD)) as conn:
        conn.execute(heartbeat_action_query(pipeline_spec))
        conn.execute(heartbeat_action_query(pipeline_spec))
        rows = conn.execute(
            sql.SQL("SELECT id FROM {}").format(sql.Identifier(*pipeline_spec.names.heartbeat_qualified.split(".")))
        ).fetchall()
    assert rows == [("heartbeat",)]


def test_drop_keeps_the_shared_schema_until_the_last_pipeline_goes(source_admin, make_source_spec, source_tables):
    first, second = make_source_spec(source_tables), make_source_spec(source_tables)
    ensure_heartbeat_table(source_admin, first)
    ensure_heartbeat_table(source_admin, second)
    others = source_admin.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname <> ALL(%s) AND c.relkind = 'r'",
        [HEARTBEAT_SCHEMA, [spec.names.heartbeat_table for spec in (first, second)]
         + [spec.names.signal_table for spec in (first, second)]],
    ).fetchone()[0]

    assert drop_heartbeat_table(source_admin, first) is True
    assert not _table_exists(source_admin, first.names.heartbeat_qualified)
    assert _schema_exists(source_admin)

    assert drop_heartbeat_table(source_admin, second) is True
    # Other pipelines (other tests on the shared stack) may still hold tables there.
    assert _schema_exists(source_admin) == (others > 0)


def test_drop_twice_and_drop_of_what_never_existed_succeed(source_admin, pipeline_spec):
    assert drop_heartbeat_table(source_admin, pipeline_spec) is False
    ensure_heartbeat_table(source_admin, pipeline_spec)

    assert drop_heartbeat_table(source_admin, pipeline_spec) is True
    assert drop_heartbeat_table(source_admin, pipeline_spec) is False


def test_drop_leaves_a_schema_that_holds_something_else(source_admin, pipeline_spec):
    ensure_heartbeat_table(source_admin, pipeline_spec)
    function = sql.Identifier(HEARTBEAT_SCHEMA, f"kept_{pipeline_spec.pipeline_id}")
    source_admin.execute(sql.SQL("CREATE FUNCTION {}() RETURNS int LANGUAGE sql AS 'SELECT 1'").format(function))
    try:
        assert drop_heartbeat_table(source_admin, pipeline_spec) is True
        assert _schema_exists(source_admin)
    finally:
        source_admin.execute(sql.SQL("DROP FUNCTION {}()").format(function))


def test_a_same_named_table_of_another_shape_is_refused(source_admin, pipeline_spec):
    table = pipeline_spec.names.heartbeat_qualified
    source_admin.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(HEARTBEAT_SCHEMA)))
    source_admin.execute(sql.SQL("CREATE TABLE {} (id text, beat timestamptz)").format(sql.Identifier(*table.split("."))))

    with pytest.raises(HeartbeatTableMismatch, match=r"primary key \(\)"):
        ensure_heartbeat_table(source_admin, pipeline_spec)
