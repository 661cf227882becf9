"""The topics step against the local Kafka cluster."""

import secrets

import pytest

from lambdas.kafka_topics import (
    TopicConfigMismatch,
    TopicRequestRejected,
    delete_topics,
    ensure_topics,
    kafka_admin,
    list_topics_with_prefix,
    pipeline_topics,
)
from lambdas.spec import parse_spec



def make_spec(bootstrap_servers: str, pipeline_id: str, **kafka) -> object:
    return parse_spec(
        {
            "pipeline_id": pipeline_id,
            "owner": "integration-tests",
            "source": {
                "host": "127.0.0.1",
                "port": 5432,
                "database": "source",
                "admin_secret": "unused",
                "tables": ["public.orders", "public.customers"],
            },
            "kafka": {"bootstrap_servers": bootstrap_servers, "retention_ms": 3_600_000, **kafka},
            "connect": {"url": "http://127.0.0.1:8083"},
            "sink": {"type": "jdbc", "host": "127.0.0.1", "port": 5432, "database": "sink", "secret": "unused"},
        }
    )


@pytest.fixture
def bootstrap(local_stack) -> str:
    return local_stack.kafka.bootstrap_servers


@pytest.fixture
def spec(bootstrap):
    spec = make_spec(bootstrap, f"it_topics_{secrets.token_hex(4)}")
    yield spec
    delete_topics(spec)


def test_ensure_creates_every_topic_with_the_specs_settings_and_is_idempotent(spec, bootstrap):
    first = ensure_topics(spec)
    second = ensure_topics(spec)

    assert first == {"topics": pipeline_topics(spec), "created": pipeline_topics(spec), "existing": []}
    assert second == {"topics": pipeline_topics(spec), "created": [], "existing": pipeline_topics(spec)}
    prefix = spec.names.debezium_topic_prefix
    assert list_topics_with_prefix(bootstrap, prefix + ".") == sorted(pipeline_topics(spec)[:-2])
    with kafka_admin(bootstrap) as admin:
        described = admin.describe_topics(pipeline_topics(spec))
        assert {len(topic["partitions"]) for topic in described} == {1}


def test_a_topic_with_other_settings_is_a_mismatch_and_nothing_else_is_created(spec, bootstrap):
    orders_topic, *others = pipeline_topics(spec)
    with kafka_admin(bootstrap) as admin:
        admin.create_topics({orders_topic: {"num_partitions": 2, "replication_factor": 1, "configs": {"retention.ms": "60000"}}})

    with pytest.raises(TopicConfigMismatch) as caught:
        ensure_topics(spec)

    message = str(caught.value)
    assert f"{orders_topic}: 2 partitions, spec wants 1" in message
    assert f"{orders_topic}: retention.ms=60000, spec wants 3600000" in message
    assert list_topics_with_prefix(bootstrap, spec.names.debezium_topic_prefix + ".") == [orders_topic]
    assert not set(others) & set(list_topics_with_prefix(bootstrap, ""))


def test_a_replication_factor_the_cluster_cannot_meet_is_rejected_and_creates_nothing(bootstrap):
    spec = make_spec(bootstrap, f"it_topics_{secrets.token_hex(4)}", replication_factor=3)
    try:
        with pytest.raises(TopicRequestRejected, match="InvalidReplicationFactor"):
            ensure_topics(spec)
        assert list_topics_with_prefix(bootstrap, spec.names.debezium_topic_prefix) == []
    finally:
        delete_topics(spec)


def test_delete_removes_the_topics_and_a_second_delete_is_a_no_op(spec, bootstrap):
    ensure_topics(spec)

    assert delete_topics(spec) == pipeline_topics(spec)
    assert delete_topics(spec) == []
    assert not set(pipeline_topics(spec)) & set(list_topics_with_prefix(bootstrap, ""))
