"""The canary against the local source and sink databases.

The journey through Debezium and the sink connector is the end-to-end
tests' business; here the sink table is written the way the JDBC sink
writes it, to check both ends of the canary step.
"""

import secrets

import psycopg
import pytest
from psycopg import sql

from lambdas.source.canary import canary_arrived, write_canary
from lambdas.source.connection import connect_sink
from lambdas.source.heartbeat import ensure_heartbeat_table


@pytest.fixture
def sink_schema(sink_admin):
    """A fresh schema in the sink database, as the spec's `sink.schema`."""
    schema = f"sink_{secrets.token_hex(4)}"
    sink_admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield schema
    sink_admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def canary_spec(source_admin, make_source_spec, source_tables, sink_schema):
    spec = make_source_spec(source_tables, sink_schema=sink_schema)
    ensure_heartbeat_table(source_admin, spec)
    return spec


def _source_rows(conn, spec):
    table = sql.Identifier(*spec.names.heartbeat_qualified.split("."))
    return conn.execute(sql.SQL("SELECT id, beat FROM {} ORDER BY id").format(table)).fetchall()


def test_write_upserts_one_row_and_says_where_it_will_arrive(source_admin, canary_spec, sink_schema):
    first = write_canary(source_admin, canary_spec, "run-1")
    beat_after_first = _source_rows(source_admin, canary_spec)[0][1]
    second = write_canary(source_admin, canary_spec, "run-1")

    names = canary_spec.names
    assert first == second == {
        "canary": "canary-run-1",
        "source_table": names.heartbeat_qualified,
        "topic": names.table_topic(names.heartbeat_qualified),
        "sink_table": f"{sink_schema}.{names.sink_table(names.heartbeat_qualified)}",
    }
    rows = _source_rows(source_admin, canary_spec)
    assert [row[0] for row in rows] == ["canary-run-1"]
    assert rows[0][1] >= beat_after_first


def test_arrival_is_false_without_a_sink_table_then_true_once_the_row_is_there(
    source_admin, sink_admin, canary_spec, source_admin_secret
):
    sink_table = sql.Identifier(*write_canary(source_admin, canary_spec, "run-2")["sink_table"].split("."))

    with connect_sink(canary_spec.sink) as sink:
        assert canary_arrived(sink, canary_spec, "run-2") is False
        sink_admin.execute(sql.SQL("CREATE TABLE {} (id text PRIMARY KEY, beat timestamptz)").format(sink_table))
        assert canary_arrived(sink, canary_spec, "run-2") is False
        sink_admin.execute(sql.SQL("INSERT INTO {} VALUES ('canary-run-2', now())").format(sink_table))
        assert canary_arrived(sink, canary_spec, "run-2") is True
        assert canary_arrived(sink, canary_spec, "run-3") is False


def test_arrival_check_leaves_a_connection_in_a_transaction_usable(sink_admin, canary_spec, local_stack):
    postgres = local_stack.postgres
    with psycopg.connect(
        host=postgres.host, port=postgres.port, dbname=postgres.sink_database,
        user=postgres.admin_user, password=postgres.admin_password,
    ) as sink:
        assert canary_arrived(sink, canary_spec, "run-4") is False
        assert sink.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("token", ["", "has space", "quote'", "x" * 65])
def test_a_malformed_token_is_refused_before_writing(source_admin, canary_spec, token):
    with pytest.raises(ValueError, match="canary token"):
        write_canary(source_admin, canary_spec, token)
    assert _source_rows(source_admin, canary_spec) == []
