"""A pipeline's footprint: everything it owns, found by asking each system.

A test oracle: the e2e tests and bench/concurrency use it to prove that a
rollback or a teardown left nothing behind without trusting any step's return
value: every entry comes from a query against PostgreSQL, Kafka, Kafka Connect,
Secrets Manager or CloudWatch (the pipeline's alarms). Import it as `tests.footprint` (the repository's root is
on pytest's path).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from botocore.exceptions import ClientError
from psycopg import sql

from lambdas import aws
from lambdas.alarms import ALARM_NAME_PREFIX
from lambdas.connect.client import ConnectClient
from lambdas.kafka_topics import kafka_admin
from lambdas.opensearch import existing_indices, pipeline_indices
from lambdas.source.canary import sink_table_name
from lambdas.source.connection import connect_admin, connect_sink
from lambdas.spec import PipelineSpec


@dataclass(frozen=True)
class Footprint:
    """The names of what exists for one pipeline, by kind; all empty means nothing is left."""

    roles: tuple[str, ...]
    slots: tuple[str, ...]
    publications: tuple[str, ...]
    heartbeat_tables: tuple[str, ...]
    secrets: tuple[str, ...]
    topics: tuple[str, ...]
    consumer_groups: tuple[str, ...]
    connectors: tuple[str, ...]
    sink_tables: tuple[str, ...]
    sink_indices: tuple[str, ...] = ()
    alarms: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not any(getattr(self, field.name) for field in fields(self))

    def present(self) -> dict[str, list[str]]:
        """Only the kinds with something left, for assertions that print what leaked."""
        return {field.name: list(names) for field in fields(self) if (names := getattr(self, field.name))}


def _source_objects(spec: PipelineSpec) -> dict[str, tuple[str, ...]]:
    names = spec.names
    with connect_admin(spec.source) as conn:
        row = conn.execute(
            """
            SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %(role)s),
                   EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = %(slot)s),
                   EXISTS (SELECT FROM pg_publication WHERE pubname = %(publication)s),
                   to_regclass(%(heartbeat)s) IS NOT NULL
            """,
            {
                "role": names.replication_role,
                "slot": names.replication_slot,
                "publication": names.publication,
                "heartbeat": sql.Identifier(names.heartbeat_schema, names.heartbeat_table).as_string(conn),
            },
        ).fetchone()
    role, slot, publication, heartbeat = row
    return {
        "roles": (names.replication_role,) if role else (),
        "slots": (names.replication_slot,) if slot else (),
        "publications": (names.publication,) if publication else (),
        "heartbeat_tables": (names.heartbeat_qualified,) if heartbeat else (),
    }


def _secrets(spec: PipelineSpec) -> tuple[str, ...]:
    name = spec.names.replication_secret
    try:
        described = aws.client("secretsmanager").describe_secret(SecretId=name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return ()
        raise
    return () if "DeletedDate" in described else (name,)


def _kafka_objects(spec: PipelineSpec) -> dict[str, tuple[str, ...]]:
    names = spec.names
    # Debezium's topics for this pipeline start with its prefix; its heartbeat and notification topics are
    # named apart.
    prefix = names.debezium_topic_prefix + "."
    with kafka_admin(spec.kafka.bootstrap_servers) as admin:
        topics = admin.list_topics()
        groups = [group["group_id"] for group in admin.list_groups()]
    return {
        "topics": tuple(sorted(t for t in topics
                               if t.startswith(prefix) or t in (names.heartbeat_topic, names.notification_topic))),
        "consumer_groups": tuple(sorted(g for g in groups if g == f"connect-{names.sink_connector}")),
    }


def _connectors(spec: PipelineSpec) -> tuple[str, ...]:
    mine = {spec.names.source_connector, spec.names.sink_connector}
    with ConnectClient(spec.connect.url) as client:
        return tuple(sorted(mine.intersection(client.list_connectors())))


def _sink_tables(spec: PipelineSpec) -> tuple[str, ...]:
    """The sink copy of the heartbeat table, which only the canary writes to (captured tables' copies are user data)."""
    if spec.sink.type != "jdbc":
        return ()
    table = sink_table_name(spec)
    schema, _, name = table.partition(".")
    with connect_sink(spec.sink) as conn:
        exists = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", [sql.Identifier(schema, name).as_string(conn)]
        ).fetchone()[0]
    return (table,) if exists else ()


def _sink_indices(spec: PipelineSpec) -> tuple[str, ...]:
    """An OpenSearch sink's indices: created with the pipeline, so they go with it."""
    if spec.sink.type != "opensearch":
        return ()
    return tuple(sorted(existing_indices(spec.sink.url, pipeline_indices(spec))))


def _alarms(spec: PipelineSpec) -> tuple[str, ...]:
    """The pipeline's CloudWatch alarms (`cdcflow-pipeline-<id>-*`)."""
    prefix = f"{ALARM_NAME_PREFIX}{spec.pipeline_id}-"
    found = aws.client("cloudwatch").describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    return tuple(sorted(alarm["AlarmName"] for alarm in found))


def footprint(spec: PipelineSpec) -> Footprint:
    """What exists right now for `spec`'s pipeline in every system it touches. Read-only."""
    return Footprint(
        **_source_objects(spec),
        secrets=_secrets(spec),
        **_kafka_objects(spec),
        connectors=_connectors(spec),
        sink_tables=_sink_tables(spec),
        sink_indices=_sink_indices(spec),
        alarms=_alarms(spec),
    )
