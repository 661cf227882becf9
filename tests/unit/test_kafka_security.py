"""A Kafka cluster's security settings, and how a refused login or handshake is named."""

from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from lambdas.connections import ConnectionInvalid, parse_connection
from lambdas.kafka_security import (
    KafkaAuthenticationFailed,
    KafkaSecurity,
    KafkaSecurityMisconfigured,
    KafkaTlsRejected,
    admin_client_options,
    classify_failure,
    kafka_security,
)


@dataclass(frozen=True)
class Cluster:
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    secret: str | None = None
    ca_file: str | None = None


def test_a_cluster_without_security_fields_is_plaintext():
    assert kafka_security(object(), environ={}) == KafkaSecurity()
    assert kafka_security(None, environ={}) == KafkaSecurity()


def test_sasl_ssl_defaults_to_scram_sha_512_and_the_environments_ca():
    security = kafka_security(Cluster("sasl_ssl", secret="kafka/scram"), environ={"CDCFLOW_KAFKA_CA_FILE": "/ca.pem"})
    assert security == KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "kafka/scram", "/ca.pem")


def test_msk_iam_needs_no_secret_and_reads_none(monkeypatch):
    security = kafka_security(Cluster("SASL_SSL", "aws_msk_iam", ca_file="/ca.pem"), environ={})
    assert security == KafkaSecurity("SASL_SSL", "AWS_MSK_IAM", None, "/ca.pem")

    def no_secret_may_be_read(secret_id):
        raise AssertionError(f"read {secret_id}")

    monkeypatch.setattr("lambdas.kafka_security.read_credentials", no_secret_may_be_read)
    options = admin_client_options(security)
    assert options == {"security_protocol": "SASL_SSL", "ssl_check_hostname": True, "ssl_cafile": "/ca.pem",
                       "sasl_mechanism": "AWS_MSK_IAM"}


@pytest.mark.parametrize(
    "cluster, named",
    [
        (Cluster("SASL_PLAINTEXT"), "security_protocol is 'SASL_PLAINTEXT'"),
        (Cluster("SASL_SSL", "PLAIN", "s"), "sasl_mechanism is 'PLAIN'"),
        (Cluster("SASL_SSL"), "needs the secret"),
        (Cluster("SASL_SSL", "AWS_MSK_IAM", "kafka/scram"), "AWS_MSK_IAM signs with the function's role"),
    ],
)
def test_unusable_settings_are_refused_naming_them(cluster, named):
    with pytest.raises(KafkaSecurityMisconfigured, match=named):
        kafka_security(cluster, environ={})


SASL = KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "kafka/scram", "/ca.pem")
TIMEOUT = TimeoutError("Unable to bootstrap from ['b:9094']")


def test_the_brokers_refusal_in_what_kafka_python_logged_is_a_refused_login():
    logged = ["Connection lost: [Error 58] SaslAuthenticationFailedError: SaslAuthenticationFailedError: "
              "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"]
    named = classify_failure(TIMEOUT, "b:9094", SASL, logged)
    assert isinstance(named, KafkaAuthenticationFailed)
    assert "b:9094" in str(named) and "kafka/scram" in str(named) and "invalid credentials" in str(named)


def test_a_failed_certificate_check_is_a_rejected_handshake_naming_the_ca():
    logged = ["Connection failed: KafkaConnectionError: Handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] "
              "certificate verify failed: unable to get local issuer certificate (_ssl.c:1006)"]
    named = classify_failure(TIMEOUT, "b:9094", SASL, logged)
    assert isinstance(named, KafkaTlsRejected)
    assert "/ca.pem" in str(named) and "unable to get local issuer certificate" in str(named)


def test_an_unreachable_broker_is_neither():
    assert classify_failure(TIMEOUT, "b:9094", SASL, ["KafkaConnectionError: Connection refused"]) is None


CLUSTER = {"name": "msk-main", "kind": "cluster", "bootstrap_servers": "b-1.msk.example:9098",
           "connect_url": "http://connect.example:8083", "teams": ["payments"]}


@pytest.mark.parametrize(
    "settings",
    [
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "AWS_MSK_IAM"},
        {"security_protocol": "SASL_SSL", "secret": "cdcflow-admin/kafka"},
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256", "secret": "cdcflow-admin/kafka"},
    ],
)
def test_a_cluster_connection_may_use_scram_with_a_secret_or_msk_iam_without(settings):
    connection = parse_connection({**CLUSTER, **settings})
    assert kafka_security(SimpleNamespace(**settings), environ={}).sasl_mechanism == connection.setting(
        "sasl_mechanism", "SCRAM-SHA-512")


@pytest.mark.parametrize(
    "settings, named",
    [
        ({"security_protocol": "SASL_SSL"}, "secret"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "AWS_MSK_IAM", "secret": "cdcflow-admin/kafka"}, "secret"),
        ({"security_protocol": "SSL", "sasl_mechanism": "AWS_MSK_IAM"}, "security_protocol"),
    ],
)
def test_a_cluster_connection_with_the_wrong_login_settings_is_refused_naming_the_field(settings, named):
    with pytest.raises(ConnectionInvalid) as refused:
        parse_connection({**CLUSTER, **settings})
    assert named in str(refused.value)
