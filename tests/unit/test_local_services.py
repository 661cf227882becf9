"""The configuration each service is started with."""

from pathlib import Path

import pytest

from cdcflow.local import connect, dynamodb, java, kafka, moto_server, postgres
from cdcflow.local.config import Ports, StackConfig
from cdcflow.local.errors import ToolMissing

CONFIG = StackConfig(state_dir=Path("/srv/state"), ports=Ports(kafka=19092, kafka_controller=19093, connect=18083))


def test_kafka_is_one_kraft_node_on_loopback_with_replication_factor_one():
    properties = kafka.server_properties(CONFIG)

    assert properties["process.roles"] == "broker,controller"
    assert properties["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert properties["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert properties["log.dirs"] == "/srv/state/kafka/data"
    assert properties["group.initial.rebalance.delay.ms"] == "0"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "default.replication.factor",
    ):
        assert properties[key] == "1"


def test_connect_uses_json_with_schemas_and_keeps_plugins_off_the_classpath():
    properties = connect.worker_properties(CONFIG)
    command = connect.command(CONFIG)

    assert properties["bootstrap.servers"] == "127.0.0.1:19092"
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
