"""`cdcflow local` commands over a state folder where nothing runs."""

import socket

from typer.testing import CliRunner

from cdcflow.local.cli import app

runner = CliRunner()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_status_of_a_stack_that_is_not_running_lists_every_service_as_down(tmp_path, monkeypatch):
    monkeypatch.setenv("CDCFLOW_LOCAL_STATE_DIR", str(tmp_path))

    result = runner.invoke(app, ["status"])

    assert result.exit_code == 1
    services = ("postgres", "kafka", "connect", "dynamodb", "moto", "engine", "api")
    for service in services:
        assert service in result.output
    assert result.output.count("down") == len(services)


def test_a_bad_port_variable_is_one_error_line(tmp_path, monkeypatch):
    monkeypatch.setenv("CDCFLOW_LOCAL_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CDCFLOW_LOCAL_KAFKA_PORT", "kafka")

    result = runner.invoke(app, ["status"])

    assert result.exit_code == 1
    assert result.output.strip() == "error: CDCFLOW_LOCAL_KAFKA_PORT='kafka' is not a TCP port (1-65535)"


def test_up_with_a_taken_port_fails_with_one_line_naming_port_and_service(tmp_path, monkeypatch):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        monkeypatch.setenv("CDCFLOW_LOCAL_STATE_DIR", str(tmp_path))
        for listener in ("POSTGRES", "KAFKA", "KAFKA_CONTROLLER", "KAFKA_SASL", "CONNECT", "DYNAMODB"):
            monkeypatch.setenv(f"CDCFLOW_LOCAL_{listener}_PORT", str(free_port()))
        monkeypatch.setenv("CDCFLOW_LOCAL_MOTO_PORT", str(port))

        result = runner.invoke(app, ["up"])

    assert result.exit_code == 1
    assert f"error: port {port} needed by moto is already in use by another process" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_down_of_a_stack_that_is_not_running_succeeds(tmp_path, monkeypatch):
    monkeypatch.setenv("CDCFLOW_LOCAL_STATE_DIR", str(tmp_path))

    assert runner.invoke(app, ["down", "--purge"]).exit_code == 0
