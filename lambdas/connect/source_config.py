"""The Debezium PostgreSQL source connector config of a pipeline."""

import re

from lambdas.connect.converters import JSON_WITH_SCHEMAS
from lambdas.connect.credentials import DatabaseLogin
from lambdas.naming import HEARTBEAT_TOPIC_PREFIX
from lambdas.spec import PipelineSpec

POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"


def captured_tables(spec: PipelineSpec) -> list[str]:
    """Every `schema.table` the source connector streams: the spec's tables, then the heartbeat table.

    The heartbeat table is in the publication so its rows (the heartbeat
    action's and the canary's) travel the whole pipeline.
    """
    return [*spec.source.tables, spec.names.heartbeat_qualified]


def debezium_source_config(
    spec: PipelineSpec, replication_login: DatabaseLogin, heartbeat_action_query: str
) -> dict[str, str]:
    """The connector config for `spec`, all values strings as Connect stores them.

    The slot and publication were created by earlier steps, so Debezium must
    neither create a publication nor drop the slot when it stops: their
    lifecycle belongs to the workflow's compensations. Topics are created by
    the CreateTopics step, so the config carries no `topic.creation.*`
    settings and works whether or not the worker allows topic creation.

    The returned dict contains the replication password: pass it to Connect,
    never to logs or state machine data.
    """
    names = spec.names
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
        "slot.name": names.replication_slot,
        "publication.name": names.publication,
        "publication.autocreate.mode": "disabled",
        "slot.drop.on.stop": "false",
        "topic.prefix": names.debezium_topic_prefix,
        "topic.heartbeat.prefix": HEARTBEAT_TOPIC_PREFIX,
        "table.include.list": ",".join(rf"^{re.escape(table)}$" for table in captured_tables(spec)),
        "snapshot.mode": spec.debezium.snapshot_mode,
        "heartbeat.interval.ms": str(spec.debezium.heartbeat_interval_ms),
        "heartbeat.action.query": heartbeat_action_query,
        # Types the JDBC sink maps exactly: NUMERIC as Connect Decimal, times in
        # microseconds, and the source column types propagated so the sink
        # creates columns with the same length, precision and scale.
        "decimal.handling.mode": "precise",
        "time.precision.mode": "adaptive_time_microseconds",
        "column.propagate.source.type": ",".join(column_patterns),
        # A delete event carries the key the sink deletes by; tombstones would
        # only serve log compaction, and the pipeline's topics use `delete`.
        "tombstones.on.delete": "false",
        **JSON_WITH_SCHEMAS,
    }
