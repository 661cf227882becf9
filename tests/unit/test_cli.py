"""The operator commands through typer's CliRunner, against the local API server over HTTP.

The API server runs the real handler behind its SigV4 check, with the local
users of a credentials file in the test's own state folder (the commands sign
with its profiles); its registry table and both state machines live in a moto server, which is also the commands' Step Functions
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
from cdcflow.local.credentials import CredentialStore, ensure_credentials, register_principals
from cdcflow.local.connections import ensure_connections_table
from cdcflow.local.tables import ensure_principals_table, ensure_tables
from cdcflow.operate_cli import app
from lambdas import api, aws, connections, executions, registry
from tests.unit.factories import CONNECTIONS, create_state_machine, request_spec, resolved_spec

pytestmark = pytest.mark.unit

SPEC = request_spec()


@pytest.fixture(scope="module")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def credentials_file(tmp_path, monkeypatch):
    """The local users' credentials file of a state folder of the test's own, where the commands look for it."""
    monkeypatch.setenv("CDCFLOW_LOCAL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("CDCFLOW_PROFILE", raising=False)
    path = tmp_path / "state" / "credentials"
    ensure_credentials(path)
    return path


@pytest.fixture
def local_api(moto_endpoint, monkeypatch, credentials_file):
    """The API server on an ephemeral port, with a fresh registry, principals and state machines in moto."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint, "AWS_ENDPOINT_URL_SFN": moto_endpoint,
           "REGISTRY_TABLE": "cdcflow-registry", "PRINCIPALS_TABLE": "cdcflow-principals",
           "CONNECTIONS_TABLE": "cdcflow-connections",
           "POWERTOOLS_METRICS_DISABLED": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SF_EXECUTION_HISTORY_TYPE", raising=False)
    aws.reset_clients()
    ensure_tables(aws.client("dynamodb"), "cdcflow-registry", "cdcflow-idempotency")
    ensure_principals_table(aws.client("dynamodb"), "cdcflow-principals")
    register_principals(ensure_credentials(credentials_file))
    ensure_connections_table(aws.client("dynamodb"), "cdcflow-connections")
    for connection in CONNECTIONS:
        connections.put_connection(connection)
    sfn = aws.client("stepfunctions")
    for variable, name in ((api.PROVISION_STATE_MACHINE_ARN, "ProvisionPipeline"),
                           (api.TEARDOWN_STATE_MACHINE_ARN, "TeardownPipeline"),
                           (api.PAUSE_STATE_MACHINE_ARN, "PausePipeline"),
                           (api.RESUME_STATE_MACHINE_ARN, "ResumePipeline"),
                           (api.UPDATE_STATE_MACHINE_ARN, "UpdatePipeline"),
                           (api.RESYNC_STATE_MACHINE_ARN, "ResyncPipeline"),
                           (api.REBUILD_STATE_MACHINE_ARN, "RebuildPipeline")):
        monkeypatch.setenv(variable, create_state_machine(sfn, name))
    server = serve_api(0, credentials=CredentialStore.from_file(credentials_file))
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
    parsed = resolved_spec(spec)
    execution_arn = executions.execution_arn(
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
    spec = {key: value for key, value in SPEC.items() if key != "cluster"} | {"pipeline_id": "Bad Id"}
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML too

    code, output = run(local_api, moto_endpoint, "provision", str(path))

    assert code == 2
    assert "refused (422)" in output
    assert "  - pipeline_id: " in output
    assert "  - (spec): 'cluster' is a required property" in output


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


@pytest.mark.parametrize("how", ["--profile", "CDCFLOW_PROFILE", "AWS_PROFILE"])
def test_locally_the_commands_sign_with_the_profile_asked_for(local_api, moto_endpoint, credentials_file, how):
    profile = "cdcflow-orders-requester"
    arguments = ["--profile", profile] if how == "--profile" else []
    seen = []
    served = serve_api(0, credentials=CredentialStore.from_file(credentials_file),
                       handler=lambda event, _: seen.append(event["requestContext"]["identity"]["userArn"])
                       or {"statusCode": 200, "body": '{"pipelines": [], "next_token": null}'})
    try:
        result = CliRunner().invoke(app, ["status", *arguments, "--api-url", api_url(served)],
                                    env={} if how == "--profile" else {how: profile})
    finally:
        served.shutdown()
        served.server_close()

    assert result.exit_code == 0, result.output
    assert seen == [f"arn:aws:iam::000000000000:user/{profile}"]


def test_locally_the_admin_signs_by_default(local_api, moto_endpoint):
    seen = []
    code, output = run(local_api, moto_endpoint, "status")

    assert code == 0, output
    # The handler let the request in: the default profile, cdcflow-admin, signed it.
    assert "Missing Authentication Token" not in output and "security token" not in output
    assert seen == []


def test_a_profile_the_local_credentials_file_lacks_is_named_and_exits_2(local_api, moto_endpoint, credentials_file):
    code, output = run(local_api, moto_endpoint, "--profile", "cdcflow-nobody", "status")

    assert code == 2
    assert "cdcflow-nobody" in output and str(credentials_file) in output


def test_without_a_local_credentials_file_the_commands_say_what_creates_it(moto_endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("CDCFLOW_LOCAL_STATE_DIR", str(tmp_path / "never-started"))

    code, output = run("http://127.0.0.1:9", moto_endpoint, "status")

    assert code == 2
    assert "cdcflow local up" in output


def test_status_lists_pipelines_and_shows_one(local_api, moto_endpoint):
    registered_active(SPEC)
    registered_active(request_spec("invoices"))
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
    parsed = resolved_spec(SPEC)
    execution_arn = executions.execution_arn(os.environ[api.PROVISION_STATE_MACHINE_ARN],
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


def test_pause_starts_the_workflow_and_resume_of_an_active_pipeline_is_refused(local_api, moto_endpoint):
    registered_active(SPEC)

    code, output = run(local_api, moto_endpoint, "pause", "orders", "--no-follow")
    refused, refusal = run(local_api, moto_endpoint, "resume", "orders", "--no-follow")

    assert code == 0, output
    assert "pausing orders" in output
    [execution] = aws.client("stepfunctions").list_executions(
        stateMachineArn=os.environ[api.PAUSE_STATE_MACHINE_ARN])["executions"]
    assert execution["executionArn"] in output.replace("\n", "")
    assert refused != 0 and "409" in refusal and execution["executionArn"].rsplit(":", 1)[-1] in refusal


def test_update_with_a_patch_says_what_it_adds_and_starts_the_workflow(local_api, moto_endpoint, tmp_path):
    registered_active(SPEC)
    patch = tmp_path / "add.json"
    patch.write_text(json.dumps({"source": {"tables": [*SPEC["source"]["tables"], "public.items"]}}))
    unchanged = tmp_path / "same.json"
    unchanged.write_text(json.dumps({"source": {"tables": SPEC["source"]["tables"]}}))

    code, output = run(local_api, moto_endpoint, "update", str(patch), "--patch", "--pipeline", "orders",
                       "--no-follow")
    nothing, said = run(local_api, moto_endpoint, "update", str(unchanged), "--patch", "--pipeline", "orders")

    assert code == 0, output
    assert "adding: public.items" in output and "updating orders" in output
    [execution] = aws.client("stepfunctions").list_executions(
        stateMachineArn=os.environ[api.UPDATE_STATE_MACHINE_ARN])["executions"]
    given = json.loads(aws.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])["input"])
    assert given["spec"]["source"]["tables"][-1] == "public.items"
    assert nothing == 0 and "nothing to change" in said


def test_update_of_a_file_without_a_pipeline_id_asks_for_one(local_api, moto_endpoint, tmp_path):
    patch = tmp_path / "add.json"
    patch.write_text(json.dumps({"source": {"tables": ["public.items"]}}))

    code, output = run(local_api, moto_endpoint, "update", str(patch), "--patch")

    assert code == 2 and "--pipeline" in output


def test_watch_follows_the_pause_that_holds_the_pipeline(local_api, moto_endpoint):
    registered_active(SPEC)
    _, output = run(local_api, moto_endpoint, "pause", "orders", "--no-follow")
    [pause] = aws.client("stepfunctions").list_executions(
        stateMachineArn=os.environ[api.PAUSE_STATE_MACHINE_ARN])["executions"]

    code, watched = run(local_api, moto_endpoint, "watch", "orders")

    assert pause["executionArn"] in watched.replace("\n", ""), watched


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

