"""cdcflow's Kafka admin client against the local broker's SASL_SSL listener (SCRAM-SHA-512, the stack's CA).

The SCRAM login lives in the stack's Secrets Manager (moto), as a registered
cluster's secret would; this process reads it as a step does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from kafka.admin import NewTopic

from cdcflow.local.config import Endpoints, aws_environment
from cdcflow.local.tls import write_foreign_ca
from lambdas import aws
from lambdas.errors import KafkaUnavailable
from lambdas.kafka_security import KafkaAuthenticationFailed, KafkaTlsRejected, kafka_security
from lambdas.kafka_topics import kafka_admin
from lambdas.preflight import check_kafka
from lambdas.secrets import USE_TAG


@dataclass(frozen=True)
class Cluster:
    """A registered Kafka cluster connection's security fields, as `kafka_security` reads them."""

    bootstrap_servers: str
    security_protocol: str = "SASL_SSL"
    sasl_mechanism: str | None = "SCRAM-SHA-512"
    secret: str | None = None
    ca_file: str | None = None


@pytest.fixture
def stack_secrets(local_stack: Endpoints, monkeypatch) -> Iterator[Endpoints]:
    """This process reads Secrets Manager where the stack's functions do."""
    for name, value in aws_environment(local_stack).items():
        monkeypatch.setenv(name, value)
    aws.reset_clients()
    yield local_stack
    aws.reset_clients()


def sasl_cluster(stack: Endpoints, **changes: str | None) -> Cluster:
    assert stack.kafka.sasl_ssl_bootstrap_servers and stack.kafka.scram_secret
    fields = {"secret": stack.kafka.scram_secret, "ca_file": stack.postgres.ca_file, **changes}
    return Cluster(stack.kafka.sasl_ssl_bootstrap_servers, **fields)


def test_topics_are_created_and_listed_over_sasl_ssl_with_scram(stack_secrets):
    cluster = sasl_cluster(stack_secrets)
    topic = f"cdcflow-it-sasl-{uuid.uuid4().hex[:8]}"
    with kafka_admin(cluster.bootstrap_servers, kafka_security(cluster)) as admin:
        admin.create_topics([NewTopic(topic, 1, 1)])
        try:
            assert topic in admin.list_topics()
            assert len(admin.describe_cluster()["brokers"]) == 1
        finally:
            admin.delete_topics([topic])


def test_a_wrong_scram_password_does_not_get_in(stack_secrets):
    """Refused, and named as a refused login when kafka-python saw the broker's answer.

    kafka-python 3.0 sometimes sees only the broker closing the socket after
    the failed SCRAM exchange and then gives up with a bare bootstrap timeout
    (KafkaUnavailable, transient); about one run in three sees the broker's
    SaslAuthenticationFailed, which becomes KafkaAuthenticationFailed.
    """
    secrets = boto3.client("secretsmanager")
    wrong = f"tests/kafka-wrong-{uuid.uuid4().hex[:8]}"
    secrets.create_secret(Name=wrong, SecretString=json.dumps({"username": "cdcflow", "password": "not-it"}),
                          Tags=[{"Key": USE_TAG, "Value": "true"}])
    try:
        cluster = sasl_cluster(stack_secrets, secret=wrong)
        with pytest.raises((KafkaAuthenticationFailed, KafkaUnavailable)) as caught, kafka_admin(
            cluster.bootstrap_servers, kafka_security(cluster)
        ):
            pass
    finally:
        secrets.delete_secret(SecretId=wrong, ForceDeleteWithoutRecovery=True)
    print(f"{type(caught.value).__name__}: {caught.value}")
    assert cluster.bootstrap_servers in str(caught.value) and "not-it" not in str(caught.value)
    if isinstance(caught.value, KafkaAuthenticationFailed):
        assert "SCRAM-SHA-512" in str(caught.value)


def test_a_broker_certificate_from_another_ca_is_refused(stack_secrets, tmp_path: Path):
    cluster = sasl_cluster(stack_secrets, ca_file=str(write_foreign_ca(tmp_path / "other-ca.crt")))
    with pytest.raises(KafkaTlsRejected) as caught, kafka_admin(cluster.bootstrap_servers, kafka_security(cluster)):
        pass
    assert cluster.bootstrap_servers in str(caught.value) and "other-ca.crt" in str(caught.value)


def test_preflight_checks_a_sasl_ssl_cluster_with_its_login_and_ca(stack_secrets, tmp_path: Path):
    cluster = sasl_cluster(stack_secrets)
    assert check_kafka(SimpleNamespace(kafka=cluster)) == 1

    foreign = sasl_cluster(stack_secrets, ca_file=str(write_foreign_ca(tmp_path / "other-ca.crt")))
    with pytest.raises(KafkaTlsRejected, match="127.0.0.1"):
        check_kafka(SimpleNamespace(kafka=foreign))


def test_an_msk_iam_login_at_a_scram_only_broker_is_named_as_refused(stack_secrets):
    """The AWS_MSK_IAM mechanism reaches the real broker, which offers only SCRAM: the refusal names it.

    The login kafka-python signs with the process's AWS credentials never
    gets as far as being checked; what is tested here is that the mechanism
    is wired through to the handshake and its failure is not a bare timeout.
    """
    cluster = sasl_cluster(stack_secrets, sasl_mechanism="AWS_MSK_IAM", secret=None)
    with pytest.raises((KafkaAuthenticationFailed, KafkaUnavailable)) as caught, kafka_admin(
        cluster.bootstrap_servers, kafka_security(cluster)
    ):
        pass
    print(f"{type(caught.value).__name__}: {caught.value}")
    assert cluster.bootstrap_servers in str(caught.value) and "AWS_MSK_IAM" in str(caught.value)
