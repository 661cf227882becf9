"""Pre-flight: before anything is created, every dependency a spec names answers and accepts its login.

Each check gives up after a few seconds and raises a permanent, named error
(`lambdas.errors`) naming the host, port, database, schema or URL at fault,
so a mistaken spec fails in seconds instead of after the transient-error
retries of the steps that would have met it later. The checks run in the
order that leaves nothing behind: source, Kafka, Connect, then the sink,
whose schema is created when missing (the only thing pre-flight may create,
and the sink's, not the pipeline's: the teardown leaves it).
"""

from __future__ import annotations

from typing import Any

import psycopg
from kafka import KafkaAdminClient
from kafka import errors as kafka_errors
from psycopg import sql

from lambdas.connect.client import ConnectClient
from lambdas.errors import (
    ConnectUnavailable,
    ConnectUnreachable,
    DatabaseUnavailable,
    KafkaUnreachable,
    SinkDatabaseMissing,
    SinkSchemaNotPermitted,
    SinkUnreachable,
    SourceUnreachable,
)
from lambdas.kafka_security import admin_client_options, classify_failure, connection_failures, kafka_security
from lambdas.source.connection import DatabaseNotFound, connect_admin, connect_sink
from lambdas.source.tables import TablesNotCapturable, capture_refusals
from lambdas.spec import PipelineSpec

CHECK_TIMEOUT_SECONDS = 3


def check_source(spec: PipelineSpec) -> str:
    """The source answers and accepts the admin login, and its tables can be captured; returns its server version.

    Raises `SourceUnreachable`, `AuthenticationFailed` or `DatabaseNotFound`
    (and the secret errors of `lambdas.secrets`), or `TablesNotCapturable`
    naming each table, column and type whose values the sink could not hold
    unchanged or whose rows would have no sink key
    (`lambdas.source.tables.capture_refusals`). Read-only.
    """
    source = spec.source
    try:
        with connect_admin(source) as conn:
            refusals = capture_refusals(conn, source.tables, spec.sink.key_columns)
            version = str(conn.info.parameter_status("server_version") or "")
    except DatabaseUnavailable as error:
        raise SourceUnreachable(
            f"the source database {source.database!r} at {source.host}:{source.port} did not answer: {error}"
        ) from None
    if refusals:
        raise TablesNotCapturable(f"tables of database {source.database!r} at {source.host}:{source.port} cannot be "
                                  f"captured unchanged: {'; '.join(refusals)}")
    return version


def check_kafka(spec: PipelineSpec) -> int:
    """A broker answers at the bootstrap servers; returns how many brokers the cluster reports.

    Raises `KafkaUnreachable` naming the bootstrap servers within about
    `CHECK_TIMEOUT_SECONDS`; on a SASL_SSL or SSL cluster (`lambdas.kafka_security`),
    `KafkaAuthenticationFailed` or `KafkaTlsRejected` when the login or the handshake is refused.
    """
    bootstrap = spec.kafka.bootstrap_servers
    timeout_ms = CHECK_TIMEOUT_SECONDS * 1000
    security = kafka_security(spec.kafka)
    options = admin_client_options(security)
    try:
        with connection_failures() as logged:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="cdcflow-preflight",
                                     request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms, **options)
    except kafka_errors.KafkaError as error:
        named = classify_failure(error, bootstrap, security, logged)
        if named is not None:
            raise named from None
        raise KafkaUnreachable(
            f"no Kafka broker answered at {bootstrap} within {CHECK_TIMEOUT_SECONDS} s: {type(error).__name__}"
        ) from None
    try:
        return len(admin.describe_cluster().get("brokers", []))
    except kafka_errors.KafkaError as error:
        raise KafkaUnreachable(f"Kafka at {bootstrap} failed a request: {type(error).__name__}") from None
    finally:
        admin.close()


def check_connect(spec: PipelineSpec) -> int:
    """Kafka Connect's REST API answers; returns how many connectors it runs.

    Raises `ConnectUnreachable` naming the URL within about `CHECK_TIMEOUT_SECONDS`.
    """
    url = spec.connect.url
    try:
        with ConnectClient(url, timeout=(CHECK_TIMEOUT_SECONDS, CHECK_TIMEOUT_SECONDS)) as client:
            return len(client.list_connectors())
    except ConnectUnavailable as error:
        raise ConnectUnreachable(f"Kafka Connect at {url} did not answer: {error}") from None


def check_sink(spec: PipelineSpec) -> dict[str, Any]:
    """A JDBC sink's database exists and accepts the sink login; its schema exists, created when missing.

    Idempotent. Raises `SinkUnreachable`, `SinkDatabaseMissing`,
    `AuthenticationFailed` or `SinkSchemaNotPermitted` (the schema is missing
    and the sink's role may not create it). An OpenSearch sink is not checked here.
    """
    sink = spec.sink
    if sink.type != "jdbc":
        return {"checked": False, "type": sink.type}
    where = f"{sink.host}:{sink.port}"
    try:
        conn = connect_sink(sink)
    except DatabaseNotFound:
        raise SinkDatabaseMissing(f"the sink database {sink.database!r} does not exist on PostgreSQL at {where}") from None
    except DatabaseUnavailable as error:
        raise SinkUnreachable(f"the sink database {sink.database!r} at {where} did not answer: {error}") from None
    with conn:
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (sink.schema,)).fetchone()
        if exists:
            return {"checked": True, "schema": sink.schema, "schema_created": False}
        try:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(sink.schema)))
        except psycopg.errors.InsufficientPrivilege:
            raise SinkSchemaNotPermitted(
                f"the sink schema {sink.schema!r} does not exist in database {sink.database!r} at {where}, and the "
                "sink's role may not create it: create it, or grant CREATE on the database to the sink's role"
            ) from None
    return {"checked": True, "schema": sink.schema, "schema_created": True}


def preflight(spec: PipelineSpec) -> dict[str, Any]:
    """Every check, in the order that leaves nothing behind; the first mistake raises its named error."""
    return {
        "source_version": check_source(spec),
        "kafka_brokers": check_kafka(spec),
        "connectors": check_connect(spec),
        "sink": check_sink(spec),
    }
