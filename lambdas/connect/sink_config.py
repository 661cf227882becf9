"""The sink connector config of a pipeline: Debezium JDBC into PostgreSQL, or OpenSearch."""

from lambdas.connect.converters import JSON_WITH_SCHEMAS
from lambdas.connect.credentials import DatabaseLogin
from lambdas.connect.source_config import captured_tables
from lambdas.spec import PipelineSpec

JDBC_SINK_CONNECTOR = "io.debezium.connector.jdbc.JdbcSinkConnector"
OPENSEARCH_SINK_CONNECTOR = "io.aiven.kafka.connect.opensearch.OpensearchSinkConnector"


def sink_topics(spec: PipelineSpec) -> list[str]:
    """The topics the sink consumes: every table topic and the heartbeat table's, not Debezium's heartbeat topic.

    Debezium's heartbeat topic carries offsets only, with no table behind it.
    """
    return [spec.names.table_topic(table) for table in captured_tables(spec)]


def jdbc_sink_config(spec: PipelineSpec, sink_login: DatabaseLogin) -> dict[str, str]:
    """The Debezium JDBC sink config for `spec`, all values strings.

    Captured `schema.table` lands in `<spec.sink.schema>.<schema>_<table>`
    (`spec.names.sink_table`): `collection.name.format` takes the schema and
    table from each change event's `source` block, so the name does not depend
    on how the topic is spelled. Writes are upserts keyed on the record key,
    deletes are applied, and new columns are added as they appear; re-delivered
    events therefore leave the same rows.

    The returned dict contains the sink password: pass it to Connect, never
    to logs or state machine data.
    """
    sink = spec.sink
    return {
        "connector.class": JDBC_SINK_CONNECTOR,
        "tasks.max": "1",
        "topics": ",".join(sink_topics(spec)),
        "connection.url": f"jdbc:postgresql://{sink.host}:{sink.port}/{sink.database}",
        "connection.username": sink_login.username,
        "connection.password": sink_login.password,
        "insert.mode": "upsert",
        "delete.enabled": "true",
        "primary.key.mode": "record_key",
        "schema.evolution": "basic",
        "collection.name.format": f"{sink.schema}.${{source.schema}}_${{source.table}}",
        "use.time.zone": "UTC",
        **JSON_WITH_SCHEMAS,
    }


def opensearch_sink_config(spec: PipelineSpec, login: DatabaseLogin | None) -> dict[str, str]:
    """An OpenSearch sink config for `spec` (Aiven's OpenSearch connector for Kafka Connect).

    Each change event is flattened to its row state (Debezium's
    `ExtractNewRecordState`); a delete becomes a tombstone, which deletes the
    document. Each topic becomes an index of the same name (the pipeline's
    topic names are lower-case, as OpenSearch requires). The connector only
    takes primitive keys as document ids, so the key is read as its JSON text:
    one document per primary key, versioned by the Kafka offset. `login` is
    optional: clusters behind IAM or a VPC need none.

    Not verified end to end here: the local stack runs no OpenSearch and no
    OpenSearch connector plugin. Property names follow the Aiven connector's
    configuration reference.
    """
    config = {
        "connector.class": OPENSEARCH_SINK_CONNECTOR,
        "tasks.max": "1",
        "topics": ",".join(sink_topics(spec)),
        "connection.url": spec.sink.url,
        "key.ignore": "false",
        "schema.ignore": "true",
        "behavior.on.null.values": "delete",
        "transforms": "unwrap",
        "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
        "transforms.unwrap.delete.tombstone.handling.mode": "tombstone",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": JSON_WITH_SCHEMAS["value.converter"],
        "value.converter.schemas.enable": JSON_WITH_SCHEMAS["value.converter.schemas.enable"],
    }
    if login is not None:
        config["connection.username"] = login.username
        config["connection.password"] = login.password
    return config


def sink_config(spec: PipelineSpec, login: DatabaseLogin | None) -> dict[str, str]:
    """The sink connector config for `spec.sink.type`.

    The spec schema guarantees the fields each type needs (host, port,
    database and secret for jdbc; url for opensearch).
    """
    if spec.sink.type == "opensearch":
        return opensearch_sink_config(spec, login)
    if login is None:
        raise ValueError("a jdbc sink needs the login resolved from sink.secret")
    return jdbc_sink_config(spec, login)
