"""Pre-flight against dependencies that do not answer: each mistake is a permanent, named error naming the thing.

Nothing listens on the ports used here, so each refusal is immediate; the
time each mistake takes on the real stack is measured by `bench/preflight`.
The secrets are moto's.
"""

from __future__ import annotations

import json
import socket

import boto3
import pytest

from lambdas import preflight
from lambdas.errors import ConnectUnreachable, KafkaUnreachable, SinkUnreachable, SourceUnreachable
from lambdas.secrets import USE_TAG
from lambdas.spec import parse_spec
from statemachines import PROVISION, render
from statemachines.retry import LAMBDA_ONLY
from tests.unit.factories import raw_spec

pytestmark = pytest.mark.unit


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def secrets(moto):
    client = boto3.client("secretsmanager")
    for name in ("shop/admin", "dw/writer"):
        client.create_secret(Name=name, SecretString=json.dumps({"username": "u", "password": "pw-never-shown-1"}),
                             Tags=[{"Key": USE_TAG, "Value": "true"}])
    return client


def spec(**overrides):
    sink = {"type": "jdbc", "host": "127.0.0.1", "port": closed_port(), "database": "dw", "secret": "dw/writer"}
    return parse_spec(raw_spec(**{"source_host": "127.0.0.1", "source_port": closed_port(),
                                  "bootstrap_servers": f"127.0.0.1:{closed_port()}",
                                  "connect_url": f"http://127.0.0.1:{closed_port()}", "sink": sink, **overrides}))


def test_an_unreachable_source_is_named_by_host_port_and_database(secrets):
    pipeline = spec()
    with pytest.raises(SourceUnreachable) as caught:
        preflight.preflight(pipeline)  # the source is checked first
    message = str(caught.value)
    assert f"127.0.0.1:{pipeline.source.port}" in message and "'shop'" in message
    assert "pw-never-shown-1" not in message


def test_an_unreachable_kafka_is_named_by_its_bootstrap_servers():
    pipeline = spec()
    with pytest.raises(KafkaUnreachable, match=rf"127\.0\.0\.1:{pipeline.kafka.bootstrap_servers.split(':')[1]}"):
        preflight.check_kafka(pipeline)


def test_an_unreachable_connect_is_named_by_its_url():
    pipeline = spec()
    with pytest.raises(ConnectUnreachable, match=pipeline.connect.url):
        preflight.check_connect(pipeline)


def test_an_unreachable_sink_is_named_by_host_port_and_database(secrets):
    pipeline = spec()
    with pytest.raises(SinkUnreachable) as caught:
        preflight.check_sink(pipeline)
    assert f"127.0.0.1:{pipeline.sink.port}" in str(caught.value) and "'dw'" in str(caught.value)


def test_an_opensearch_sink_is_not_a_database_to_check():
    pipeline = spec(sink={"type": "opensearch", "url": "http://127.0.0.1:9200", "secret": "dw/writer"})
    assert preflight.check_sink(pipeline) == {"checked": False, "type": "opensearch"}


def test_preflight_errors_are_not_retried_and_skip_the_compensations():
    state = render.definition(PROVISION)["States"]["Preflight"]
    retried = {error for retrier in state["Retry"] for error in retrier["ErrorEquals"]}
    assert not retried & {"SourceUnreachable", "KafkaUnreachable", "ConnectUnreachable", "SinkUnreachable",
                          "SinkDatabaseMissing", "SinkSchemaNotPermitted", "DatabaseUnavailable", "States.ALL"}
    assert next(step for step in PROVISION.tasks() if step.name == "Preflight").retry == LAMBDA_ONLY
    assert state["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.errors.Preflight", "Next": "MarkFailed"}]
    assert render.definition(PROVISION)["States"]["RegisterPipeline"]["Next"] == "Preflight"
