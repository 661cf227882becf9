"""Source and sink connectors against the local PostgreSQL, Kafka and Kafka Connect.

The source-side objects Debezium needs (replication role, heartbeat table,
publication, slot) are created here with plain SQL, as the earlier steps of
ProvisionPipeline would, and removed afterwards with everything else.
"""

import secrets
import time
from contextlib import ExitStack
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import psycopg
import pytest
from kafka import KafkaConsumer
from psycopg import sql

from cdcflow.local.config import SINK_ADMIN_SECRET
from cdcflow.local.tls import write_foreign_ca
from lambdas.connect.client import ConnectClient
from lambdas.connect.credentials import DatabaseLogin
from lambdas.connect.deploy import check_connector, delete_connector, delete_pipeline_connectors, put_connector
from lambdas.connect.errors import ConnectorConfigInvalid, ConnectorFailed
from lambdas.connect.secret_refs import SecretLogin
from lambdas.connect.sink_config import JDBC_SINK_CONNECTOR, jdbc_sink_config
from lambdas.connect.source_config import POSTGRES_CONNECTOR, debezium_source_config
from lambdas.errors import ConnectUnavailable
from lambdas.kafka_topics import delete_topics, ensure_topics
from lambdas.spec import PipelineSpec, parse_spec
from statemachines.provision_pipeline import CONNECTOR_RUNNING

pytestmark = pytest.mark.slow

T = TypeVar("T")

# Generous bounds for a shared two-core machine; reaching one fails the test, nothing is timed.
ROWS_ARRIVE_WITHIN_SECONDS = 180
CHECK_PAUSE_SECONDS = 1.0


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    admin: DatabaseLogin

    def connect(self, database: str) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            dbname=database,
            user=self.admin.username,
            password=self.admin.password,
            autocommit=True,
        )


@dataclass(frozen=True)
class SourceObjects:
    spec: PipelineSpec
    replication_login: DatabaseLogin
    heartbeat_query: str
    table: str  # schema.table


def make_spec(stack, pipeline_id: str, table: str, sink_schema: str) -> PipelineSpec:
    return parse_spec(
        {
            "pipeline_id": pipeline_id,
            "owner": "integration-tests",
            "source": {
                "host": stack.postgres.host,
                "port": stack.postgres.port,
                "database": stack.postgres.source_database,
                "admin_secret": "local-admin",
                "tables": [table],
            },
            "kafka": {"bootstrap_servers": stack.kafka.bootstrap_servers},
            "connect": {"url": stack.connect.url},
            "sink": {
                "type": "jdbc",
                "host": stack.postgres.host,
                "port": stack.postgres.port,
                "database": stack.postgres.sink_database,
                "secret": "local-admin",
                "schema": sink_schema,
            },
            "debezium": {"heartbeat_interval_ms": 1000},
        }
    )


@pytest.fixture
def postgres(local_stack) -> Postgres:
    pg = local_stack.postgres
    return Postgres(pg.host, pg.port, DatabaseLogin(pg.admin_user, pg.admin_password))


@pytest.fixture
def connect(local_stack) -> Iterator[ConnectClient]:
    with ConnectClient(local_stack.connect.url) as client:
        yield client


@pytest.fixture
def source(local_stack, postgres) -> Iterator[SourceObjects]:
    """A captured table with a row, the heartbeat table, a replication role, publication and slot.

    Each object's removal is registered as soon as it exists, and every removal
    runs even when an earlier one fails, so a broken test leaks nothing. The
    connectors and topics the test creates are removed first.
    """
    suffix = secrets.token_hex(4)
    spec = make_spec(local_stack, f"it_cdc_{suffix}", f"public.orders_{suffix}", f"it_sink_{suffix}")
    names = spec.names
    login = DatabaseLogin(names.replication_role, secrets.token_urlsafe(18))
    schema, table = spec.source.tables[0].split(".")
    captured = sql.Identifier(schema, table)
    heartbeat_schema = sql.Identifier(names.heartbeat_schema)
    heartbeat = sql.Identifier(names.heartbeat_schema, names.heartbeat_table)
    role = sql.Identifier(login.username)
    heartbeat_query = (
        f"INSERT INTO {names.heartbeat_qualified} (id, beat_at) VALUES (1, now()) "
        "ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at"
    )

    def on_source(*statements: sql.Composable) -> Callable[[], None]:
        def run() -> None:
            with postgres.connect(spec.source.database) as conn:
                for statement in statements:
                    conn.execute(statement)
        return run

    with ExitStack() as cleanup, postgres.connect(spec.source.database) as conn:
        with postgres.connect(spec.sink.database) as sink:
            sink.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(spec.sink.schema)))
        cleanup.callback(drop_sink_schema, postgres, spec)

        conn.execute(sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, item text NOT NULL, price numeric(10, 2))").format(captured))
        cleanup.callback(on_source(sql.SQL("DROP TABLE IF EXISTS {}").format(captured)))
        conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 'before the connector', 9.99)").format(captured))

        if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (names.heartbeat_schema,)).fetchone():
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(heartbeat_schema))
            cleanup.callback(drop_schema_if_empty, postgres, spec.source.database, names.heartbeat_schema)
        conn.execute(sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, beat_at timestamptz NOT NULL)").format(heartbeat))
        cleanup.callback(on_source(sql.SQL("DROP TABLE IF EXISTS {}").format(heartbeat)))

        conn.execute(sql.SQL("CREATE ROLE {} LOGIN REPLICATION PASSWORD {}").format(role, sql.Literal(login.password)))
        cleanup.callback(on_source(
            sql.SQL("DROP OWNED BY {}").format(role), sql.SQL("DROP ROLE IF EXISTS {}").format(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {}, {} TO {}").format(sql.Identifier(schema), heartbeat_schema, role))
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(captured, role))
        conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON {} TO {}").format(heartbeat, role))

        conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}, {}").format(
            sql.Identifier(names.publication), captured, heartbeat))
        cleanup.callback(on_source(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(names.publication))))
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (names.replication_slot,))
        cleanup.callback(drop_slot, postgres, spec.source.database, names.replication_slot)

        cleanup.callback(delete_topics, spec)
        cleanup.callback(delete_connectors, spec)
        yield SourceObjects(spec, login, heartbeat_query, spec.source.tables[0])


def delete_connectors(spec: PipelineSpec) -> None:
    with ConnectClient(spec.connect.url) as client:
        retried(delete_pipeline_connectors, client, spec)


def drop_sink_schema(postgres: Postgres, spec: PipelineSpec) -> None:
    with postgres.connect(spec.sink.database) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(spec.sink.schema)))


def drop_schema_if_empty(postgres: Postgres, database: str, schema: str) -> None:
    """Drop a schema this test created, unless another test's table has moved in meanwhile."""
    with postgres.connect(database) as conn:
        try:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} RESTRICT").format(sql.Identifier(schema)))
        except psycopg.errors.DependentObjectsStillExist:
            pass


def drop_slot(postgres: Postgres, database: str, slot: str) -> None:
    """Drop a replication slot, ending the walsender that still holds it (safe when absent)."""
    with postgres.connect(database) as conn:
        for _ in range(50):  # a terminated walsender releases the slot a moment later
            conn.execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = %s AND active",
                (slot,),
            )
            try:
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (slot,)
                )
                return
            except psycopg.errors.ObjectInUse:
                time.sleep(0.2)
    raise AssertionError(f"replication slot {slot} stayed in use")


def retried(step: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Call `step` as the `connect` Retry policy would: again, a few times, while Connect is unavailable.

    Other pipelines' connectors come and go on the shared cluster, and each
    change makes Connect rebalance and answer 409 or 500 for a moment.
    """
    for pause in (1, 2, 4, 8):
        try:
            return step(*args, **kwargs)
        except ConnectUnavailable:
            time.sleep(pause)
    return step(*args, **kwargs)


def wait_until_running(client: ConnectClient, name: str) -> dict:
    """Run the wait-loop's check as the state machine would, with short pauses instead of its waits."""
    attempt = 0
    while True:
        result = retried(check_connector, client, name, attempt, CONNECTOR_RUNNING)
        if result["ready"]:
            return result
        attempt = result["attempt"]
        time.sleep(CHECK_PAUSE_SECONDS)


def wait_for(description: str, probe: Callable[[], object]) -> object:
    deadline = time.monotonic() + ROWS_ARRIVE_WITHIN_SECONDS
    while not (result := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {description}")
        time.sleep(1)
    return result


def topic_has_records(bootstrap_servers: str, topic: str) -> bool:
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest", consumer_timeout_ms=2000
    )
    try:
        return next(iter(consumer), None) is not None
    finally:
        consumer.close()


def sink_rows(postgres: Postgres, spec: PipelineSpec, table: str) -> list[tuple] | None:
    """Rows of the sink table for captured `table`, or None while the sink has not created it."""
    sink_table = spec.names.sink_table(table)
    with postgres.connect(spec.sink.database) as conn:
        exists = conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (spec.sink.schema, sink_table),
        ).fetchone()
        if not exists:
            return None
        return conn.execute(
            sql.SQL("SELECT * FROM {} ORDER BY 1").format(sql.Identifier(spec.sink.schema, sink_table))
        ).fetchall()


def test_installed_plugins_define_every_property_we_set(connect, source):
    spec = source.spec
    configs = {
        POSTGRES_CONNECTOR: debezium_source_config(spec, source.replication_login, source.heartbeat_query),
        JDBC_SINK_CONNECTOR: jdbc_sink_config(spec, source.replication_login),
    }
    installed = {plugin["class"] for plugin in connect.plugins()}
    for connector_class, config in configs.items():
        assert connector_class in installed
        validation = connect.validate(connector_class, config)
        defined = {entry["definition"]["name"] for entry in validation["configs"]}
        # Converter settings belong to the converter, a post processor's to that processor, and
        # `topic.heartbeat.prefix` to Debezium's topic naming strategy, not to the connector's ConfigDef;
        # the flow and value-fidelity tests see each of them at work.
        post_processors = [name for name in config.get("post.processors", "").split(",") if name]
        delegated = ("key.converter.", "value.converter.", *(f"{name}." for name in post_processors))
        ours = {key for key in config if not key.startswith(delegated) and key != "topic.heartbeat.prefix"}
        for name in post_processors:
            assert f"{name}.type" in config, f"post processor {name} names no class"
        assert ours <= defined, f"{connector_class} does not define {sorted(ours - defined)}"


def test_changes_flow_from_the_source_table_to_the_named_sink_table(connect, postgres, source):
    spec, names = source.spec, source.spec.names
    ensure_topics(spec)
    source_config = debezium_source_config(spec, source.replication_login, source.heartbeat_query)

    assert retried(put_connector, connect, names.source_connector, source_config)["created"] is True
    assert retried(put_connector, connect, names.source_connector, source_config) == {
        "connector": names.source_connector, "changed": False, "created": False}
    assert wait_until_running(connect, names.source_connector)["state"] == "RUNNING"
    # Debezium's heartbeats land in the topic the pipeline created for them.
    assert wait_for("a heartbeat record", lambda: topic_has_records(spec.kafka.bootstrap_servers, names.heartbeat_topic))

    # The worker reads the sink login from the stack's secret: the config holds a reference only.
    sink_config = jdbc_sink_config(spec, SecretLogin(postgres.admin.username, SINK_ADMIN_SECRET))
    assert retried(put_connector, connect, names.sink_connector, sink_config)["changed"] is True
    assert wait_until_running(connect, names.sink_connector)["attempt"] <= CONNECTOR_RUNNING.attempts

    captured = sql.Identifier(*source.table.split("."))
    with postgres.connect(spec.source.database) as conn:
        conn.execute(sql.SQL("INSERT INTO {} VALUES (2, 'streamed', 12.50), (3, 'to be deleted', 1)").format(captured))
        conn.execute(sql.SQL("UPDATE {} SET item = 'updated' WHERE id = 1").format(captured))
        conn.execute(sql.SQL("DELETE FROM {} WHERE id = 3").format(captured))

    expected = [(1, "updated"), (2, "streamed")]

    def rows_once_expected():
        rows = sink_rows(postgres, spec, source.table) or []
        return rows if [(row[0], row[1]) for row in rows] == expected else None

    rows = wait_for(f"{expected} in the sink table", rows_once_expected)
    assert [str(row[2]) for row in rows] == ["9.99", "12.50"]  # numeric(10, 2) arrives exact
    # The heartbeat table's rows travel too, into <sink schema>.cdcflow_heartbeat_<id>.
    assert wait_for("heartbeat rows in the sink", lambda: sink_rows(postgres, spec, names.heartbeat_qualified))

    assert delete_connector(connect, names.sink_connector) is True
    assert delete_connector(connect, names.source_connector) is True
    assert delete_connector(connect, names.source_connector) is False
    assert names.source_connector not in connect.list_connectors()


def test_a_task_that_cannot_stream_is_reported_as_failed_with_its_cause(connect, postgres, source):
    spec, names = source.spec, source.spec.names
    with postgres.connect(spec.source.database) as conn:
        conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(names.publication)))
    ensure_topics(spec)
    config = debezium_source_config(spec, source.replication_login, source.heartbeat_query)
    retried(put_connector, connect, names.source_connector, config)

    # The task may report RUNNING for a moment before streaming starts and fails,
    # so keep checking (as the state machine's canary wait would) until it does.
    with pytest.raises(ConnectorFailed) as caught:
        for _ in range(ROWS_ARRIVE_WITHIN_SECONDS):
            retried(check_connector, connect, names.source_connector, attempt=0, schedule=CONNECTOR_RUNNING)
            time.sleep(1)

    message = str(caught.value)
    assert message.startswith(f"connector {names.source_connector} failed: task 0: ")
    assert "caused by: org.apache.kafka.connect.errors.ConnectException: Publication autocreation is disabled" in message
    assert "\tat " not in message and len(message) < 600
    assert source.replication_login.password not in message


def test_a_wrong_password_is_rejected_at_put_without_echoing_it(connect, source):
    spec, names = source.spec, source.spec.names
    wrong = DatabaseLogin(source.replication_login.username, "Wrong-" + secrets.token_urlsafe(12))
    config = debezium_source_config(spec, wrong, source.heartbeat_query)

    # Debezium connects to the database while Connect validates the config, so nothing is created.
    with pytest.raises(ConnectorConfigInvalid) as caught:
        retried(put_connector, connect, names.source_connector, config)

    assert "password authentication failed" in str(caught.value)
    assert wrong.password not in str(caught.value)
    assert names.source_connector not in connect.list_connectors()


def test_debezium_refuses_a_server_certificate_from_another_ca_at_put(connect, source, monkeypatch, tmp_path):
    spec, names = source.spec, source.spec.names
    monkeypatch.setenv("CDCFLOW_CONNECT_DATABASE_CA_FILE", str(write_foreign_ca(tmp_path / "other-ca.crt")))
    config = debezium_source_config(spec, source.replication_login, source.heartbeat_query)
    assert config["database.sslmode"] == "verify-full"

    # Validation connects with the connector's TLS settings, so the refusal comes before anything is created.
    with pytest.raises(ConnectorConfigInvalid) as caught:
        retried(put_connector, connect, names.source_connector, config)

    assert "certification path" in str(caught.value) or "PKIX" in str(caught.value)
    assert source.replication_login.password not in str(caught.value)
    assert names.source_connector not in connect.list_connectors()


def test_a_reference_to_a_missing_secret_is_refused_at_put_naming_it(connect, source):
    spec, names = source.spec, source.spec.names
    missing = f"cdcflow/tests/no-such-secret-{secrets.token_hex(4)}"
    config = debezium_source_config(spec, SecretLogin(source.replication_login.username, missing),
                                    source.heartbeat_query)

    with pytest.raises(ConnectorConfigInvalid) as caught:
        retried(put_connector, connect, names.source_connector, config)

    # Permanent: the worker's provider says no retry can mend it, so the state machine does not retry.
    assert f"secret {missing} does not exist in Secrets Manager" in str(caught.value)
    assert names.source_connector not in connect.list_connectors()
