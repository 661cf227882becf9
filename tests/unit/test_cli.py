"""The operator commands through typer's CliRunner, against the local API server over HTTP.

The API server runs the real handler; its registry table and both state
machines live in a moto server, which is also the commands' Step Functions
endpoint. moto records executions without running them and answers
GetExecutionHistory with a short recorded history (SF_EXECUTION_HISTORY_TYPE
picks the succeeding or the failing one), which the commands follow.
"""

import json
import os
import socket

import pytest
import requests
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from cdcflow.api_server import api_url, serve_api
from cdcflow.operate_cli import app
from lambdas import api, aws, registry
from lambdas.local_tables import ensure_tables
from lambdas.spec import parse_spec

pytestmark = pytest.mark.unit

SPEC = {
    "pipeline_id": "orders",
    "owner": "payments",
    "source": {"host": "db.internal", "port": 5432, "database": "shop", "admin_secret": "cdcflow-admin/shop",
               "tables": ["public.orders"]},
    "kafka": {"bootstrap_servers": "kafka:9092"},
    "connect": {"url": "http://connect:8083"},
    "sink": {"type": "jdbc", "host": "warehouse", "port": 5432, "database": "dw", "secret": "cdcflow-sink/dw"},
}


@pytest.fixture(scope="module")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def local_api(moto_endpoint, monkeypatch):
    """The API server on an ephemeral port, with a fresh registry and state machines in moto."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint, "AWS_ENDPOINT_URL_SFN": moto_endpoint,
           "REGISTRY_TABLE": "cdcflow-registry", "POWERTOOLS_METRICS_DISABLED": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SF_EXECUTION_HISTORY_TYPE", raising=False)
    aws.reset_clients()
    ensure_tables(aws.client("dynamodb"), "cdcflow-registry", "cdcflow-idempotency")
    sfn = aws.client("stepfunctions")
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
    for variable, name in ((api.PROVISION_STATE_MACHINE_ARN, "ProvisionPipeline"),
                           (api.TEARDOWN_STATE_MACHINE_ARN, "TeardownPipeline")):
        arn = sfn.create_state_machine(name=name, definition=definition,
                                       roleArn="arn:aws:iam::123456789012:role/workflows")["stateMachineArn"]
        monkeypatch.setenv(variable, arn)
    server = serve_api(0)
    yield api_url(server)
    server.shutdown()
    server.server_close()
    aws.reset_clients()


def run(local_api: str, moto_endpoint: str, *arguments: str):
    result = CliRunner().invoke(app, [*arguments, "--api-url", local_api, "--sfn-endpoint", moto_endpoint],
                                env={"COLUMNS": "200"})
    return result.exit_code, result.output


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "orders.json"
    path.write_text(json.dumps(SPEC))
    return path


def registered_active(spec: dict) -> str:
    """Register the pipeline as RegisterPipeline and MarkPipeline would for the API's execution; its ARN."""
    parsed = parse_spec(spec)
    execution_arn = api.execution_arn(
        os.environ[api.PROVISION_STATE_MACHINE_ARN], parsed.names.execution_name(parsed.fingerprint()))
    registry.register(parsed, execution_arn)
    registry.mark(spec["pipeline_id"], "ACTIVE")
    return execution_arn


def test_provision_follows_the_execution_and_ends_with_the_pipeline_status(local_api, moto_endpoint, spec_file):
    execution_arn = registered_active(SPEC)

    code, output = run(local_api, moto_endpoint, "provision", str(spec_file))

    assert code == 0, output
    assert execution_arn in output
    assert "A State" in output  # the step in moto's recorded history
    assert "orders is ACTIVE" in output


def test_provision_of_a_failing_execution_prints_error_and_cause_and_exits_1(
        local_api, moto_endpoint, spec_file, monkeypatch):
    monkeypatch.setenv("SF_EXECUTION_HISTORY_TYPE", "FAILURE")

    code, output = run(local_api, moto_endpoint, "provision", str(spec_file))

    assert code == 1, output
    assert "execution FAILED: AnError: An error occurred!" in output  # moto's failing history
    assert "✗ A State" in output


def test_provision_without_following_returns_once_started(local_api, moto_endpoint, spec_file):
    code, output = run(local_api, moto_endpoint, "provision", str(spec_file), "--no-follow")

    assert code == 0, output
    assert "provisioning orders" in output and "RUNNING" in output
    executions = aws.client("stepfunctions").list_executions(
        stateMachineArn=os.environ[api.PROVISION_STATE_MACHINE_ARN])["executions"]
    assert len(executions) == 1


def test_an_invalid_spec_prints_each_problem_and_exits_2(local_api, moto_endpoint, tmp_path):
    spec = {**SPEC, "pipeline_id": "Bad Id", "kafka": {}}
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML too

    code, output = run(local_api, moto_endpoint, "provision", str(path))

    assert code == 2
    assert "refused (422)" in output
    assert "  - pipeline_id: " in output
    assert "  - kafka: 'bootstrap_servers' is a required property" in output


def test_a_spec_file_that_does_not_parse_is_named_and_exits_2(local_api, moto_endpoint, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{")

    code, output = run(local_api, moto_endpoint, "provision", str(path))

    assert code == 2
    assert "broken.json is not valid JSON" in output


def test_an_unreachable_api_is_one_line_naming_it_and_exits_3(moto_endpoint, spec_file):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_url = f"http://127.0.0.1:{probe.getsockname()[1]}"

    code, output = run(closed_url, moto_endpoint, "provision", str(spec_file))

    assert code == 3
    assert output.strip().splitlines() == [f"error: cannot reach the pipelines API at {closed_url}: ConnectionError"]


def test_an_unreachable_engine_is_named_and_exits_3(local_api, spec_file):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_url = f"http://127.0.0.1:{probe.getsockname()[1]}"

    code, output = run(local_api, closed_url, "provision", str(spec_file))

    assert code == 3
    assert f"cannot reach Step Functions at {closed_url}" in output


def test_aws_mode_needs_the_api_url():
    result = CliRunner().invoke(app, ["status", "--aws", "--region", "eu-west-1"])

    assert result.exit_code == 2
    assert "--api-url is required" in result.output


def test_status_lists_pipelines_and_shows_one(local_api, moto_endpoint):
    registered_active(SPEC)
    registered_active({**SPEC, "pipeline_id": "invoices"})
    registry.mark("invoices", "FAILED", current_step="CreateSlot", error="SlotBlockedByLongTransaction",
                  cause="transaction 812 is open [/] [red]")  # printed as written, not as markup

    code, listing = run(local_api, moto_endpoint, "status")
    assert code == 0, listing
    assert "orders" in listing and "invoices" in listing and "ACTIVE" in listing and "FAILED" in listing

    code, failed_only = run(local_api, moto_endpoint, "status", "--status", "FAILED")
    assert code == 0 and "invoices" in failed_only and "orders" not in failed_only

    code, details = run(local_api, moto_endpoint, "status", "invoices")
    assert code == 0, details
    assert "CreateSlot" in details
    assert "SlotBlockedByLongTransaction: transaction 812 is open [/] [red]" in details


def test_status_of_an_unknown_pipeline_exits_2_naming_it(local_api, moto_endpoint):
    code, output = run(local_api, moto_endpoint, "status", "missing")

    assert code == 2
    assert "refused (404): no pipeline 'missing'" in output


def test_watch_and_history_read_the_registered_execution(local_api, moto_endpoint, spec_file):
    run(local_api, moto_endpoint, "provision", str(spec_file), "--no-follow")
    parsed = parse_spec(SPEC)
    execution_arn = api.execution_arn(os.environ[api.PROVISION_STATE_MACHINE_ARN],
                                      parsed.names.execution_name(parsed.fingerprint()))
    registry.register(parsed, execution_arn)
    registry.mark("orders", "ACTIVE")

    code, watched = run(local_api, moto_endpoint, "watch", "orders")
    assert code == 0, watched
    assert "A State" in watched and "orders is ACTIVE" in watched

    code, history = run(local_api, moto_endpoint, "history", "orders")
    assert code == 0, history
    for event_type in ("ExecutionStarted", "PassStateEntered", "PassStateExited", "ExecutionSucceeded"):
        assert event_type in history


def test_teardown_starts_the_workflow_with_keep_topics(local_api, moto_endpoint):
    registered_active(SPEC)

    code, output = run(local_api, moto_endpoint, "teardown", "orders", "--keep-topics", "--no-follow")

    assert code == 0, output
    assert "tearing down orders" in output
    sfn = aws.client("stepfunctions")
    [execution] = sfn.list_executions(
        stateMachineArn=os.environ[api.TEARDOWN_STATE_MACHINE_ARN])["executions"]
    assert json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])["keep_topics"] is True


def test_approve_and_reject_answer_a_pending_approval(local_api, moto_endpoint):
    registered_active(SPEC)
    registry.store_task_token("orders", "token-1")

    code, output = run(local_api, moto_endpoint, "approve", "orders", "--comment", "go")
    assert code == 0, output
    assert "approved: orders" in output
    assert registry.pop_task_token("orders") is None

    code, output = run(local_api, moto_endpoint, "reject", "orders", "--reason", "not now")
    assert code == 2
    assert "not waiting for an approval" in output

    registry.store_task_token("orders", "token-2")
    code, output = run(local_api, moto_endpoint, "reject", "orders", "--reason", "not now")
    assert code == 0 and "rejected: orders" in output

