"""The source and sink connector configs a pipeline spec produces."""

import re

import pytest

from lambdas.connect.credentials import DatabaseLogin
from lambdas.connect.secret_refs import SecretLogin, SecretNotReferenceable, is_reference
from lambdas.connect.sink_config import jdbc_sink_config, opensearch_sink_config, sink_config, sink_topics
from lambdas.connect.source_config import debezium_source_config
from tests.unit.factories import pipeline_spec

REPLICATION_PASSWORD = "repl-Pa55word!"
SINK_PASSWORD = "sink-Pa55word!"
HEARTBEAT_QUERY = "INSERT INTO cdcflow.heartbeat_orders (id, beat_at) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET beat_at = now()"


# What the connector configs read from a spec; the assertions below name these values.
CAPTURE = {
    "source_host": "db.internal",
    "tables": ("public.orders", "sales.order_lines"),
    "bootstrap_servers": "k1:9092,k2:9092",
    "topic_prefix": "cdc-prod",
    "debezium": {"snapshot_mode": "no_data", "heartbeat_interval_ms": 5000},
}
WAREHOUSE = {"type": "jdbc", "host": "warehouse", "port": 5433, "database": "dw", "secret": "dw", "schema": "raw"}


CONNECT_CA = "/etc/cdcflow/database-ca.pem"


@pytest.fixture(autouse=True)
def database_tls_environment(monkeypatch):
    """The functions' CA on their host, and the same bundle's path on the Connect workers."""
    monkeypatch.delenv("CDCFLOW_DATABASE_SSLMODE", raising=False)
    monkeypatch.setenv("CDCFLOW_DATABASE_CA_FILE", "/opt/cdcflow/database-ca.pem")
    monkeypatch.setenv("CDCFLOW_CONNECT_DATABASE_CA_FILE", CONNECT_CA)


@pytest.fixture
def spec():
    return pipeline_spec(**CAPTURE, sink=WAREHOUSE)


def test_source_config_has_the_exact_debezium_properties(spec):
    login = SecretLogin("cdcflow_orders", "cdcflow/orders/replication")
    config = debezium_source_config(spec, login, HEARTBEAT_QUERY)

    assert config == {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": "1",
        "plugin.name": "pgoutput",
        "database.hostname": "db.internal",
        "database.port": "5432",
        "database.dbname": "shop",
        "database.user": "cdcflow_orders",
        "database.password": "${secretsmanager:cdcflow/orders/replication:password}",
        "database.sslmode": "verify-full",
        "database.sslrootcert": CONNECT_CA,
        "slot.name": "cdcflow_orders",
        "publication.name": "cdcflow_orders",
        "publication.autocreate.mode": "disabled",
        "slot.drop.on.stop": "false",
        "topic.prefix": "cdc-prod.orders",
        "topic.heartbeat.prefix": "__debezium-heartbeat",
        "table.include.list": r"^public\.orders$,^sales\.order_lines$,^cdcflow\.heartbeat_orders$",
        "snapshot.mode": "no_data",
        "heartbeat.interval.ms": "5000",
        "heartbeat.action.query": HEARTBEAT_QUERY,
        "signal.enabled.channels": "source",
        "signal.data.collection": "cdcflow.signal_orders",
        "notification.enabled.channels": "sink",
        "notification.sink.topic.name": "__debezium-notification.cdc-prod.orders",
        "decimal.handling.mode": "string",
        "time.precision.mode": "adaptive_time_microseconds",
        "column.propagate.source.type": r"^public\.orders\..+$,^sales\.order_lines\..+$,^cdcflow\.heartbeat_orders\..+$",
        "interval.handling.mode": "string",
        "skipped.operations": "none",
        "tombstones.on.delete": "false",
        "post.processors": "reselect",
        "reselect.type": "io.debezium.processors.reselect.ReselectColumnsPostProcessor",
        "reselect.columns.include.list": r"^public\.orders:.+$,^sales\.order_lines:.+$",
        "reselect.unavailable.values": "true",
        "reselect.null.values": "false",
        "max.batch.size": "16384",
        "max.queue.size": "65536",
        "max.queue.size.in.bytes": "134217728",
        "snapshot.fetch.size": "20000",
        "incremental.snapshot.chunk.size": "20000",
        "producer.override.linger.ms": "50",
        "producer.override.batch.size": "1048576",
        "producer.override.compression.type": "lz4",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "true",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true",
    }


def test_a_truncate_is_applied_at_a_jdbc_sink_unless_the_spec_ignores_it(spec):
    applied = (debezium_source_config(spec, DatabaseLogin("u", "p"), HEARTBEAT_QUERY),
               jdbc_sink_config(spec, DatabaseLogin("w", "p")))
    assert applied[0]["skipped.operations"] == "none" and applied[1]["truncate.enabled"] == "true"

    ignoring = pipeline_spec(**CAPTURE, sink={**WAREHOUSE, "truncate": "ignore"})
    ignored = (debezium_source_config(ignoring, DatabaseLogin("u", "p"), HEARTBEAT_QUERY),
               jdbc_sink_config(ignoring, DatabaseLogin("w", "p")))
    assert ignored[0]["skipped.operations"] == "t" and ignored[1]["truncate.enabled"] == "false"

    search = pipeline_spec(**CAPTURE, sink={"type": "opensearch", "url": "http://search:9200"})
    assert debezium_source_config(search, DatabaseLogin("u", "p"), HEARTBEAT_QUERY)["skipped.operations"] == "t"


def test_numerics_and_intervals_travel_as_exact_text_to_a_jdbc_sink_and_as_numbers_to_opensearch(spec):
    jdbc = debezium_source_config(spec, DatabaseLogin("u", "p"), HEARTBEAT_QUERY)
    assert (jdbc["decimal.handling.mode"], jdbc["interval.handling.mode"]) == ("string", "string")
    search = debezium_source_config(pipeline_spec(**CAPTURE, sink={"type": "opensearch", "url": "http://search:9200"}),
                                    DatabaseLogin("u", "p"), HEARTBEAT_QUERY)
    assert (search["decimal.handling.mode"], search["interval.handling.mode"]) == ("precise", "numeric")


def test_chosen_key_columns_become_the_record_key_of_their_tables():
    spec = pipeline_spec(**{**CAPTURE, "tables": ("public.orders", "Sales Dept.Order Lines")},
                         sink={**WAREHOUSE, "key_columns": {"Sales Dept.Order Lines": ["order id", "line"]}})
    config = debezium_source_config(spec, DatabaseLogin("u", "p"), HEARTBEAT_QUERY)
    table, columns = config["message.key.columns"].split(":")
    assert re.fullmatch(table, "Sales Dept.Order Lines") and not re.fullmatch(table, "Sales DeptxOrder Lines")
    assert columns == "order id,line"
    assert "message.key.columns" not in debezium_source_config(
        pipeline_spec(**CAPTURE, sink=WAREHOUSE), DatabaseLogin("u", "p"), HEARTBEAT_QUERY)


def test_mixed_case_names_with_spaces_keep_their_spelling_in_topics_and_sink_tables():
    spec = pipeline_spec(**{**CAPTURE, "tables": ("Sales Dept.Orders",)}, sink=WAREHOUSE)
    config = debezium_source_config(spec, DatabaseLogin("u", "p"), HEARTBEAT_QUERY)
    assert re.fullmatch(config["table.include.list"].split(",")[0], "Sales Dept.Orders")
    assert not re.fullmatch(config["table.include.list"].split(",")[0], "sales dept.orders")
    # Debezium turns the space of a topic name into `_` and keeps the case.
    assert spec.names.table_topic("Sales Dept.Orders") == "cdc-prod.orders.Sales_Dept.Orders"
    assert spec.names.sink_table("Sales Dept.Orders") == "Sales Dept_Orders"


def test_source_table_include_list_matches_only_the_captured_tables(spec):
    config = debezium_source_config(spec, DatabaseLogin("u", "p"), HEARTBEAT_QUERY)
    patterns = config["table.include.list"].split(",")

    def included(table):
        return any(re.fullmatch(pattern, table) for pattern in patterns)

    assert included("public.orders") and included("sales.order_lines") and included("cdcflow.heartbeat_orders")
    # Dots are literal and the match is anchored: no neighbours sneak in.
    assert not included("publicxorders")
    assert not included("public.orders_archive")
    assert not included("cdcflow.heartbeat_orders2")


def test_source_heartbeat_topic_matches_the_topic_the_pipeline_creates(spec):
    config = debezium_source_config(spec, DatabaseLogin("u", "p"), HEARTBEAT_QUERY)
    assert f"{config['topic.heartbeat.prefix']}.{config['topic.prefix']}" == spec.names.heartbeat_topic


def test_jdbc_sink_config_has_the_exact_properties(spec):
    config = jdbc_sink_config(spec, SecretLogin("writer", "dw"))

    assert config == {
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "tasks.max": "1",
        "topics": "cdc-prod.orders.public.orders,cdc-prod.orders.sales.order_lines,cdc-prod.orders.cdcflow.heartbeat_orders",
        "connection.url": f"jdbc:postgresql://warehouse:5433/dw?sslmode=verify-full&sslrootcert={CONNECT_CA}"
                          "&stringtype=unspecified",
        "connection.username": "writer",
        "connection.password": "${secretsmanager:dw:password}",
        "insert.mode": "upsert",
        "delete.enabled": "true",
        "primary.key.mode": "record_key",
        "schema.evolution": "basic",
        "collection.name.format": '"raw"."${source.schema}_${source.table}"',
        "use.time.zone": "UTC",
        "quote.identifiers": "true",
        "truncate.enabled": "true",
        "connection.restart.on.errors": "true",
        "flush.max.retries": "60",
        "flush.retry.delay.ms": "1000",
        "batch.size": "5000",
        "consumer.override.max.poll.records": "5000",
        "consumer.override.max.partition.fetch.bytes": "8388608",
        "key.converter": "dev.cdcflow.connect.ExactJsonConverter",
        "key.converter.schemas.enable": "true",
        "value.converter": "dev.cdcflow.connect.ExactJsonConverter",
        "value.converter.schemas.enable": "true",
    }


def test_sink_reads_table_topics_but_not_debeziums_heartbeat_topic(spec):
    topics = sink_topics(spec)
    assert spec.names.table_topic("cdcflow.heartbeat_orders") in topics
    assert spec.names.heartbeat_topic not in topics


def test_sink_table_name_format_resolves_to_the_naming_contract(spec):
    config = jdbc_sink_config(spec, DatabaseLogin("writer", SINK_PASSWORD))
    for table in spec.source.tables:
        schema, name = table.split(".")
        resolved = config["collection.name.format"].replace("${source.schema}", schema).replace("${source.table}", name)
        assert resolved == f'"{spec.sink.schema}"."{spec.names.sink_table(table)}"'


def test_opensearch_sink_config_indexes_flattened_rows_by_key():
    spec = pipeline_spec(**CAPTURE, sink={"type": "opensearch", "url": "https://search.internal:9200"})
    config = opensearch_sink_config(spec, DatabaseLogin("indexer", SINK_PASSWORD))

    assert config["connector.class"] == "dev.cdcflow.opensearch.OpenSearchSinkConnector"
    assert config["connection.url"] == "https://search.internal:9200"
    assert config["topics"].split(",") == sink_topics(spec)
    assert config["transforms.unwrap.type"] == "io.debezium.transforms.ExtractNewRecordState"
    # Deletes reach the connector as tombstones, which it turns into deletes by key.
    assert config["transforms.unwrap.delete.tombstone.handling.mode"] == "tombstone"
    assert config["key.converter.schemas.enable"] == "true"
    assert config["connection.password"] == SINK_PASSWORD
    assert "connection.password" not in opensearch_sink_config(spec, None)


def test_sink_config_dispatches_on_sink_type():
    login = DatabaseLogin("writer", SINK_PASSWORD)
    assert sink_config(pipeline_spec(**CAPTURE, sink=WAREHOUSE), login)["connector.class"].endswith("JdbcSinkConnector")
    opensearch = pipeline_spec(**CAPTURE, sink={"type": "opensearch", "url": "http://search:9200"})
    assert sink_config(opensearch, None)["connector.class"].endswith("OpenSearchSinkConnector")


def test_jdbc_sink_without_a_login_is_refused():
    with pytest.raises(ValueError, match="sink.secret"):
        sink_config(pipeline_spec(**CAPTURE, sink=WAREHOUSE), None)


def test_every_config_value_is_a_string(spec):
    login = DatabaseLogin("u", "p")
    for config in (debezium_source_config(spec, login, HEARTBEAT_QUERY), jdbc_sink_config(spec, login)):
        assert all(isinstance(value, str) for value in config.values())


def test_login_repr_hides_the_password():
    login = DatabaseLogin("writer", SINK_PASSWORD)
    assert SINK_PASSWORD not in repr(login)
    assert SINK_PASSWORD not in str(login)


def test_configs_built_from_secret_logins_hold_no_secret_value(spec):
    """What the workflow puts: every password is a reference that the worker resolves."""
    source = debezium_source_config(spec, SecretLogin("cdcflow_orders", "cdcflow/orders/replication"), HEARTBEAT_QUERY)
    sink = jdbc_sink_config(spec, SecretLogin("writer", "dw"))
    opensearch = opensearch_sink_config(
        pipeline_spec(**CAPTURE, sink={"type": "opensearch", "url": "https://search.internal:9200"}),
        SecretLogin("indexer", "search"),
    )
    for config in (source, sink, opensearch):
        passwords = {key: value for key, value in config.items() if key.endswith("password")}
        assert passwords and all(is_reference(value) for value in passwords.values())


def test_a_secret_arn_cannot_be_referenced(spec):
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:dw-AbCdEf"
    with pytest.raises(SecretNotReferenceable, match="dw-AbCdEf"):
        jdbc_sink_config(spec, SecretLogin("writer", arn))


def test_tls_follows_the_sslmode_setting(spec, monkeypatch):
    monkeypatch.setenv("CDCFLOW_DATABASE_SSLMODE", "require")
    source = debezium_source_config(spec, SecretLogin("u", "s"), HEARTBEAT_QUERY)
    sink = jdbc_sink_config(spec, SecretLogin("u", "s"))
    # No certificate check under `require`, so no root certificate is named.
    assert source["database.sslmode"] == "require" and "database.sslrootcert" not in source
    assert sink["connection.url"].endswith("/dw?sslmode=require&stringtype=unspecified")
