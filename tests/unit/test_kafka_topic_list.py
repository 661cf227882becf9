"""The pipeline's topic list, and a cluster that does not answer."""

import socket

import pytest

from lambdas.errors import KafkaUnavailable
from lambdas.kafka_topics import desired_topic_configs, ensure_topics, pipeline_topics
from lambdas.spec import parse_spec



def make_spec(bootstrap_servers="k1:9092"):
    return parse_spec(
        {
            "pipeline_id": "orders",
            "owner": "team-a",
            "source": {
                "host": "db",
                "port": 5432,
                "database": "shop",
                "admin_secret": "shop-admin",
                "tables": ["public.orders", "sales.order_lines"],
            },
            "kafka": {"bootstrap_servers": bootstrap_servers, "retention_ms": 3_600_000},
            "connect": {"url": "http://connect:8083"},
            "sink": {"type": "jdbc", "host": "dw", "port": 5432, "database": "dw", "secret": "dw"},
        }
    )


def test_one_topic_per_table_plus_the_heartbeat_tables_and_debeziums_heartbeat_topic():
    assert pipeline_topics(make_spec()) == [
        "cdcflow.orders.public.orders",
        "cdcflow.orders.sales.order_lines",
        "cdcflow.orders.cdcflow.heartbeat_orders",
        "__debezium-heartbeat.cdcflow.orders",
    ]


def test_topics_get_the_specs_retention_and_delete_cleanup():
    assert desired_topic_configs(make_spec()) == {"retention.ms": "3600000", "cleanup.policy": "delete"}


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow  # waits out the bounded bootstrap timeout
def test_unreachable_cluster_is_unavailable_and_names_the_servers():
    servers = f"127.0.0.1:{unused_port()}"
    with pytest.raises(KafkaUnavailable, match=servers):
        ensure_topics(make_spec(servers))
