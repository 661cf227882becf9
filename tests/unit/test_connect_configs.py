"""The source and sink connector configs a pipeline spec produces."""

import re

import pytest

from lambdas.connect.credentials import DatabaseLogin
from lambdas.connect.sink_config import jdbc_sink_config, opensearch_sink_config, sink_config, sink_topics
from lambdas.connect.source_config import debezium_source_config
from lambdas.spec import parse_spec


REPLICATION_PASSWORD = "repl-Pa55word!"
SINK_PASSWORD = "sink-Pa55word!"
HEARTBEAT_QUERY = "INSERT INTO cdcflow.heartbeat_orders (id, beat_at) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET beat_at = now()"


def make_spec(**sink):
    return parse_spec(
        {
            "pipeline_id": "orders",
            "owner": "team-a",
            "source": {
                "host": "db.internal",
                "port": 5432,
                "database": "shop",
                "admin_secret": "cdcflow/shop/admin",
                "tables": ["public.orders", "sales.order_lines"],
            },
            "kafka": {"bootstrap_servers": "k1:9092,k2:9092", "topic_prefix": "cdc-prod"},
            "connect": {"url": "http://connect:8083"},
            "sink": sink
            or {"type": "jdbc", "host": "warehouse", "port": 5433, "database": "dw", "secret": "dw", "schema": "raw"},
            "debezium": {"snapshot_mode": "no_data", "heartbeat_interval_ms": 5000},
        }
    )


@pytest.fixture
def spec():
    return make_spec()


def test_source_config_has_the_exact_debezium_properties(spec):
    config = debezium_source_config(spec, DatabaseLogin("cdcflow_orders", REPLICATION_PASSWORD), HEARTBEAT_QUERY)

    assert config == {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": "1",
        "plugin.name": "pgoutput",
        "database.hostname": "db.internal",
        "database.port": "5432",
        "database.dbname": "shop",
        "database.user": "cdcflow_orders",
        "database.password": REPLICATION_PASSWORD,
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
        "decimal.handling.mode": "precise",
        "time.precision.mode": "adaptive_time_microseconds",
        "column.propagate.source.type": r"^public\.orders\..+$,^sales\.order_lines\..+$,^cdcflow\.heartbeat_orders\..+$",
        "tombstones.on.delete": "false",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "true",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true",
    }


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
    config = jdbc_sink_config(spec, DatabaseLogin("writer", SINK_PASSWORD))

    assert config == {
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "tasks.max": "1",
        "topics": "cdc-prod.orders.public.orders,cdc-prod.orders.sales.order_lines,cdc-prod.orders.cdcflow.heartbeat_orders",
        "connection.url": "jdbc:postgresql://warehouse:5433/dw",
        "connection.username": "writer",
        "connection.password": SINK_PASSWORD,
        "insert.mode": "upsert",
        "delete.enabled": "true",
        "primary.key.mode": "record_key",
        "schema.evolution": "basic",
        "collection.name.format": "raw.${source.schema}_${source.table}",
        "use.time.zone": "UTC",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "true",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
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
        assert resolved == f"{spec.sink.schema}.{spec.names.sink_table(table)}"


def test_opensearch_sink_config_indexes_flattened_rows_by_key():
    spec = make_spec(type="opensearch", url="https://search.internal:9200")
    config = opensearch_sink_config(spec, DatabaseLogin("indexer", SINK_PASSWORD))

    assert config["connector.class"] == "io.aiven.kafka.connect.opensearch.OpensearchSinkConnector"
    assert config["connection.url"] == "https://search.internal:9200"
    assert config["topics"].split(",") == sink_topics(spec)
    assert config["transforms.unwrap.type"] == "io.debezium.transforms.ExtractNewRecordState"
    assert config["behavior.on.null.values"] == "delete"
    assert config["key.ignore"] == "false"
    assert config["connection.password"] == SINK_PASSWORD
    assert "connection.password" not in opensearch_sink_config(spec, None)


def test_sink_config_dispatches_on_sink_type():
    login = DatabaseLogin("writer", SINK_PASSWORD)
    assert sink_config(make_spec(), login)["connector.class"].endswith("JdbcSinkConnector")
    opensearch = make_spec(type="opensearch", url="http://search:9200")
    assert sink_config(opensearch, None)["connector.class"].endswith("OpensearchSinkConnector")


def test_jdbc_sink_without_a_login_is_refused():
    with pytest.raises(ValueError, match="sink.secret"):
        sink_config(make_spec(), None)


def test_every_config_value_is_a_string(spec):
    login = DatabaseLogin("u", "p")
    for config in (debezium_source_config(spec, login, HEARTBEAT_QUERY), jdbc_sink_config(spec, login)):
        assert all(isinstance(value, str) for value in config.values())


def test_login_repr_hides_the_password():
    login = DatabaseLogin("writer", SINK_PASSWORD)
    assert SINK_PASSWORD not in repr(login)
    assert SINK_PASSWORD not in str(login)
