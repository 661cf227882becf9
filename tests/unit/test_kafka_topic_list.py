"""The pipeline's topic list, and a cluster that does not answer."""

import socket

import pytest

from lambdas.errors import KafkaUnavailable
from lambdas.kafka_topics import desired_topic_configs, ensure_topics, pipeline_topics
from tests.unit.factories import pipeline_spec

TOPICS = {"tables": ("public.orders", "sales.order_lines"), "retention_ms": 3_600_000}


def test_one_topic_per_table_plus_the_heartbeat_and_signal_tables_and_debeziums_heartbeat_and_notifications():
    assert pipeline_topics(pipeline_spec(**TOPICS)) == [
        "cdcflow.orders.public.orders",
        "cdcflow.orders.sales.order_lines",
        "cdcflow.orders.cdcflow.heartbeat_orders",
        "cdcflow.orders.cdcflow.signal_orders",
        "__debezium-heartbeat.cdcflow.orders",
        "__debezium-notification.cdcflow.orders",
    ]


def test_topics_get_the_specs_retention_and_delete_cleanup():
    assert desired_topic_configs(pipeline_spec(**TOPICS)) == {"retention.ms": "3600000", "cleanup.policy": "delete"}


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow  # waits out the bounded bootstrap timeout
def test_unreachable_cluster_is_unavailable_and_names_the_servers():
    servers = f"127.0.0.1:{unused_port()}"
    with pytest.raises(KafkaUnavailable, match=servers):
        ensure_topics(pipeline_spec(**TOPICS, bootstrap_servers=servers))
