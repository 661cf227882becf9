"""The Debezium PostgreSQL source connector config of a pipeline."""

import re

from lambdas.backfill import connector_snapshot_mode
from lambdas.connect.converters import JSON_WITH_SCHEMAS
from lambdas.connect.credentials import DatabaseLogin
from lambdas.connect.secret_refs import SecretLogin
from lambdas.connect.throughput import SOURCE_THROUGHPUT
from lambdas.naming import HEARTBEAT_TOPIC_PREFIX
from lambdas.source.tls import database_tls
from lambdas.spec import PipelineSpec

POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"
RESELECT_POST_PROCESSOR = "io.debezium.processors.reselect.ReselectColumnsPostProcessor"


def captured_tables(spec: PipelineSpec) -> list[str]:
    """Every `schema.table` the source connector streams: the spec's tables, then the heartbeat table.

    The heartbeat table is in the publication so its rows (the heartbeat
    action's and the canary's) travel the whole pipeline.
    """
    return [*spec.source.tables, spec.names.heartbeat_qualified]


def debezium_source_config(
    spec: PipelineSpec, replication_login: SecretLogin | DatabaseLogin, heartbeat_action_query: str
) -> dict[str, str]:
    """The connector config for `spec`, all values strings as Connect stores them.

    The slot and publication were created by earlier steps, so Debezium must
    neither create a publication nor drop the slot when it stops: their
    lifecycle belongs to the workflow's compensations. Topics are created by
    the CreateTopics step, so the config carries no `topic.creation.*`
    settings and works whether or not the worker allows topic creation.

    The workflow passes a `SecretLogin`: the password is then a
    `${secretsmanager:...}` reference that the worker resolves, and the config
    holds no secret. Debezium connects with the TLS settings of
    `lambdas.source.tls` (`verify-full` by default), the CA read from its path
    on the Connect workers.
    """
    names = spec.names
    jdbc = spec.sink.type == "jdbc"
    column_patterns = [rf"^{re.escape(table)}\..+$" for table in captured_tables(spec)]
    return {
        "connector.class": POSTGRES_CONNECTOR,
        "tasks.max": "1",
        "plugin.name": "pgoutput",
        "database.hostname": spec.source.host,
        "database.port": str(spec.source.port),
        "database.dbname": spec.source.database,
        "database.user": replication_login.username,
        "database.password": replication_login.password,
        **database_tls(spec.source).debezium_settings(),
        "slot.name": names.replication_slot,
        "publication.name": names.publication,
        "publication.autocreate.mode": "disabled",
        "slot.drop.on.stop": "false",
        "topic.prefix": names.debezium_topic_prefix,
        "topic.heartbeat.prefix": HEARTBEAT_TOPIC_PREFIX,
        "table.include.list": ",".join(rf"^{re.escape(table)}$" for table in captured_tables(spec)),
        # "backfill" (the default) streams at once and copies the existing rows as an incremental snapshot that
        # the provisioning signals and follows (lambdas/backfill.py).
        "snapshot.mode": connector_snapshot_mode(spec.debezium.snapshot_mode),
        "heartbeat.interval.ms": str(spec.debezium.heartbeat_interval_ms),
        "heartbeat.action.query": heartbeat_action_query,
        # Incremental snapshots (tables added by UpdatePipeline, Resync): signals arrive through the published
        # signal table, and progress is reported on the notification topic (lambdas/source/signals.py).
        "signal.enabled.channels": "source",
        "signal.data.collection": names.signal_qualified,
        "notification.enabled.channels": "sink",
        "notification.sink.topic.name": names.notification_topic,
        # Types the JDBC sink maps exactly: NUMERIC as Connect Decimal, times in
        # microseconds, and the source column types propagated so the sink
        # creates columns with the same length, precision and scale.
        # For a JDBC sink, NUMERIC as its exact text: any precision (as Connect Decimal the sink made a free-scale
        # numeric double precision and capped precision at 38), and NaN and +-Infinity, which Decimal cannot hold
        # ("precise" sends them as null); the sink's server types the text from its column. cdcflow's OpenSearch
        # sink writes a Decimal as a JSON number with every digit, which its index maps as a number.
        "decimal.handling.mode": "string" if jdbc else "precise",
        "time.precision.mode": "adaptive_time_microseconds",
        # For a JDBC sink, ISO 8601 text ('P1Y2M3DT4H5M6.789S'), which casts to the same interval: months and
        # days stay apart (the default, microseconds, counts a month as 30.4375 days).
        "interval.handling.mode": "string" if jdbc else "numeric",
        "column.propagate.source.type": ",".join(column_patterns),
        # TRUNCATE travels as a `t` event when the sink applies it (sink.truncate); Debezium skips it by default.
        "skipped.operations": "none" if spec.sink.applies_truncate else "t",
        # A delete event carries the key the sink deletes by; tombstones would
        # only serve log compaction, and the pipeline's topics use `delete`.
        "tombstones.on.delete": "false",
        # An update that leaves a TOASTed value alone carries no value for it unless the table's replica identity
        # is FULL: Debezium sends its placeholder instead, and the sink would store it. The post processor reads
        # such columns back from the source by the row's key, so the sink gets the row's current value.
        "post.processors": "reselect",
        "reselect.type": RESELECT_POST_PROCESSOR,
        "reselect.columns.include.list": ",".join(rf"^{re.escape(table)}:.+$" for table in spec.source.tables),
        "reselect.unavailable.values": "true",
        "reselect.null.values": "false",
        **SOURCE_THROUGHPUT,
        **JSON_WITH_SCHEMAS,
        **message_key_columns(spec),
    }


def message_key_columns(spec: PipelineSpec) -> dict[str, str]:
    """`message.key.columns` for the tables the spec keys by chosen columns (`sink.key_columns`), else nothing.

    A table without a primary key has no record key; these columns become it,
    so the sink upserts and deletes by them.
    """
    keyed = spec.sink.key_columns or {}
    if not keyed:
        return {}
    return {"message.key.columns": ";".join(
        f"{re.escape(table)}:{','.join(columns)}" for table, columns in sorted(keyed.items()))}
