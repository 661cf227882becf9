"""RedriveExecution of a failed Parallel or inline Map through boto3: only the branches and iterations that failed or were aborted run again.

https://docs.aws.amazon.com/step-functions/latest/apireference/API_RedriveExecution.html: "For workflows
that include an Inline Map or Parallel state, RedriveExecution API action reschedules and redrives only
the iterations and branches that failed or aborted."
"""

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
ROLE = "arn:aws:iam::000000000000:role/redrive-branches"


@pytest.fixture
def flaky() -> dict:
    """The inputs the Work function fails on, and how often it ran for each."""
    return {"failing": set(), "calls": {}}


@pytest.fixture
def client(tmp_path: Path, flaky: dict) -> Iterator:
    def work(event, context):
        flaky["calls"][event] = flaky["calls"].get(event, 0) + 1
        if event in flaky["failing"]:
            raise RuntimeError(f"{event} failed")
        return event * 10

    engine = Engine(tmp_path / "journal.sqlite", {ARN + "Work": work})
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


def _fail_then_redrive(client, flaky: dict, name: str, definition: dict, execution_input, failing: set) -> tuple[dict, list[dict]]:
    flaky["failing"] = failing
    machine = client.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    execution = client.start_execution(stateMachineArn=machine, input=json.dumps(execution_input))["executionArn"]
    assert _wait(client, execution)["status"] == "FAILED"
    before = len(client.get_execution_history(executionArn=execution)["events"])
    flaky["failing"] = set()
    client.redrive_execution(executionArn=execution)
    return _wait(client, execution), client.get_execution_history(executionArn=execution)["events"][before:]


def work(value_path: str = "$") -> dict:
    return {"Type": "Task", "Resource": ARN + "Work", "InputPath": value_path, "End": True}


def test_a_parallel_state_redrives_only_its_failed_branch(client, flaky):
    # A is a Pass state: it has ended before B's call fails (a branch still running then is aborted, and redriven too).
    definition = {"StartAt": "Both", "States": {"Both": {"Type": "Parallel", "End": True, "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "InputPath": "$.a", "End": True}}},
        {"StartAt": "B", "States": {"B": work("$.b")}},
    ]}}}
    succeeded, events = _fail_then_redrive(client, flaky, "Both", definition, {"a": 1, "b": 2}, {2})
    assert succeeded["status"] == "SUCCEEDED" and json.loads(succeeded["output"]) == [1, 20]
    assert flaky["calls"] == {2: 2}
    types = [event["type"] for event in events]
    assert types[0] == "ExecutionRedriven" and types[-3:] == ["ParallelStateSucceeded", "ParallelStateExited", "ExecutionSucceeded"]
    entered = [event["stateEnteredEventDetails"]["name"] for event in events if event["type"].endswith("StateEntered")]
    assert entered == ["B"]  # neither the Parallel state nor the branch that succeeded is entered again


def test_an_inline_map_redrives_its_failed_iteration_and_starts_those_not_started(client, flaky):
    definition = {"StartAt": "Each", "States": {"Each": {"Type": "Map", "MaxConcurrency": 1, "End": True,
        "ItemSelector": {"n.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"StartAt": "Work", "States": {"Work": work("$.n")}}}}}
    succeeded, events = _fail_then_redrive(client, flaky, "Each", definition, [1, 2, 3], {2})
    assert succeeded["status"] == "SUCCEEDED" and json.loads(succeeded["output"]) == [10, 20, 30]
    assert flaky["calls"] == {1: 1, 2: 2, 3: 1}
    started = [event["mapIterationStartedEventDetails"]["index"] for event in events if event["type"] == "MapIterationStarted"]
    assert started == [2]  # the redriven iteration resumes where it was; the one never started starts
    succeeded_iterations = sorted(event["mapIterationSucceededEventDetails"]["index"] for event in events if event["type"] == "MapIterationSucceeded")
    assert succeeded_iterations == [1, 2]


def test_a_failed_iteration_inside_a_parallel_branch_is_all_that_runs_again(client, flaky):
    # One iteration at a time, so 6 has not started when 5 fails (an iteration running then is aborted, and redriven too).
    inner = {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 1, "End": True, "ItemProcessor": {"StartAt": "Work", "States": {"Work": work()}}}
    definition = {"StartAt": "Both", "States": {"Both": {"Type": "Parallel", "End": True, "Branches": [
        {"StartAt": "Single", "States": {"Single": {"Type": "Pass", "Result": 10, "End": True}}},
        {"StartAt": "Many", "States": {"Many": inner}},
    ]}}}
    succeeded, _ = _fail_then_redrive(client, flaky, "Nested", definition, {"single": 1, "items": [4, 5, 6]}, {5})
    assert succeeded["status"] == "SUCCEEDED" and json.loads(succeeded["output"]) == [10, [40, 50, 60]]
    assert flaky["calls"] == {4: 1, 5: 2, 6: 1}


def test_a_failure_in_the_state_itself_reruns_the_whole_state(client, flaky):
    # ResultSelector fails after every branch succeeded: there is no branch to redrive, so the state runs again.
    definition = {"StartAt": "Both", "States": {"Both": {"Type": "Parallel", "ResultSelector": {"x.$": "$[5]"}, "End": True,
        "Branches": [{"StartAt": "A", "States": {"A": work("$.a")}}]}}}
    flaky["failing"] = set()
    machine = client.create_state_machine(name="Selector", definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    execution = client.start_execution(stateMachineArn=machine, input=json.dumps({"a": 1}))["executionArn"]
    assert _wait(client, execution)["status"] == "FAILED"
    client.redrive_execution(executionArn=execution)
    assert _wait(client, execution)["status"] == "FAILED"
    assert flaky["calls"] == {1: 2}


# ---------------------------------------------------------------------- across a SIGKILL

RECORD = "arn:aws:lambda:us-east-1:000000000000:function:Record"


@pytest.mark.slow
def test_a_redriven_branch_killed_mid_way_finishes_without_rerunning_the_other(engine_process):
    record = {"Type": "Task", "Resource": RECORD, "Parameters": {"step.$": "$.step"}, "End": True}
    # B fails in Check until the execution is redriven ($$.Execution.RedriveCount exists only then), a second
    # after A recorded its step; the redrive resumes B in Check, and the engine is killed in B's Pause.
    definition = {"StartAt": "Both", "States": {"Both": {"Type": "Parallel", "End": True, "Branches": [
        {"StartAt": "A", "States": {"A": {**record, "Parameters": {"step": "a"}}}},
        {"StartAt": "Hold", "States": {
            "Hold": {"Type": "Wait", "Seconds": 1, "Next": "Check"},
            "Check": {"Type": "Pass", "Parameters": {"redrives.$": "$$.Execution.RedriveCount"}, "ResultPath": "$.check", "Next": "Pause"},
            "Pause": {"Type": "Wait", "Seconds": 1, "Next": "B"},
            "B": {**record, "Parameters": {"step": "b"}},
        }},
    ]}}}
    client = engine_process.start().client
    machine = client.create_state_machine(name="Branches", definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    execution = client.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    deadline = time.monotonic() + 20
    while client.describe_execution(executionArn=execution)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    client.redrive_execution(executionArn=execution)
    engine_process.kill()

    client = engine_process.start().client
    deadline = time.monotonic() + 30
    while (description := client.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert description["status"] == "SUCCEEDED" and json.loads(description["output"]) == [{"step": "a"}, {"step": "b"}]
    assert engine_process.runs() == {"a": 1, "b": 1}
    events = client.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    assert [event["id"] for event in events] == list(range(1, len(events) + 1))
    after = [event for event in events[[event["type"] for event in events].index("ExecutionRedriven"):] if event["type"].endswith("StateEntered")]
    assert [event["stateEnteredEventDetails"]["name"] for event in after] == ["Check", "Pause", "B"]
