"""The sink connector config of a pipeline: Debezium JDBC into PostgreSQL, or OpenSearch."""

from lambdas.connect.converters import EXACT_JSON_WITH_SCHEMAS, JSON_WITH_SCHEMAS
from lambdas.connect.credentials import DatabaseLogin
from lambdas.connect.secret_refs import SecretLogin
from lambdas.connect.source_config import captured_tables
from lambdas.connect.throughput import JDBC_SINK_THROUGHPUT
from lambdas.source.tls import database_tls
from lambdas.spec import PipelineSpec

JDBC_SINK_CONNECTOR = "io.debezium.connector.jdbc.JdbcSinkConnector"
# cdcflow's own connector (cdcflow/local/opensearch_sink/): none on Maven Central deletes by key.
OPENSEARCH_SINK_CONNECTOR = "dev.cdcflow.opensearch.OpenSearchSinkConnector"


def sink_topics(spec: PipelineSpec) -> list[str]:
    """The topics the sink consumes: every table topic and the heartbeat table's, not Debezium's heartbeat topic.

    Debezium's heartbeat topic carries offsets only, with no table behind it.
    """
    return [spec.names.table_topic(table) for table in captured_tables(spec)]


def jdbc_sink_config(spec: PipelineSpec, sink_login: SecretLogin | DatabaseLogin) -> dict[str, str]:
    """The Debezium JDBC sink config for `spec`, all values strings.

    Captured `schema.table` lands in `<spec.sink.schema>.<schema>_<table>`
    (`spec.names.sink_table`): `collection.name.format` takes the schema and
    table from each change event's `source` block, so the name does not depend
    on how the topic is spelled. Writes are upserts keyed on the record key,
    deletes are applied, and new columns are added as they appear; re-delivered
    events therefore leave the same rows. The URL carries the TLS settings of
    `lambdas.source.tls` (`sslmode=verify-full&sslrootcert=<CA on the workers>`).

    The workflow passes a `SecretLogin`, so the password is a reference the
    worker resolves and the config holds no secret.
    """
    sink = spec.sink
    return {
        "connector.class": JDBC_SINK_CONNECTOR,
        "tasks.max": "1",
        "topics": ",".join(sink_topics(spec)),
        # stringtype=unspecified: a value Debezium sends as text ('infinity', 'NaN', an ISO interval) is typed by
        # the server from its column, so timestamptz 'infinity' lands as infinity instead of failing as varchar.
        "connection.url": f"jdbc:postgresql://{sink.host}:{sink.port}/{sink.database}"
        + database_tls(sink).jdbc_query() + "&stringtype=unspecified",
        "connection.username": sink_login.username,
        "connection.password": sink_login.password,
        "insert.mode": "upsert",
        "delete.enabled": "true",
        "primary.key.mode": "record_key",
        "schema.evolution": "basic",
        # Quoted, so that the sink's table-id parser keeps a name's spaces and case (`"public_Orders Pending"`).
        "collection.name.format": f'"{sink.schema}"."${{source.schema}}_${{source.table}}"',
        "use.time.zone": "UTC",
        # Names as the source spells them: mixed case and spaces survive (`"public_Orders"`).
        "quote.identifiers": "true",
        "truncate.enabled": "true" if spec.sink.applies_truncate else "false",
        # A flush that fails on a lost connection (the sink database restarting or failing over) opens a new
        # one and is tried again every second for a minute (the defaults: the same connection, 5 times). A lost
        # connection outside a flush ("error executing work") still fails the task; the scheduled
        # reconciliation restarts it.
        "connection.restart.on.errors": "true",
        "flush.max.retries": "60",
        "flush.retry.delay.ms": "1000",
        **JDBC_SINK_THROUGHPUT,
        **EXACT_JSON_WITH_SCHEMAS,
    }


def opensearch_sink_config(spec: PipelineSpec, login: SecretLogin | DatabaseLogin | None) -> dict[str, str]:
    """The config of cdcflow's OpenSearch sink connector for `spec`, all values strings.

    Each change event is flattened to its row state (Debezium's
    `ExtractNewRecordState`); a delete event becomes a tombstone, which deletes
    the document. Each topic becomes an index of the same name (the pipeline's
    topic names are lower-case, as OpenSearch requires), created by the
    connector before its first write. The document id is the record key: a
    one-column primary key's value, else the key's JSON text. Re-delivered
    events write the same documents again, so the index mirrors the table.
    `login` is optional: clusters behind IAM or a VPC need none.

    With a `SecretLogin` (as the workflow passes) the password is a reference
    the worker resolves, so the config holds no secret.
    """
    config = {
        "connector.class": OPENSEARCH_SINK_CONNECTOR,
        "tasks.max": "1",
        "topics": ",".join(sink_topics(spec)),
        "connection.url": spec.sink.url,
        "transforms": "unwrap",
        "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
        "transforms.unwrap.delete.tombstone.handling.mode": "tombstone",
        # OpenSearch unreachable: the task keeps redelivering the batch instead of failing.
        "retry.backoff.ms": "2000",
        **JSON_WITH_SCHEMAS,
    }
    if login is not None:
        config["connection.username"] = login.username
        config["connection.password"] = login.password
    return config


def sink_config(spec: PipelineSpec, login: SecretLogin | DatabaseLogin | None) -> dict[str, str]:
    """The sink connector config for `spec.sink.type`.

    The spec schema guarantees the fields each type needs (host, port,
    database and secret for jdbc; url for opensearch).
    """
    if spec.sink.type == "opensearch":
        return opensearch_sink_config(spec, login)
    if login is None:
        raise ValueError("a jdbc sink needs the login resolved from sink.secret")
    return jdbc_sink_config(spec, login)
