"""Express workflows through boto3: StartSyncExecution, and the APIs AWS does not serve for them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from localsfn import Engine, serve

ARN = "arn:aws:lambda:us-east-1:000000000000:function:"
ROLE = "arn:aws:iam::000000000000:role/express-test"
DOUBLE = {"StartAt": "Double", "States": {"Double": {"Type": "Task", "Resource": ARN + "Double", "End": True}}}


@pytest.fixture
def client(tmp_path: Path) -> Iterator:
    def double(event, context):
        if event.get("n") is None:
            raise ValueError("n is missing")
        return {"n": event["n"] * 2}

    engine = Engine(tmp_path / "journal.sqlite", {ARN + "Double": double})
    with serve(engine) as server:
        # botocore sends StartSyncExecution to a `sync-` host unless told not to.
        yield boto3.client(
            "stepfunctions", endpoint_url=server.endpoint_url, region_name="us-east-1",
            aws_access_key_id="local", aws_secret_access_key="local",
            config=Config(retries={"max_attempts": 0}, inject_host_prefix=False),
        )
    engine.close()


@pytest.fixture
def express(client) -> str:
    return client.create_state_machine(name="Doubler", definition=json.dumps(DOUBLE), roleArn=ROLE, type="EXPRESS")["stateMachineArn"]


def test_start_sync_execution_answers_with_the_outcome(client, express):
    answer = client.start_sync_execution(stateMachineArn=express, input=json.dumps({"n": 21}), name="first")
    assert answer["status"] == "SUCCEEDED"
    assert json.loads(answer["output"]) == {"n": 42}
    assert answer["executionArn"].startswith("arn:aws:states:us-east-1:000000000000:express:Doubler:first:")
    assert answer["stateMachineArn"] == express and answer["name"] == "first"
    assert answer["stopDate"] >= answer["startDate"]
    assert answer["billingDetails"]["billedMemoryUsedInMB"] == 64
    assert answer["billingDetails"]["billedDurationInMilliseconds"] % 100 == 0 and answer["billingDetails"]["billedDurationInMilliseconds"] >= 100
    # Express names need not be unique.
    assert client.start_sync_execution(stateMachineArn=express, input=json.dumps({"n": 1}), name="first")["status"] == "SUCCEEDED"


def test_a_failing_sync_execution_answers_failed_with_error_and_cause(client, express):
    answer = client.start_sync_execution(stateMachineArn=express, input="{}")
    assert answer["status"] == "FAILED"
    assert answer["error"] == "ValueError" and "n is missing" in answer["cause"]
    assert "output" not in answer


def test_express_executions_are_not_described_listed_or_given_history(client, express):
    started = client.start_execution(stateMachineArn=express, input=json.dumps({"n": 2}))["executionArn"]
    assert ":express:Doubler:" in started
    with pytest.raises(client.exceptions.InvalidArn, match="express"):
        client.describe_execution(executionArn=started)
    with pytest.raises(client.exceptions.InvalidArn):
        client.get_execution_history(executionArn=started)
    with pytest.raises(client.exceptions.StateMachineTypeNotSupported):
        client.list_executions(stateMachineArn=express)
    assert client.describe_state_machine(stateMachineArn=express)["type"] == "EXPRESS"
    assert client.list_state_machines()["stateMachines"][0]["type"] == "EXPRESS"


def test_sync_execution_of_a_standard_machine_and_task_tokens_in_express_are_refused(client):
    standard = client.create_state_machine(name="Standard", definition=json.dumps(DOUBLE), roleArn=ROLE)["stateMachineArn"]
    with pytest.raises(client.exceptions.StateMachineTypeNotSupported):
        client.start_sync_execution(stateMachineArn=standard, input="{}")
    waits = {"StartAt": "Ask", "States": {"Ask": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": "Ask", "Payload": {"token.$": "$$.Task.Token"}}, "End": True,
    }}}
    with pytest.raises(client.exceptions.InvalidDefinition, match="waitForTaskToken"):
        client.create_state_machine(name="Waits", definition=json.dumps(waits), roleArn=ROLE, type="EXPRESS")
