"""The Step Functions API served by localsfn, driven by boto3 and by the AWS CLI, unchanged."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from localsfn import Engine, serve

ARN = "arn:aws:lambda:us-east-1:000000000000:function:"
ROLE = "arn:aws:iam::000000000000:role/api-test"
HELLO = {
    "StartAt": "Greet",
    "States": {
        "Greet": {"Type": "Task", "Resource": ARN + "Greet", "ResultPath": "$.greeting", "Next": "Hold"},
        "Hold": {"Type": "Wait", "Seconds": 600, "End": True},
    },
}
APPROVAL = {
    "StartAt": "Approve",
    "States": {
        "Approve": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": "Ask", "Payload": {"token.$": "$$.Task.Token"}},
            "HeartbeatSeconds": 3600,
            "End": True,
        }
    },
}


@pytest.fixture
def tokens() -> queue.Queue:
    return queue.Queue()


@pytest.fixture
def endpoint(tmp_path: Path, tokens: queue.Queue) -> Iterator[str]:
    functions = {
        ARN + "Greet": lambda event, context: f"hello {event['who']}",
        ARN + "Ask": lambda event, context: tokens.put(event["token"]),
    }
    # The real clock: tests stop executions inside the 600 s Wait and the one-hour heartbeat.
    engine = Engine(tmp_path / "journal.sqlite", functions)
    with serve(engine) as server:
        yield server.endpoint_url
    engine.close()


@pytest.fixture
def client(endpoint: str):
    return boto3.client("stepfunctions", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local")


def wait_for(client, arn: str, kind: str) -> None:
    deadline = time.monotonic() + 10
    while kind not in [event["type"] for event in client.get_execution_history(executionArn=arn)["events"]]:
        assert time.monotonic() < deadline, f"no {kind}"
        time.sleep(0.02)


# ---------------------------------------------------------------------- boto3


def test_create_start_describe_history_and_stop_with_boto3(client):
    created = client.create_state_machine(name="Hello", definition=json.dumps(HELLO), roleArn=ROLE)
    machine = created["stateMachineArn"]
    assert machine == "arn:aws:states:us-east-1:000000000000:stateMachine:Hello"
    described = client.describe_state_machine(stateMachineArn=machine)
    assert (described["name"], described["status"], described["type"], described["roleArn"]) == ("Hello", "ACTIVE", "STANDARD", ROLE)
    assert json.loads(described["definition"]) == HELLO

    started = client.start_execution(stateMachineArn=machine, name="hello-1", input='{"who": "ada"}')
    arn = started["executionArn"]
    assert arn == "arn:aws:states:us-east-1:000000000000:execution:Hello:hello-1"
    wait_for(client, arn, "WaitStateEntered")
    execution = client.describe_execution(executionArn=arn)
    assert (execution["status"], execution["name"], json.loads(execution["input"])) == ("RUNNING", "hello-1", {"who": "ada"})
    assert execution["startDate"] == started["startDate"]

    history = client.get_execution_history(executionArn=arn)["events"]
    assert [event["type"] for event in history] == [
        "ExecutionStarted", "TaskStateEntered", "LambdaFunctionScheduled", "LambdaFunctionStarted",
        "LambdaFunctionSucceeded", "TaskStateExited", "WaitStateEntered",
    ]
    assert json.loads(history[5]["stateExitedEventDetails"]["output"]) == {"who": "ada", "greeting": "hello ada"}

    stopped = client.stop_execution(executionArn=arn, error="Operator", cause="not needed")
    execution = client.describe_execution(executionArn=arn)
    assert (execution["status"], execution["error"], execution["cause"]) == ("ABORTED", "Operator", "not needed")
    assert execution["stopDate"] == stopped["stopDate"]
    assert client.get_execution_history(executionArn=arn, reverseOrder=True)["events"][0]["type"] == "ExecutionAborted"


def test_start_execution_is_idempotent_for_the_same_name_and_input_while_running(client):
    machine = client.create_state_machine(name="Hello", definition=json.dumps(HELLO), roleArn=ROLE)["stateMachineArn"]
    first = client.start_execution(stateMachineArn=machine, name="same", input='{"who": "ada"}')["executionArn"]
    assert client.start_execution(stateMachineArn=machine, name="same", input='{"who": "ada"}')["executionArn"] == first
    with pytest.raises(client.exceptions.ExecutionAlreadyExists):
        client.start_execution(stateMachineArn=machine, name="same", input='{"who": "bob"}')
    client.stop_execution(executionArn=first)
    with pytest.raises(client.exceptions.ExecutionAlreadyExists):
        client.start_execution(stateMachineArn=machine, name="same", input='{"who": "ada"}')


def test_list_executions_filters_and_pages(client):
    machine = client.create_state_machine(name="Hello", definition=json.dumps(HELLO), roleArn=ROLE)["stateMachineArn"]
    arns = [client.start_execution(stateMachineArn=machine, name=f"run-{index}", input='{"who": "x"}')["executionArn"] for index in range(5)]
    client.stop_execution(executionArn=arns[0])
    seen, token = [], None
    while True:
        page = client.list_executions(stateMachineArn=machine, maxResults=2, **({"nextToken": token} if token else {}))
        assert len(page["executions"]) <= 2
        seen += [execution["executionArn"] for execution in page["executions"]]
        token = page.get("nextToken")
        if not token:
            break
    assert sorted(seen) == sorted(arns)
    aborted = client.list_executions(stateMachineArn=machine, statusFilter="ABORTED")["executions"]
    assert [execution["executionArn"] for execution in aborted] == [arns[0]]
    assert {execution["status"] for execution in client.list_executions(stateMachineArn=machine, statusFilter="RUNNING")["executions"]} == {"RUNNING"}


def test_history_pages_and_can_leave_out_data(client):
    machine = client.create_state_machine(name="Hello", definition=json.dumps(HELLO), roleArn=ROLE)["stateMachineArn"]
    arn = client.start_execution(stateMachineArn=machine, input='{"who": "ada"}')["executionArn"]
    wait_for(client, arn, "WaitStateEntered")
    first = client.get_execution_history(executionArn=arn, maxResults=3)
    second = client.get_execution_history(executionArn=arn, maxResults=3, nextToken=first["nextToken"])
    assert [event["id"] for event in first["events"] + second["events"]] == [1, 2, 3, 4, 5, 6]
    bare = client.get_execution_history(executionArn=arn, includeExecutionData=False)["events"]
    assert "input" not in bare[0]["executionStartedEventDetails"]
    assert "output" not in bare[4]["lambdaFunctionSucceededEventDetails"]
    client.stop_execution(executionArn=arn)


def test_task_tokens_through_boto3(client, tokens):
    machine = client.create_state_machine(name="Approval", definition=json.dumps(APPROVAL), roleArn=ROLE)["stateMachineArn"]
    approved = client.start_execution(stateMachineArn=machine, name="approved")["executionArn"]
    token = tokens.get(timeout=10)
    client.send_task_heartbeat(taskToken=token)
    client.send_task_success(taskToken=token, output='{"approved": true}')
    rejected = client.start_execution(stateMachineArn=machine, name="rejected")["executionArn"]
    client.send_task_failure(taskToken=tokens.get(timeout=10), error="Rejected", cause="no")
    for arn in (approved, rejected):
        wait_for(client, arn, "TaskStateExited" if arn == approved else "ExecutionFailed")
    assert json.loads(client.describe_execution(executionArn=approved)["output"]) == {"approved": True}
    failed = client.describe_execution(executionArn=rejected)
    assert (failed["status"], failed["error"], failed["cause"]) == ("FAILED", "Rejected", "no")
    with pytest.raises(client.exceptions.TaskTimedOut):
        client.send_task_success(taskToken=token, output="{}")
    with pytest.raises(client.exceptions.InvalidToken):
        client.send_task_success(taskToken="forged", output="{}")


def test_update_list_and_delete_state_machines(client):
    machine = client.create_state_machine(name="Hello", definition=json.dumps(HELLO), roleArn=ROLE)["stateMachineArn"]
    changed = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    client.update_state_machine(stateMachineArn=machine, definition=json.dumps(changed))
    assert json.loads(client.describe_state_machine(stateMachineArn=machine)["definition"]) == changed
    assert [item["name"] for item in client.list_state_machines()["stateMachines"]] == ["Hello"]
    client.delete_state_machine(stateMachineArn=machine)
    assert client.list_state_machines()["stateMachines"] == []
    with pytest.raises(client.exceptions.StateMachineDoesNotExist):
        client.describe_state_machine(stateMachineArn=machine)


def test_errors_come_back_in_the_aws_shape(client):
    missing_machine = "arn:aws:states:us-east-1:000000000000:stateMachine:Missing"
    with pytest.raises(client.exceptions.StateMachineDoesNotExist):
        client.start_execution(stateMachineArn=missing_machine)
    with pytest.raises(client.exceptions.ExecutionDoesNotExist):
        client.describe_execution(executionArn="arn:aws:states:us-east-1:000000000000:execution:Missing:run")
    with pytest.raises(client.exceptions.InvalidArn):
        client.describe_execution(executionArn="not-an-arn")
    with pytest.raises(client.exceptions.InvalidDefinition) as raised:
        client.create_state_machine(name="Bad", definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}), roleArn=ROLE)
    assert "State 'A'" in raised.value.response["Error"]["Message"]
    with pytest.raises(client.exceptions.InvalidName):
        client.create_state_machine(name="bad name", definition=json.dumps(HELLO), roleArn=ROLE)
    client.create_state_machine(name="Hello", definition=json.dumps(HELLO), roleArn=ROLE)
    with pytest.raises(client.exceptions.StateMachineAlreadyExists):
        client.create_state_machine(name="Hello", definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}), roleArn=ROLE)
    with pytest.raises(client.exceptions.InvalidExecutionInput):
        client.start_execution(stateMachineArn="arn:aws:states:us-east-1:000000000000:stateMachine:Hello", input="{not json")


# ---------------------------------------------------------------------- AWS CLI


def aws(endpoint: str, *arguments: str) -> dict:
    environment = {**os.environ, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1", "AWS_PAGER": ""}
    completed = subprocess.run(
        ["aws", "stepfunctions", *arguments, "--endpoint-url", endpoint, "--output", "json"],
        env=environment, capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout) if completed.stdout.strip() else {}


@pytest.mark.slow
def test_the_aws_cli_works_unchanged(endpoint, tokens, tmp_path):
    definition_file = tmp_path / "approval.asl.json"
    definition_file.write_text(json.dumps(APPROVAL))
    machine = aws(endpoint, "create-state-machine", "--name", "Approval", "--definition", f"file://{definition_file}", "--role-arn", ROLE)["stateMachineArn"]
    arn = aws(endpoint, "start-execution", "--state-machine-arn", machine, "--name", "cli-1", "--input", '{"pipeline": "orders"}')["executionArn"]
    token = tokens.get(timeout=10)
    aws(endpoint, "send-task-heartbeat", "--task-token", token)
    aws(endpoint, "send-task-success", "--task-token", token, "--task-output", '{"approved": true}')
    client = boto3.client("stepfunctions", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local")
    wait_for(client, arn, "ExecutionSucceeded")
    described = aws(endpoint, "describe-execution", "--execution-arn", arn)
    assert (described["status"], json.loads(described["output"])) == ("SUCCEEDED", {"approved": True})
    history = aws(endpoint, "get-execution-history", "--execution-arn", arn)["events"]
    assert history[0]["type"] == "ExecutionStarted" and history[-1]["type"] == "ExecutionSucceeded"
    listed = aws(endpoint, "list-executions", "--state-machine-arn", machine, "--status-filter", "SUCCEEDED")["executions"]
    assert [execution["executionArn"] for execution in listed] == [arn]

    second = aws(endpoint, "start-execution", "--state-machine-arn", machine, "--name", "cli-2")["executionArn"]
    tokens.get(timeout=10)
    aws(endpoint, "stop-execution", "--execution-arn", second, "--cause", "stopped from the CLI")
    assert aws(endpoint, "describe-execution", "--execution-arn", second)["status"] == "ABORTED"
