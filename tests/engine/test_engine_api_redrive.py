"""RedriveExecution through boto3: what may be redriven, what runs again, and the history it leaves; also across a SIGKILL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from localsfn import Engine, serve

ARN = "arn:aws:lambda:us-east-1:000000000000:function:"
ROLE = "arn:aws:iam::000000000000:role/redrive-test"
FLOW = {
    "StartAt": "Reserve",
    "States": {
        "Reserve": {"Type": "Task", "Resource": ARN + "Reserve", "ResultPath": "$.reserved", "Next": "Charge"},
        "Charge": {"Type": "Task", "Resource": ARN + "Charge", "ResultPath": "$.charged", "Next": "Done"},
        "Done": {"Type": "Pass", "Parameters": {"count.$": "$$.Execution.RedriveCount"}, "ResultPath": "$.redrives", "End": True},
    },
}


@pytest.fixture
def calls() -> dict:
    return {"Reserve": 0, "Charge": 0, "charge_fails": True}


@pytest.fixture
def client(tmp_path: Path, calls: dict) -> Iterator:
    def reserve(event, context):
        calls["Reserve"] += 1
        return {"seat": "12A"}

    def charge(event, context):
        calls["Charge"] += 1
        if calls["charge_fails"]:
            raise RuntimeError("card declined")
        return {"paid": True}

    engine = Engine(tmp_path / "journal.sqlite", {ARN + "Reserve": reserve, ARN + "Charge": charge})
    with serve(engine) as server:
        yield boto3.client(
            "stepfunctions", endpoint_url=server.endpoint_url, region_name="us-east-1",
            aws_access_key_id="local", aws_secret_access_key="local", config=Config(retries={"max_attempts": 0}),
        )
    engine.close()


def _wait(client, arn: str) -> dict:
    deadline = time.monotonic() + 20
    while (description := client.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.005)
    return description


def test_a_failed_execution_is_redriven_from_the_failed_state_keeping_earlier_results(client, calls):
    machine = client.create_state_machine(name="Order", definition=json.dumps(FLOW), roleArn=ROLE)["stateMachineArn"]
    execution = client.start_execution(stateMachineArn=machine, input=json.dumps({"order": 7}))["executionArn"]
    failed = _wait(client, execution)
    assert failed["status"] == "FAILED" and failed["error"] == "RuntimeError"
    assert failed["redriveStatus"] == "REDRIVABLE" and failed["redriveCount"] == 0
    events_before = len(client.get_execution_history(executionArn=execution)["events"])

    calls["charge_fails"] = False
    redrive_date = client.redrive_execution(executionArn=execution)["redriveDate"]
    succeeded = _wait(client, execution)
    assert succeeded["status"] == "SUCCEEDED"
    assert json.loads(succeeded["output"]) == {"order": 7, "reserved": {"seat": "12A"}, "charged": {"paid": True}, "redrives": {"count": 1}}
    assert calls["Reserve"] == 1 and calls["Charge"] == 2  # the state that succeeded did not run again
    assert succeeded["redriveCount"] == 1 and succeeded["redriveDate"] == redrive_date
    assert succeeded["redriveStatus"] == "NOT_REDRIVABLE"
    assert succeeded["redriveStatusReason"] == "Execution is SUCCEEDED and cannot be redriven."
    assert "error" not in succeeded

    events = client.get_execution_history(executionArn=execution)["events"]
    redriven = events[events_before]
    assert redriven["type"] == "ExecutionRedriven"
    assert redriven["executionRedrivenEventDetails"] == {"redriveCount": 1}
    assert redriven["previousEventId"] == events_before  # the ExecutionFailed event
    entered = events[events_before + 1]
    assert entered["type"] == "TaskStateEntered" and entered["stateEnteredEventDetails"]["name"] == "Charge"
    assert entered["previousEventId"] == redriven["id"]
    assert json.loads(entered["stateEnteredEventDetails"]["input"]) == {"order": 7, "reserved": {"seat": "12A"}}
    assert [event["id"] for event in events] == list(range(1, len(events) + 1))
    listed = client.list_executions(stateMachineArn=machine)["executions"][0]
    assert listed["redriveCount"] == 1

    with pytest.raises(client.exceptions.ExecutionNotRedrivable, match="SUCCEEDED"):
        client.redrive_execution(executionArn=execution)


def test_a_running_execution_is_not_redrivable_and_an_aborted_one_is(client):
    hold = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 600, "Next": "Done"}, "Done": {"Type": "Pass", "End": True}}}
    machine = client.create_state_machine(name="Hold", definition=json.dumps(hold), roleArn=ROLE)["stateMachineArn"]
    execution = client.start_execution(stateMachineArn=machine)["executionArn"]
    running = client.describe_execution(executionArn=execution)
    assert running["redriveStatus"] == "NOT_REDRIVABLE" and running["redriveStatusReason"] == "Execution is RUNNING and cannot be redriven."
    with pytest.raises(client.exceptions.ExecutionNotRedrivable, match="RUNNING"):
        client.redrive_execution(executionArn=execution)
    client.stop_execution(executionArn=execution)
    assert client.describe_execution(executionArn=execution)["redriveStatus"] == "REDRIVABLE"
    client.redrive_execution(executionArn=execution)
    again = client.describe_execution(executionArn=execution)
    assert again["status"] == "RUNNING" and again["redriveCount"] == 1 and "stopDate" not in again
    with pytest.raises(client.exceptions.ExecutionDoesNotExist):
        client.redrive_execution(executionArn=execution.replace(execution.rsplit(":", 1)[1], "missing"))


RECORD = "arn:aws:lambda:us-east-1:000000000000:function:Record"
PAUSED = {
    "StartAt": "First",
    "States": {
        "First": {"Type": "Task", "Resource": RECORD, "Parameters": {"step": "first"}, "ResultPath": "$.first", "Next": "Pause"},
        "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Second"},
        "Second": {"Type": "Task", "Resource": RECORD, "Parameters": {"step": "second"}, "ResultPath": "$.second", "End": True},
    },
}


@pytest.mark.slow
def test_redrive_survives_sigkill_before_and_after_it(engine_process):
    client = engine_process.start().client
    machine = client.create_state_machine(name="Paused", definition=json.dumps(PAUSED), roleArn=ROLE)["stateMachineArn"]
    execution = client.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    while not any(event["type"] == "WaitStateEntered" for event in client.get_execution_history(executionArn=execution)["events"]):
        time.sleep(0.01)
    client.stop_execution(executionArn=execution, error="Operator", cause="paused by hand")
    engine_process.kill()

    client = engine_process.start().client  # the stop point is in the journal
    client.redrive_execution(executionArn=execution)
    engine_process.kill()  # killed inside the redriven Wait

    client = engine_process.start().client
    deadline = time.monotonic() + 30
    while (description := client.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert description["status"] == "SUCCEEDED" and description["redriveCount"] == 1
    assert json.loads(description["output"]) == {"first": {"step": "first"}, "second": {"step": "second"}}
    assert engine_process.runs() == {"first": 1, "second": 1}
    types = [event["type"] for event in client.get_execution_history(executionArn=execution, maxResults=1000)["events"]]
    assert types.count("ExecutionRedriven") == 1 and types.count("ExecutionAborted") == 1 and types[-1] == "ExecutionSucceeded"
