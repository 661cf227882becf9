"""The SQL and names the source steps derive from a spec, and the wal_level check's message."""

from types import SimpleNamespace

import pytest

from lambdas.source.canary import canary_row_id, sink_table_name
from lambdas.source.heartbeat import heartbeat_action_query
from lambdas.source.logical_replication import LogicalReplicationDisabled, check_wal_level
from lambdas.source.publication import expected_tables
from lambdas.source.tables import schemas_of, split_table
from tests.unit.factories import pipeline_spec

SPEC = pipeline_spec(
    tables=("public.orders", "sales.lines", "public.customers"),
    sink={"type": "jdbc", "host": "dw", "port": 5432, "database": "dw", "secret": "dw/writer", "schema": "raw"},
)


class _Settings:
    """A stand-in connection that answers `SHOW` with one value."""

    def __init__(self, value):
        self.info = SimpleNamespace(host="db", port=5432)
        self._value = value

    def execute(self, query):
        assert query == "SHOW wal_level"
        return SimpleNamespace(fetchone=lambda: (self._value,))


def test_heartbeat_action_query_upserts_the_heartbeat_row_of_the_pipelines_table():
    assert heartbeat_action_query(SPEC) == (
        'INSERT INTO "cdcflow"."heartbeat_orders" (id, beat) VALUES (\'heartbeat\', now()) '
        "ON CONFLICT (id) DO UPDATE SET beat = EXCLUDED.beat"
    )


def test_the_publication_holds_the_captured_tables_and_the_heartbeat_and_signal_tables():
    assert expected_tables(SPEC) == ["cdcflow.heartbeat_orders", "cdcflow.signal_orders", "public.customers",
                                     "public.orders", "sales.lines"]


def test_tables_split_into_schema_and_name():
    assert split_table("sales.lines") == ("sales", "lines")
    assert schemas_of(SPEC.source.tables) == ["public", "sales"]


def test_the_canary_lands_in_the_sink_table_of_the_heartbeat_table():
    assert canary_row_id("exec-42") == "canary-exec-42"
    assert sink_table_name(SPEC) == "raw.cdcflow_heartbeat_orders"


@pytest.mark.parametrize("token", ["", "a b", "a;b", "é", "x" * 65])
def test_canary_tokens_are_short_and_plain(token):
    with pytest.raises(ValueError, match="canary token"):
        canary_row_id(token)


def test_logical_wal_level_passes():
    assert check_wal_level(_Settings("logical")) == "logical"


def test_replica_wal_level_says_what_to_change():
    with pytest.raises(LogicalReplicationDisabled) as raised:
        check_wal_level(_Settings("replica"))
    assert str(raised.value) == (
        "wal_level is 'replica' on db:5432; set wal_level=logical and restart PostgreSQL"
    )
