"""The configuration each service is started with."""

from pathlib import Path

import pytest

from cdcflow.local import connect, dynamodb, java, kafka, moto_server, postgres
from cdcflow.local.config import Ports, StackConfig
from cdcflow.local.errors import ToolMissing

CONFIG = StackConfig(
    state_dir=Path("/srv/state"), ports=Ports(kafka=19092, kafka_controller=19093, kafka_sasl=19094, connect=18083)
)


def test_kafka_is_one_kraft_node_on_loopback_with_replication_factor_one():
    properties = kafka.server_properties(CONFIG)

    assert properties["process.roles"] == "broker,controller"
    assert properties["listeners"] == (
        "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093,SASL_SSL://127.0.0.1:19094"
    )
    assert properties["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert properties["log.dirs"] == "/srv/state/kafka/data"
    assert properties["group.initial.rebalance.delay.ms"] == "0"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "default.replication.factor",
    ):
        assert properties[key] == "1"


def test_kafkas_second_listener_takes_scram_over_tls_with_the_stacks_certificate():
    properties = kafka.server_properties(CONFIG)

    assert properties["advertised.listeners"].split(",")[1] == "SASL_SSL://127.0.0.1:19094"
    assert "SASL_SSL:SASL_SSL" in properties["listener.security.protocol.map"].split(",")
    assert properties["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert properties["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"].startswith(
        "org.apache.kafka.common.security.scram.ScramLoginModule required"
    )
    assert properties["listener.name.sasl_ssl.ssl.keystore.type"] == "PEM"
    assert properties["listener.name.sasl_ssl.ssl.keystore.location"] == "/srv/state/kafka/tls/broker-keystore.pem"
    # The broker talks to itself in PLAINTEXT: no password in its own properties.
    assert properties["inter.broker.listener.name"] == "PLAINTEXT"
    assert not [key for key in properties if "password" in key]


def test_connect_resolves_secret_references_through_the_secrets_manager_provider():
    properties = connect.worker_properties(CONFIG)

    assert properties["config.providers"] == "secretsmanager"
    assert properties["config.providers.secretsmanager.class"] == "dev.cdcflow.secrets.SecretsManagerConfigProvider"
    assert properties["config.providers.secretsmanager.param.endpoint"] == f"http://127.0.0.1:{CONFIG.ports.moto}"
    assert not [key for key in properties if "secret" in key.lower() and "key" in key.lower()]


def test_connect_uses_json_with_schemas_and_keeps_plugins_off_the_classpath():
    properties = connect.worker_properties(CONFIG)
    command = connect.command(CONFIG)

    assert properties["bootstrap.servers"] == "127.0.0.1:19094"  # the SASL_SSL listener
    assert properties["security.protocol"] == properties["producer.security.protocol"] == "SASL_SSL"
    assert "${secretsmanager:cdcflow-local/kafka-scram:password}" in properties["consumer.sasl.jaas.config"]
    assert properties["listeners"] == "http://127.0.0.1:18083"
    assert properties["value.converter"] == "org.apache.kafka.connect.json.JsonConverter"
    assert properties["key.converter.schemas.enable"] == properties["value.converter.schemas.enable"] == "true"
    assert properties["plugin.path"] == "/srv/state/jars/plugins"
    assert int(properties["offset.flush.interval.ms"]) <= 5000
    classpath = command[command.index("-cp") + 1]
    assert classpath == "/srv/state/jars/kafka/*"
    assert "-Xmx1g" in command and command[-2] == "org.apache.kafka.connect.cli.ConnectDistributed"


def test_dynamodb_local_binds_loopback_keeps_tables_on_disk_and_finds_its_native_library():
    command = dynamodb.command(StackConfig(state_dir=Path("/srv/state")))

    assert command[-4:] == ["LoopbackDynamoDBLocal", "127.0.0.1", "8000", "/srv/state/dynamodb"]
    assert "-Djava.library.path=/srv/state/jars/dynamodb" in command
    assert "-Xmx256m" in command


def test_moto_binds_loopback():
    assert moto_server.command(CONFIG)[-4:] == ["--host", "127.0.0.1", "--port", "5000"]


def test_postgres_settings_enable_logical_replication_on_loopback_only():
    settings = postgres.SERVER_SETTINGS

    assert settings["wal_level"] == "logical"
    assert settings["listen_addresses"] == "127.0.0.1"
    assert int(settings["max_replication_slots"]) >= 50 and int(settings["max_wal_senders"]) >= 50
    assert int(settings["max_connections"]) >= 200
    assert "127.0.0.1/32            scram-sha-256" in postgres.HBA
    assert "trust" not in postgres.HBA


def test_a_configured_java_home_without_java_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv(java.JAVA_HOME_VARIABLE, str(tmp_path))

    with pytest.raises(ToolMissing, match="has no bin/java"):
        java.java_home()


def test_no_java_17_is_reported_with_the_package_to_install(monkeypatch):
    monkeypatch.delenv(java.JAVA_HOME_VARIABLE, raising=False)
    monkeypatch.setattr(java, "JAVA_HOME_GLOB", "/nonexistent/java-17-*")

    with pytest.raises(ToolMissing, match="Java 17 not found .*openjdk-17-jdk-headless"):
        java.java_home()
