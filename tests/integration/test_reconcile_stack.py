"""Reconciliation against the real local stack: PostgreSQL, Kafka, Kafka Connect with Debezium, DynamoDB Local, moto.

One pipeline is provisioned for the module, its source side with plain SQL
(as the source steps would), its secret, topics and connectors with the
project's own functions, and registered ACTIVE in a registry table of its
own. Each test breaks it the way production does, sweeps, and checks the
repair; each leaves it healthy again. Repairs are limited to this module's
pipeline ids, since other suites keep cdcflow resources on the same stack.
"""

from __future__ import annotations

import secrets as token_source
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import boto3
import psycopg
import pytest
from kafka.admin import NewTopic
from psycopg import sql

from cdcflow.local import tables as local_tables
from cdcflow.local.config import aws_environment
from lambdas import aws, registry
from lambdas.connect.client import ConnectClient
from lambdas.connect.credentials import DatabaseLogin
from lambdas.connect.deploy import connector_readiness, delete_pipeline_connectors, put_connector
from lambdas.connect.sink_config import jdbc_sink_config
from lambdas.connect.source_config import debezium_source_config
from lambdas.kafka_topics import delete_topics, ensure_topics, kafka_admin, list_topics_with_prefix
from lambdas.reconcile import reconcile
from lambdas.reconcile.policy import ReconcileSettings
from lambdas.reconcile.report import PipelineReport, ReconcileReport
from lambdas.registry import PipelineStatus
from lambdas.secrets import delete_secret, ensure_generated_secret, managed_tags, read_credentials
from lambdas.source.signals import ensure_signal_table
from lambdas.spec import PipelineSpec, parse_spec

pytestmark = pytest.mark.slow

# Generous bounds for a shared two-core machine; reaching one fails the test, nothing is timed.
SETTLE_SECONDS = 180
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Pipeline:
    spec: PipelineSpec
    admin: DatabaseLogin
    host: str
    port: int

    @property
    def table(self) -> str:
        return self.spec.source.tables[0]

    def connect(self, database: str | None = None) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host, port=self.port, dbname=database or self.spec.source.database,
            user=self.admin.username, password=self.admin.password, autocommit=True,
        )


def wait_for(description: str, probe: Callable[[], object]) -> object:
    deadline = time.monotonic() + SETTLE_SECONDS
    while not (result := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {description}")
        time.sleep(POLL_SECONDS)
    return result


def connector_state(spec: PipelineSpec, name: str) -> str:
    with ConnectClient(spec.connect.url) as client:
        return connector_readiness(client, name).state


def task_states(spec: PipelineSpec, name: str) -> list[str]:
    with ConnectClient(spec.connect.url) as client:
        return [task["state"] for task in client.get_status(name)["tasks"]]


def pipeline_report(report: ReconcileReport, pipeline_id: str) -> PipelineReport:
    return next(p for p in report.pipelines if p.pipeline_id == pipeline_id)


def sweep(pipeline: Pipeline, **kwargs) -> tuple[ReconcileReport, PipelineReport]:
    report = reconcile(repair_only={pipeline.spec.pipeline_id}, **kwargs)
    return report, pipeline_report(report, pipeline.spec.pipeline_id)


@pytest.fixture(scope="module")
def stack_environment(local_stack) -> Iterator[None]:
    """boto3 pointed at DynamoDB Local and moto, with a registry table for this module only."""
    table = f"cdcflow-registry-it-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**aws_environment(local_stack), "REGISTRY_TABLE": table}.items():
            patch.setenv(name, value)
        aws.reset_clients()
        dynamodb = boto3.client("dynamodb")
        local_tables.ensure_tables(dynamodb, table, f"{table}-idempotency")
        try:
            yield
        finally:
            for name in (table, f"{table}-idempotency"):
                dynamodb.delete_table(TableName=name)
            aws.reset_clients()


@pytest.fixture(scope="module")
def pipeline(local_stack, stack_environment) -> Iterator[Pipeline]:
    """An ACTIVE pipeline: captured table, heartbeat table, role, publication, slot, secret, topics, connectors."""
    suffix = token_source.token_hex(4)
    pipeline_id = f"it_rc_{suffix}"
    pg = local_stack.postgres
    sink_schema = f"it_rc_sink_{suffix}"
    spec = parse_spec({
        "pipeline_id": pipeline_id,
        "owner": "integration-tests",
        "source": {"host": pg.host, "port": pg.port, "database": pg.source_database,
                   "admin_secret": local_stack.aws.source_admin_secret, "tables": [f"public.rc_orders_{suffix}"]},
        "kafka": {"bootstrap_servers": local_stack.kafka.bootstrap_servers},
        "connect": {"url": local_stack.connect.url},
        "sink": {"type": "jdbc", "host": pg.host, "port": pg.port, "database": pg.sink_database,
                 "secret": local_stack.aws.sink_admin_secret, "schema": sink_schema},
        "debezium": {"heartbeat_interval_ms": 1000},
    })
    names = spec.names
    admin = read_credentials(local_stack.aws.source_admin_secret)
    created = Pipeline(spec, DatabaseLogin(admin.username, admin.password), pg.host, pg.port)
    _, replication = ensure_generated_secret(names.replication_secret, names.replication_role,
                                             managed_tags(pipeline_id, spec.owner))
    captured = sql.Identifier(*created.table.split("."))
    heartbeat = sql.Identifier(names.heartbeat_schema, names.heartbeat_table)
    role = sql.Identifier(names.replication_role)
    heartbeat_query = (
        f"INSERT INTO {names.heartbeat_qualified} (id, beat_at) VALUES (1, now()) "
        "ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at"
    )
    with created.connect() as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, item text NOT NULL)").format(captured))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(names.heartbeat_schema)))
        conn.execute(sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, beat_at timestamptz NOT NULL)").format(heartbeat))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN REPLICATION PASSWORD {}").format(role, sql.Literal(replication.password)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public, {} TO {}").format(sql.Identifier(names.heartbeat_schema), role))
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(captured, role))
        conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON {} TO {}").format(heartbeat, role))
        ensure_signal_table(conn, spec)  # Debezium's signal table: the publication includes it
        signal = sql.Identifier(names.heartbeat_schema, names.signal_table)
        conn.execute(sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(signal, role))
        conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}, {}, {}").format(
            sql.Identifier(names.publication), captured, heartbeat, signal))
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (names.replication_slot,))
    with created.connect(pg.sink_database) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(sink_schema)))
    try:
        ensure_topics(spec)
        sink_admin = read_credentials(local_stack.aws.sink_admin_secret)
        with ConnectClient(spec.connect.url) as client:
            login = DatabaseLogin(replication.username, replication.password)
            put_connector(client, names.source_connector, debezium_source_config(spec, login, heartbeat_query))
            put_connector(client, names.sink_connector,
                          jdbc_sink_config(spec, DatabaseLogin(sink_admin.username, sink_admin.password)))
        for connector in (names.source_connector, names.sink_connector):
            wait_for(f"{connector} RUNNING", lambda c=connector: connector_state(spec, c) == "RUNNING")
        registry.register(spec, f"arn:aws:states:us-east-1:000000000000:execution:provision:{pipeline_id}")
        registry.mark(pipeline_id, PipelineStatus.ACTIVE)
        yield created
    finally:
        with ConnectClient(spec.connect.url) as client:
            delete_pipeline_connectors(client, spec)
        delete_topics(spec)
        with created.connect() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = %s AND active",
                (names.replication_slot,),
            )
            wait_for("the slot to be released", lambda: not conn.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s AND active", (names.replication_slot,)
            ).fetchone())
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                         (names.replication_slot,))
            conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(names.publication)))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}, {}").format(
                captured, heartbeat, sql.Identifier(names.heartbeat_schema, names.signal_table)))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))
        with created.connect(pg.sink_database) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(sink_schema)))
        delete_secret(names.replication_secret)
        registry.delete(pipeline_id)


def confirmed_flush_lsn(pipeline: Pipeline) -> str | None:
    with pipeline.connect() as conn:
        row = conn.execute("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                           (pipeline.spec.names.replication_slot,)).fetchone()
    return row[0] if row else None


def wait_until_still(read: Callable[[], object], for_seconds: float, within: float = 60.0) -> None:
    """Return once read() has given the same value for for_seconds; fail after within seconds."""
    deadline = time.monotonic() + within
    value, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = read()
        if now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= for_seconds:
            return
    raise AssertionError(f"value kept changing for {within:.0f} s (last {value!r})")


def healthy(pipeline: Pipeline) -> PipelineReport:
    """Sweep until the pipeline is ACTIVE with both connectors RUNNING (a test's starting and end point)."""
    def active() -> PipelineReport | None:
        _, report = sweep(pipeline)
        running = report.source_connector == report.sink_connector == "RUNNING"
        return report if report.status is PipelineStatus.ACTIVE and running else None

    return wait_for(f"{pipeline.spec.pipeline_id} ACTIVE", active)


def test_a_healthy_pipeline_is_active_with_nothing_to_repair(pipeline):
    report, mine = sweep(pipeline)
    assert (mine.status, mine.source_connector, mine.sink_connector) == (PipelineStatus.ACTIVE, "RUNNING", "RUNNING")
    assert mine.slot_active is True and isinstance(mine.slot_lag_bytes, int)
    assert (mine.restarted, mine.publication_added, mine.publication_removed, mine.problems) == ([], [], [], [])
    assert not [o for o in report.orphans if o.pipeline_id == pipeline.spec.pipeline_id]
    assert not [e for e in report.errors if pipeline.spec.pipeline_id in e.pipelines]
    raw = boto3.client("dynamodb").get_item(
        TableName=registry.table_name(), Key={"pipeline_id": {"S": pipeline.spec.pipeline_id}})["Item"]
    assert raw["slot_lag_bytes"] == {"N": str(mine.slot_lag_bytes)}


def test_a_failed_task_is_restarted_and_runs_again(pipeline):
    names = pipeline.spec.names
    role = sql.Identifier(names.replication_role)
    with pipeline.connect() as conn:
        # The replication login is refused, then its walsender is ended: Debezium cannot reconnect and fails.
        conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(role))
        conn.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = %s AND active",
                     (names.replication_slot,))
        try:
            wait_for("the source task to fail", lambda: "FAILED" in task_states(pipeline.spec, names.source_connector))
        finally:
            conn.execute(sql.SQL("ALTER ROLE {} LOGIN").format(role))  # the operator fixes the cause

    report, mine = sweep(pipeline)

    assert mine.source_connector == "FAILED"
    assert mine.restarted == [names.source_connector]
    assert mine.failed_sweeps == 1 and mine.restarts_in_window == 1
    assert mine.status is PipelineStatus.ACTIVE  # one failed sweep is not yet DEGRADED
    assert report.connector_restarts == 1
    wait_for("the restarted task to run", lambda: task_states(pipeline.spec, names.source_connector) == ["RUNNING"])
    assert healthy(pipeline).failed_sweeps == 0


def test_a_publication_altered_by_hand_is_realigned(pipeline):
    names = pipeline.spec.names
    publication = sql.Identifier(names.publication)
    with pipeline.connect() as conn:
        conn.execute(sql.SQL("ALTER PUBLICATION {} DROP TABLE {}").format(
            publication, sql.Identifier(*pipeline.table.split("."))))

    _, mine = sweep(pipeline)

    assert (mine.publication_added, mine.publication_removed) == ([pipeline.table], [])
    with pipeline.connect() as conn:
        tables = conn.execute(
            "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = %s ORDER BY 1",
            (names.publication,),
        ).fetchall()
    assert [row[0] for row in tables] == sorted([names.heartbeat_qualified, names.signal_qualified, pipeline.table])
    _, again = sweep(pipeline)
    assert (again.publication_added, again.publication_removed) == ([], [])


def test_lag_is_flagged_while_the_connector_is_paused_and_clears_after_resume(pipeline):
    names = pipeline.spec.names
    settings = ReconcileSettings(lag_threshold_bytes=64 * 1024)
    with ConnectClient(pipeline.spec.connect.url) as client:
        client.pause(names.source_connector)
        try:
            wait_for("the source connector to pause", lambda: set(task_states(pipeline.spec, names.source_connector)) == {"PAUSED"})
            # An offset commit of records sent before the pause may still move the slot; insert once it is still.
            wait_until_still(lambda: confirmed_flush_lsn(pipeline), for_seconds=3.0)
            with pipeline.connect() as conn:
                conn.execute(sql.SQL("INSERT INTO {} SELECT g, repeat('x', 500) FROM generate_series(1000, 2999) g").format(
                    sql.Identifier(*pipeline.table.split("."))))

            _, mine = sweep(pipeline, settings=settings)

            assert mine.source_connector == "PAUSED"
            assert mine.slot_lag_bytes > settings.lag_threshold_bytes
            assert mine.status is PipelineStatus.DEGRADED
            assert any("bytes behind" in problem for problem in mine.problems)
            assert f"connector {names.source_connector} is paused" in mine.notes
            entry = registry.get(pipeline.spec.pipeline_id)
            assert entry.status is PipelineStatus.DEGRADED
            assert "bytes behind" in entry.last_error["cause"]
        finally:
            client.resume(names.source_connector)

    recovered = healthy(pipeline)
    assert recovered.slot_lag_bytes <= ReconcileSettings().lag_threshold_bytes
    assert registry.get(pipeline.spec.pipeline_id).last_error is None


def test_leftovers_made_by_hand_are_orphans_deleted_only_on_repair(pipeline):
    orphan_id = f"it_rc_orphan_{token_source.token_hex(3)}"
    slot = publication = f"cdcflow_{orphan_id}"
    topic = f"cdcflow.{orphan_id}.public.orders"
    bootstrap = pipeline.spec.kafka.bootstrap_servers
    with pipeline.connect() as conn, kafka_admin(bootstrap) as admin:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
            sql.Identifier(publication), sql.Identifier(*pipeline.table.split("."))))
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        try:
            report = reconcile(repair=False)
            found = {(o.kind, o.name): o for o in report.orphans if o.pipeline_id == orphan_id}
            assert set(found) == {("slot", slot), ("publication", publication), ("topic", topic)}
            assert all(o.reason == f"pipeline {orphan_id!r} has no registry entry" and not o.deleted for o in found.values())
            assert conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
            assert topic in list_topics_with_prefix(bootstrap, topic)

            report = reconcile(repair=True, repair_only={orphan_id})
            deleted = [(o.kind, o.deleted, o.error) for o in report.orphans if o.pipeline_id == orphan_id]
            assert sorted(deleted) == [("publication", True, None), ("slot", True, None), ("topic", True, None)]
            assert report.repairs_done == 3
            assert all(not o.deleted for o in report.orphans if o.pipeline_id != orphan_id)
            assert not conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
            assert not conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone()
            wait_for("the topic to go", lambda: topic not in list_topics_with_prefix(bootstrap, topic))
        finally:
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(publication)))
            if topic in list_topics_with_prefix(bootstrap, topic):
                admin.delete_topics([topic])
    assert healthy(pipeline).status is PipelineStatus.ACTIVE
