"""The OpenSearch sink on the local stack: Debezium -> Kafka -> cdcflow's OpenSearch connector -> a real OpenSearch.

The source objects Debezium needs are made with plain SQL, as the earlier steps
of ProvisionPipeline would, and everything is removed afterwards (connectors,
topics, indices, slot, publication, role, tables).
"""

import json
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import psycopg
import pytest
import requests
from psycopg import sql

from cdcflow.local import stack as local_stack_module
from cdcflow.local.config import config_from_env
from lambdas.connect.client import ConnectClient
from lambdas.connect.credentials import DatabaseLogin
from lambdas.connect.deploy import delete_pipeline_connectors, put_connector
from lambdas.connect.sink_config import opensearch_sink_config, sink_topics
from lambdas.connect.source_config import debezium_source_config
from lambdas.errors import ConnectUnavailable
from lambdas.kafka_topics import delete_topics, ensure_topics
from lambdas.opensearch import (
    SinkUnavailable,
    delete_indices,
    document_with_id_exists,
    ensure_indices,
    existing_indices,
    pipeline_indices,
)
from lambdas.spec import PipelineSpec, parse_spec

pytestmark = pytest.mark.slow

# Generous bounds for a shared two-core machine; reaching one fails the test, nothing is timed.
ARRIVE_WITHIN_SECONDS = 180

COLUMNS = (
    "id bigint PRIMARY KEY, qty integer NOT NULL, small smallint, price numeric(14, 4), note text, "
    "doc jsonb, happened timestamptz, flag boolean, maybe text"
)
ROWS = [
    (1, 3, 7, Decimal("12.3400"), "plain", {"a": 1}, "2026-12-01 10:00:00.123456+00", True, None),
    (2, -2147483648, -32768, Decimal("-9999999999.9999"), 'quotes \' " and \\ back', {"nested": {"x": [1, 2, "ü"]}},
     "1999-12-31 23:59:59+05:30", False, "present"),
    (3, 2147483647, 32767, Decimal("0.0001"), "ünïcødé ✓ 日本語 🚀", [], "2026-01-01 00:00:00+00", None, None),
    (4, 0, None, None, None, None, None, None, "to be deleted"),
]


@dataclass(frozen=True)
class Pipeline:
    spec: PipelineSpec
    replication_login: DatabaseLogin
    heartbeat_query: str
    table: str
    lines_table: str  # a composite primary key (order_id, line)
    opensearch_url: str


@pytest.fixture(scope="module")
def opensearch_url(local_stack) -> Iterator[str]:
    """The local OpenSearch, started for these tests (and stopped again if they started it)."""
    config = config_from_env()
    started = local_stack_module.up(config, progress=print, extras=("opensearch",)).started
    yield f"http://127.0.0.1:{config.ports.opensearch}"
    if "opensearch" in started:
        local_stack_module.down(config, only=("opensearch",))


def admin(local_stack, database: str) -> psycopg.Connection:
    pg = local_stack.postgres
    return psycopg.connect(host=pg.host, port=pg.port, dbname=database, user=pg.admin_user,
                           password=pg.admin_password, autocommit=True)


def retried(step: Callable, *args: object) -> object:
    """Again, a few times, while Connect rebalances (as the `connect` Retry policy would)."""
    for pause in (1, 2, 4, 8):
        try:
            return step(*args)
        except ConnectUnavailable:
            time.sleep(pause)
    return step(*args)


@pytest.fixture
def pipeline(local_stack, opensearch_url) -> Iterator[Pipeline]:
    suffix = secrets.token_hex(4)
    table = f"public.os_types_{suffix}"
    lines_table = f"public.os_lines_{suffix}"
    spec = parse_spec({
        "pipeline_id": f"it_os_{suffix}",
        "owner": "integration-tests",
        "source": {"host": local_stack.postgres.host, "port": local_stack.postgres.port,
                   "database": local_stack.postgres.source_database, "admin_secret": "local-admin", "tables": [table, lines_table]},
        "kafka": {"bootstrap_servers": local_stack.kafka.bootstrap_servers},
        "connect": {"url": local_stack.connect.url},
        "sink": {"type": "opensearch", "url": opensearch_url},
        "debezium": {"heartbeat_interval_ms": 1000},
    })
    names = spec.names
    login = DatabaseLogin(names.replication_role, secrets.token_urlsafe(18))
    captured = sql.Identifier(*table.split("."))
    lines = sql.Identifier(*lines_table.split("."))
    heartbeat = sql.Identifier(names.heartbeat_schema, names.heartbeat_table)
    role = sql.Identifier(login.username)
    heartbeat_query = (
        f"INSERT INTO {names.heartbeat_qualified} (id, beat) VALUES ('beat', now()) "
        "ON CONFLICT (id) DO UPDATE SET beat = excluded.beat"
    )

    def on_source(*statements: sql.Composable) -> Callable[[], None]:
        def run() -> None:
            with admin(local_stack, spec.source.database) as conn:
                for statement in statements:
                    conn.execute(statement)
        return run

    with ExitStack() as cleanup, admin(local_stack, spec.source.database) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(captured, sql.SQL(COLUMNS)))
        cleanup.callback(on_source(sql.SQL("DROP TABLE IF EXISTS {}").format(captured)))
        conn.execute(sql.SQL("CREATE TABLE {} (order_id integer, line integer, qty integer NOT NULL, "
                             "PRIMARY KEY (order_id, line))").format(lines))
        cleanup.callback(on_source(sql.SQL("DROP TABLE IF EXISTS {}").format(lines)))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(names.heartbeat_schema)))
        conn.execute(sql.SQL("CREATE TABLE {} (id text PRIMARY KEY, beat timestamptz NOT NULL DEFAULT now())")
                     .format(heartbeat))
        cleanup.callback(on_source(sql.SQL("DROP TABLE IF EXISTS {}").format(heartbeat)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN REPLICATION PASSWORD {}").format(role, sql.Literal(login.password)))
        cleanup.callback(on_source(sql.SQL("DROP OWNED BY {}").format(role), sql.SQL("DROP ROLE IF EXISTS {}").format(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public, {} TO {}").format(sql.Identifier(names.heartbeat_schema), role))
        conn.execute(sql.SQL("GRANT SELECT ON {}, {} TO {}").format(captured, lines, role))
        conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON {} TO {}").format(heartbeat, role))
        conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}, {}, {}").format(
            sql.Identifier(names.publication), captured, lines, heartbeat))
        cleanup.callback(on_source(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(names.publication))))
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (names.replication_slot,))
        cleanup.callback(drop_slot, local_stack, spec)
        cleanup.callback(delete_indices, opensearch_url, sink_topics(spec))
        cleanup.callback(delete_topics, spec)
        cleanup.callback(delete_connectors, spec)
        yield Pipeline(spec, login, heartbeat_query, table, lines_table, opensearch_url)


def delete_connectors(spec: PipelineSpec) -> None:
    with ConnectClient(spec.connect.url) as client:
        retried(delete_pipeline_connectors, client, spec)


def drop_slot(local_stack, spec: PipelineSpec) -> None:
    with admin(local_stack, spec.source.database) as conn:
        for _ in range(50):
            conn.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                         "WHERE slot_name = %s AND active", (spec.names.replication_slot,))
            try:
                conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                             (spec.names.replication_slot,))
                return
            except psycopg.errors.ObjectInUse:
                time.sleep(0.2)


def wait_for(description: str, probe: Callable[[], object], within: float = ARRIVE_WITHIN_SECONDS) -> object:
    deadline = time.monotonic() + within
    while not (result := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {description}")
        time.sleep(1)
    return result


def connector_running(connect_url: str, name: str) -> bool:
    response = requests.get(f"{connect_url}/connectors/{name}/status", timeout=10)
    if response.status_code != 200:
        return False
    status = response.json()
    tasks = status.get("tasks", [])
    failed = [task for task in tasks if task["state"] == "FAILED"]
    assert not failed, f"{name} task failed: {failed[0].get('trace', '')[:800]}"
    return status["connector"]["state"] == "RUNNING" and bool(tasks) and all(t["state"] == "RUNNING" for t in tasks)


def start_pipeline(pipeline: Pipeline) -> None:
    spec, names = pipeline.spec, pipeline.spec.names
    ensure_topics(spec)
    with ConnectClient(spec.connect.url) as client:
        retried(put_connector, client, names.source_connector,
                debezium_source_config(spec, pipeline.replication_login, pipeline.heartbeat_query))
        wait_for("the source connector RUNNING", lambda: connector_running(spec.connect.url, names.source_connector))
        # As PutSinkConnector does: the indices first, then the connector.
        ensure_indices(pipeline.opensearch_url, pipeline_indices(spec))
        retried(put_connector, client, names.sink_connector, opensearch_sink_config(spec, None))
        wait_for("the sink connector RUNNING", lambda: connector_running(spec.connect.url, names.sink_connector))


def documents(url: str, index: str) -> dict[str, dict] | None:
    """Every document of `index` by id, `_source` parsed with exact decimals; None while the index is missing."""
    if requests.post(f"{url}/{index}/_refresh", timeout=10).status_code == 404:
        return None
    response = requests.get(f"{url}/{index}/_search", params={"size": 1000}, timeout=10)
    hits = json.loads(response.text, parse_float=Decimal)["hits"]["hits"]
    return {hit["_id"]: hit["_source"] for hit in hits}


def source_rows(local_stack, pipeline: Pipeline) -> dict[str, tuple]:
    with admin(local_stack, pipeline.spec.source.database) as conn:
        rows = conn.execute(sql.SQL("SELECT * FROM {} ORDER BY id").format(sql.Identifier(*pipeline.table.split(".")))).fetchall()
    return {str(row[0]): row for row in rows}


def as_row(document: dict) -> tuple:
    """A document read back as the source row's Python values, column by column."""
    happened = document["happened"]
    return (
        document["id"], document["qty"], document["small"],
        None if document["price"] is None else Decimal(document["price"]),
        document["note"],
        None if document["doc"] is None else json.loads(document["doc"]),
        None if happened is None else datetime.fromisoformat(happened),
        document["flag"], document["maybe"],
    )


def index_equals_table(local_stack, pipeline: Pipeline) -> bool:
    index = pipeline.spec.names.table_topic(pipeline.table)
    found = documents(pipeline.opensearch_url, index)
    if found is None:
        return False
    expected = source_rows(local_stack, pipeline)
    return set(found) == set(expected) and all(as_row(found[key]) == expected[key] for key in expected)


def write_rows(local_stack, pipeline: Pipeline) -> None:
    captured = sql.Identifier(*pipeline.table.split("."))
    with admin(local_stack, pipeline.spec.source.database) as conn:
        for row in ROWS:
            conn.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)").format(captured),
                         (*row[:5], None if row[5] is None else psycopg.types.json.Jsonb(row[5]), *row[6:]))


def test_the_index_holds_exactly_the_source_rows_after_inserts_updates_and_deletes(local_stack, pipeline):
    captured = sql.Identifier(*pipeline.table.split("."))
    with admin(local_stack, pipeline.spec.source.database) as conn:
        conn.execute(sql.SQL("INSERT INTO {} (id, qty, note) VALUES (100, 1, 'snapshotted before the connector')")
                     .format(captured))
    start_pipeline(pipeline)
    write_rows(local_stack, pipeline)
    with admin(local_stack, pipeline.spec.source.database) as conn:
        conn.execute(sql.SQL("UPDATE {} SET note = %s, price = %s, doc = %s, flag = NULL WHERE id = 1").format(captured),
                     ("updated \"twice\" – ñ", Decimal("99999.0001"), psycopg.types.json.Jsonb({"b": [True, None]})))
        conn.execute(sql.SQL("UPDATE {} SET maybe = NULL WHERE id = 2").format(captured))
        conn.execute(sql.SQL("DELETE FROM {} WHERE id IN (4, 100)").format(captured))

    wait_for("the index to equal the table", lambda: index_equals_table(local_stack, pipeline))

    index = pipeline.spec.names.table_topic(pipeline.table)
    found = documents(pipeline.opensearch_url, index)
    assert sorted(found) == ["1", "2", "3"]  # the deleted rows are gone, the document id is the primary key
    assert found["1"]["note"] == "updated \"twice\" – ñ" and found["1"]["flag"] is None
    assert found["3"]["note"] == "ünïcødé ✓ 日本語 🚀"
    assert found["2"]["price"] == Decimal("-9999999999.9999")  # every digit of numeric(14, 4)
    # The canary lookup finds heartbeat rows by their primary key.
    heartbeat_index = pipeline.spec.names.table_topic(pipeline.spec.names.heartbeat_qualified)
    assert wait_for("the heartbeat row", lambda: document_with_id_exists(pipeline.opensearch_url, heartbeat_index, "beat"))
    assert document_with_id_exists(pipeline.opensearch_url, heartbeat_index, "canary-none") is False


def test_a_composite_primary_key_is_one_document_per_key(local_stack, pipeline):
    lines = sql.Identifier(*pipeline.lines_table.split("."))
    start_pipeline(pipeline)
    with admin(local_stack, pipeline.spec.source.database) as conn:
        conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 1, 10), (1, 2, 20), (2, 1, 30)").format(lines))
        conn.execute(sql.SQL("UPDATE {} SET qty = 21 WHERE order_id = 1 AND line = 2").format(lines))
        conn.execute(sql.SQL("DELETE FROM {} WHERE order_id = 2 AND line = 1").format(lines))
    index = pipeline.spec.names.table_topic(pipeline.lines_table)
    expected = {
        '{"order_id":1,"line":1}': {"order_id": 1, "line": 1, "qty": 10},
        '{"order_id":1,"line":2}': {"order_id": 1, "line": 2, "qty": 21},
    }
    # The key's JSON text, columns in key order, is the document id.
    assert wait_for("the composite-key documents", lambda: documents(pipeline.opensearch_url, index) == expected)


def test_changes_made_while_opensearch_is_down_arrive_once_it_is_back(local_stack, pipeline):
    start_pipeline(pipeline)
    write_rows(local_stack, pipeline)
    wait_for("the first rows", lambda: index_equals_table(local_stack, pipeline))
    indices = sink_topics(pipeline.spec)
    assert existing_indices(pipeline.opensearch_url, indices) == set(indices)

    config = config_from_env()
    local_stack_module.down(config, only=("opensearch",))
    try:
        # What reconciliation sees meanwhile: the sink does not answer, named by its URL.
        with pytest.raises(SinkUnavailable, match=f"OpenSearch at {pipeline.opensearch_url} did not answer"):
            existing_indices(pipeline.opensearch_url, indices)
        captured = sql.Identifier(*pipeline.table.split("."))
        with admin(local_stack, pipeline.spec.source.database) as conn:
            conn.execute(sql.SQL("INSERT INTO {} (id, qty, note) VALUES (50, 5, 'written while the sink was down')")
                         .format(captured))
            conn.execute(sql.SQL("UPDATE {} SET qty = 42 WHERE id = 1").format(captured))
            conn.execute(sql.SQL("DELETE FROM {} WHERE id = 2").format(captured))
        time.sleep(8)  # the connector meets the outage and retries
        # The task retries instead of failing.
        assert connector_running(pipeline.spec.connect.url, pipeline.spec.names.sink_connector)
    finally:
        local_stack_module.up(config, extras=("opensearch",))

    wait_for("the changes made during the outage", lambda: index_equals_table(local_stack, pipeline))
    found = documents(pipeline.opensearch_url, pipeline.spec.names.table_topic(pipeline.table))
    assert sorted(found) == ["1", "3", "4", "50"] and found["1"]["qty"] == 42
