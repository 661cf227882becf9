"""Local stack settings from the environment, and what endpoints reveal."""

import pytest

from cdcflow.local.config import (
    DEFAULT_STATE_DIR,
    REPO_ROOT,
    Ports,
    StackConfig,
    aws_environment,
    config_from_env,
    endpoints_for,
)


def test_defaults_live_under_the_repository_and_use_the_conventional_ports():
    config = config_from_env({})

    assert config.state_dir == DEFAULT_STATE_DIR == REPO_ROOT / ".cdcflow"
    assert (REPO_ROOT / "pyproject.toml").is_file()
    assert config.ports == Ports(
        postgres=55432, kafka=9092, kafka_controller=9093, connect=8083, dynamodb=8000, moto=5000
    )


def test_ports_and_state_folder_come_from_the_environment(tmp_path):
    config = config_from_env(
        {
            "CDCFLOW_LOCAL_KAFKA_CONTROLLER_PORT": "19093",
            "CDCFLOW_LOCAL_POSTGRES_PORT": "15432",
            "CDCFLOW_LOCAL_STATE_DIR": str(tmp_path),
        }
    )

    assert config.ports.kafka_controller == 19093
    assert config.ports.postgres == 15432
    assert config.ports.kafka == 9092
    assert config.state_dir == tmp_path
    assert config.log_path("kafka") == tmp_path / "logs" / "kafka.log"


@pytest.mark.parametrize("value", ["abc", "0", "70000", "-1", ""])
def test_a_port_that_is_not_a_port_is_rejected_by_name(value):
    with pytest.raises(ValueError, match=f"CDCFLOW_LOCAL_CONNECT_PORT={value!r} is not a TCP port"):
        config_from_env({"CDCFLOW_LOCAL_CONNECT_PORT": value})


def test_the_admin_password_is_in_the_dsn_but_never_in_a_repr():
    endpoints = endpoints_for(StackConfig(), "cdcflow_admin", "s3cret-Pa55")

    assert "s3cret-Pa55" not in repr(endpoints)
    assert "s3cret-Pa55" not in str(endpoints.postgres)
    assert "password=s3cret-Pa55" in endpoints.postgres.source_dsn()
    assert "dbname=source" in endpoints.postgres.source_dsn()
    assert "dbname=sink" in endpoints.postgres.sink_dsn()
    assert "port=55432" in endpoints.postgres.sink_dsn()


def test_every_endpoint_is_on_loopback():
    endpoints = endpoints_for(StackConfig(ports=Ports(kafka=19092, connect=18083)), "admin", "pw")

    assert endpoints.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert endpoints.connect.url == "http://127.0.0.1:18083"
    assert endpoints.dynamodb.url == "http://127.0.0.1:8000"
    assert endpoints.aws.url == "http://127.0.0.1:5000"
    assert (endpoints.aws.source_admin_secret, endpoints.aws.sink_admin_secret) == (
        "cdcflow-local/source-admin",
        "cdcflow-local/sink-admin",
    )


def test_aws_environment_points_each_service_at_its_local_server():
    environment = aws_environment(endpoints_for(StackConfig(ports=Ports(dynamodb=18000, moto=15000)), "a", "pw"))

    assert environment["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:18000"
    for service in ("SECRETS_MANAGER", "RDS", "CLOUDWATCH"):
        assert environment[f"AWS_ENDPOINT_URL_{service}"] == "http://127.0.0.1:15000"
    assert environment["AWS_DEFAULT_REGION"] == "us-east-1"
    assert environment["AWS_ACCESS_KEY_ID"].isalnum() and environment["AWS_SECRET_ACCESS_KEY"].isalnum()
    assert "pw" not in environment.values()
