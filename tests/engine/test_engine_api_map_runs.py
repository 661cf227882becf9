"""Map Runs through boto3: DescribeMapRun, ListMapRuns, the child executions of a Distributed Map and their histories.

Shapes from https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeMapRun.html,
.../API_ListMapRuns.html, .../API_ListExecutions.html (mapRunArn, itemCount) and the developer
guide's pages on Map Runs (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-examine-map-run.html):
a child execution has a history of its own, which the parent's does not repeat.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from localsfn import Engine, serve

ARN = "arn:aws:lambda:us-east-1:000000000000:function:"
ROLE = "arn:aws:iam::000000000000:role/map-run-test"
DISTRIBUTED = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}


def fan(processor_states: dict, **fields) -> str:
    processor = {"ProcessorConfig": DISTRIBUTED, "StartAt": next(iter(processor_states)), "States": processor_states}
    return json.dumps({"StartAt": "Fan", "States": {"Fan": {"Type": "Map", "Label": "Fanout", "ItemProcessor": processor, "End": True, **fields}}})


@pytest.fixture
def flaky() -> dict:
    """The items the Flaky function fails, and how often it ran for each item."""
    return {"failing": set(), "calls": {}}


@pytest.fixture
def gate() -> threading.Event:
    """The Gate function holds each call until this is set."""
    return threading.Event()


@pytest.fixture
def client(tmp_path: Path, flaky: dict, gate: threading.Event) -> Iterator:
    def check(event, context):
        if event.get("fail"):
            raise ValueError(f"item {event['n']} is bad")
        return {"n": event["n"] * 10}

    def flaky_check(event, context):
        flaky["calls"][event] = flaky["calls"].get(event, 0) + 1
        if event in flaky["failing"]:
            raise RuntimeError(f"item {event} failed")
        return event * 10

    def held(event, context):
        assert gate.wait(20), "the gate was never opened"
        if event == "bad":
            raise RuntimeError("a bad item")
        return event

    engine = Engine(tmp_path / "journal.sqlite", {ARN + "Check": check, ARN + "Flaky": flaky_check, ARN + "Gate": held})
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


def _run(client, name: str, definition: str, execution_input) -> tuple[str, dict]:
    machine = client.create_state_machine(name=name, definition=definition, roleArn=ROLE)["stateMachineArn"]
    execution = client.start_execution(stateMachineArn=machine, input=json.dumps(execution_input))["executionArn"]
    return execution, _wait(client, execution)


CHECK = {"Check": {"Type": "Task", "Resource": ARN + "Check", "End": True}}


def test_a_map_run_is_described_listed_and_its_children_are_executions(client):
    items = [{"n": 1}, {"n": 2, "fail": True}, {"n": 3}]
    execution, finished = _run(client, "Orders", fan(CHECK, ToleratedFailureCount=1, MaxConcurrency=2), items)
    assert finished["status"] == "SUCCEEDED"

    runs = client.list_map_runs(executionArn=execution)["mapRuns"]
    assert len(runs) == 1
    run_arn = runs[0]["mapRunArn"]
    assert run_arn.startswith("arn:aws:states:us-east-1:000000000000:mapRun:Orders/Fanout:")
    assert runs[0]["executionArn"] == execution
    assert runs[0]["stateMachineArn"] == "arn:aws:states:us-east-1:000000000000:stateMachine:Orders/Fanout"
    assert runs[0]["stopDate"] >= runs[0]["startDate"]

    described = client.describe_map_run(mapRunArn=run_arn)
    assert (described["status"], described["executionArn"], described["maxConcurrency"]) == ("SUCCEEDED", execution, 2)
    assert (described["toleratedFailureCount"], described["toleratedFailurePercentage"]) == (1, 0.0)
    expected_counts = {"pending": 0, "running": 0, "succeeded": 2, "failed": 1, "timedOut": 0, "aborted": 0, "total": 3,
                       "resultsWritten": 3, "failuresNotRedrivable": 0, "pendingRedrive": 0}
    assert described["itemCounts"] == expected_counts and described["executionCounts"] == expected_counts
    assert described["redriveCount"] == 0 and described["stopDate"] >= described["startDate"]

    children = client.list_executions(mapRunArn=run_arn)["executions"]
    assert sorted(child["status"] for child in children) == ["FAILED", "SUCCEEDED", "SUCCEEDED"]
    assert {child["mapRunArn"] for child in children} == {run_arn} and {child["itemCount"] for child in children} == {1}
    assert {child["stateMachineArn"] for child in children} == {runs[0]["stateMachineArn"]}
    for child in children:
        assert child["executionArn"] == f"arn:aws:states:us-east-1:000000000000:execution:Orders/Fanout:{child['name']}"
    failed_only = client.list_executions(mapRunArn=run_arn, statusFilter="FAILED")["executions"]
    assert len(failed_only) == 1

    failed = client.describe_execution(executionArn=failed_only[0]["executionArn"])
    assert (failed["error"], failed["cause"]) == ("ValueError", failed["cause"]) and "item 2 is bad" in failed["cause"]
    assert failed["mapRunArn"] == run_arn and json.loads(failed["input"]) == {"n": 2, "fail": True}
    assert failed["redriveStatus"] == "REDRIVABLE_BY_MAP_RUN"
    # The parent's executions are listed without the children, and the children carry no machine of their own.
    assert [item["executionArn"] for item in client.list_executions(stateMachineArn=finished["stateMachineArn"])["executions"]] == [execution]


def test_each_child_has_its_own_history_and_the_parent_none_of_their_states(client):
    execution, finished = _run(client, "Histories", fan(CHECK), [{"n": 4}])
    parent = client.get_execution_history(executionArn=execution)["events"]
    assert [event["type"] for event in parent] == [
        "ExecutionStarted", "MapStateEntered", "MapStateStarted", "MapRunStarted", "MapRunSucceeded", "MapStateSucceeded",
        "MapStateExited", "ExecutionSucceeded",
    ]
    assert [event["previousEventId"] for event in parent] == [0, 0, 2, 3, 4, 5, 6, 7]
    run_arn = client.list_map_runs(executionArn=execution)["mapRuns"][0]["mapRunArn"]
    (child,) = client.list_executions(mapRunArn=run_arn)["executions"]
    history = client.get_execution_history(executionArn=child["executionArn"])["events"]
    assert [event["type"] for event in history] == [
        "ExecutionStarted", "TaskStateEntered", "LambdaFunctionScheduled", "LambdaFunctionStarted", "LambdaFunctionSucceeded",
        "TaskStateExited", "ExecutionSucceeded",
    ]
    assert [event["id"] for event in history] == list(range(1, 8))
    assert [event["previousEventId"] for event in history][:3] == [0, 0, 2]
    assert json.loads(history[0]["executionStartedEventDetails"]["input"]) == {"n": 4}
    assert history[0]["executionStartedEventDetails"]["roleArn"] == ROLE
    assert json.loads(history[-1]["executionSucceededEventDetails"]["output"]) == {"n": 40}
    assert json.loads(finished["output"]) == [{"n": 40}]
    machine = client.describe_state_machine_for_execution(executionArn=child["executionArn"])
    assert json.loads(machine["definition"]) == {"StartAt": "Check", "States": CHECK}


def test_a_map_run_over_its_threshold_fails_and_leaves_the_rest_pending(client):
    items = [{"n": 1, "fail": True}, {"n": 2}, {"n": 3}]
    execution, finished = _run(client, "Strict", fan(CHECK, MaxConcurrency=1), items)
    assert (finished["status"], finished["error"]) == ("FAILED", "States.ExceedToleratedFailureThreshold")
    run_arn = client.list_map_runs(executionArn=execution)["mapRuns"][0]["mapRunArn"]
    described = client.describe_map_run(mapRunArn=run_arn)
    assert described["status"] == "FAILED"
    counts = described["executionCounts"]
    assert (counts["failed"], counts["pending"], counts["succeeded"], counts["total"]) == (1, 2, 0, 3)
    failed_event = next(event for event in client.get_execution_history(executionArn=execution)["events"] if event["type"] == "MapRunFailed")
    assert failed_event["mapRunFailedEventDetails"]["error"] == "States.ExceedToleratedFailureThreshold"


def test_stopping_the_parent_aborts_its_running_children_and_the_map_run(client):
    hold = {"Hold": {"Type": "Wait", "Seconds": 600, "End": True}}
    machine = client.create_state_machine(name="Held", definition=fan(hold), roleArn=ROLE)["stateMachineArn"]
    execution = client.start_execution(stateMachineArn=machine, input=json.dumps([1, 2]))["executionArn"]
    deadline = time.monotonic() + 20
    while not (runs := client.list_map_runs(executionArn=execution)["mapRuns"]) or len(client.list_executions(mapRunArn=runs[0]["mapRunArn"])["executions"]) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    run_arn = runs[0]["mapRunArn"]
    assert client.describe_map_run(mapRunArn=run_arn)["executionCounts"]["running"] == 2
    child = client.list_executions(mapRunArn=run_arn)["executions"][0]["executionArn"]
    with pytest.raises(client.exceptions.ValidationException, match="stops with its parent"):
        client.stop_execution(executionArn=child)

    client.stop_execution(executionArn=execution, error="Operator", cause="enough")
    assert client.describe_map_run(mapRunArn=run_arn)["status"] == "ABORTED"
    assert {item["status"] for item in client.list_executions(mapRunArn=run_arn)["executions"]} == {"ABORTED"}
    child_types = [event["type"] for event in client.get_execution_history(executionArn=child)["events"]]
    assert child_types == ["ExecutionStarted", "WaitStateEntered", "ExecutionAborted"]
    parent_types = [event["type"] for event in client.get_execution_history(executionArn=execution)["events"]]
    assert parent_types[-2:] == ["MapRunAborted", "ExecutionAborted"]


def test_batched_children_count_their_items(client):
    count = {"Count": {"Type": "Pass", "Parameters": {"n.$": "States.ArrayLength($.Items)"}, "End": True}}
    execution, finished = _run(client, "Batched", fan(count, ItemBatcher={"MaxItemsPerBatch": 2}), [1, 2, 3, 4, 5])
    assert json.loads(finished["output"]) == [{"n": 2}, {"n": 2}, {"n": 1}]
    run_arn = client.list_map_runs(executionArn=execution)["mapRuns"][0]["mapRunArn"]
    assert sorted(child["itemCount"] for child in client.list_executions(mapRunArn=run_arn)["executions"]) == [1, 2, 2]
    described = client.describe_map_run(mapRunArn=run_arn)
    assert (described["itemCounts"]["total"], described["itemCounts"]["succeeded"], described["executionCounts"]["total"]) == (5, 5, 3)


def test_redriving_a_failed_map_run_reruns_only_its_unsuccessful_children(client, flaky):
    flaky["failing"] = {2}
    definition = fan({"Flaky": {"Type": "Task", "Resource": ARN + "Flaky", "End": True}}, MaxConcurrency=1)
    execution, failed = _run(client, "Redriven", definition, [1, 2, 3])
    assert (failed["status"], failed["error"]) == ("FAILED", "States.ExceedToleratedFailureThreshold")
    run_arn = client.list_map_runs(executionArn=execution)["mapRuns"][0]["mapRunArn"]
    before = {child["name"]: child["status"] for child in client.list_executions(mapRunArn=run_arn)["executions"]}
    assert sorted(before.values()) == ["FAILED", "SUCCEEDED"]  # the third item never started
    events_before = len(client.get_execution_history(executionArn=execution)["events"])

    flaky["failing"] = set()
    client.redrive_execution(executionArn=execution)
    succeeded = _wait(client, execution)
    assert succeeded["status"] == "SUCCEEDED" and json.loads(succeeded["output"]) == [10, 20, 30]
    assert flaky["calls"] == {1: 1, 2: 2, 3: 1}  # the succeeded child kept its output
    assert [run["mapRunArn"] for run in client.list_map_runs(executionArn=execution)["mapRuns"]] == [run_arn]  # the same Map Run
    described = client.describe_map_run(mapRunArn=run_arn)
    assert (described["status"], described["redriveCount"], described["executionCounts"]["succeeded"]) == ("SUCCEEDED", 1, 3)
    assert described["redriveDate"] >= described["startDate"]

    events = client.get_execution_history(executionArn=execution)["events"][events_before:]
    assert [event["type"] for event in events] == [
        "ExecutionRedriven", "MapRunRedriven", "MapRunSucceeded", "MapStateSucceeded", "MapStateExited", "ExecutionSucceeded",
    ]
    assert events[1]["mapRunRedrivenEventDetails"] == {"mapRunArn": run_arn, "redriveCount": 1}
    children = {child["name"]: child for child in client.list_executions(mapRunArn=run_arn)["executions"]}
    redriven = next(name for name, status in before.items() if status == "FAILED")
    assert children[redriven]["redriveCount"] == 1 and children[redriven]["status"] == "SUCCEEDED"
    history = client.get_execution_history(executionArn=children[redriven]["executionArn"])["events"]
    types = [event["type"] for event in history]
    assert types[0] == "ExecutionStarted" and "ExecutionFailed" in types and types[-1] == "ExecutionSucceeded"
    redrive_event = history[types.index("ExecutionRedriven")]
    assert redrive_event["executionRedrivenEventDetails"] == {"redriveCount": 1} and redrive_event["previousEventId"] == redrive_event["id"] - 1
    assert [event["id"] for event in history] == list(range(1, len(history) + 1))
    assert sum(child["redriveCount"] for child in children.values()) == 1


def test_map_run_requests_that_name_nothing_are_refused(client):
    with pytest.raises(client.exceptions.InvalidArn):
        client.describe_map_run(mapRunArn="arn:aws:states:us-east-1:000000000000:stateMachine:Orders")
    with pytest.raises(client.exceptions.ResourceNotFound):
        client.describe_map_run(mapRunArn="arn:aws:states:us-east-1:000000000000:mapRun:Orders/Fanout:0b0e1a4c-7d7e-4f57-9c5e-000000000000")
    with pytest.raises(client.exceptions.ExecutionDoesNotExist):
        client.list_map_runs(executionArn="arn:aws:states:us-east-1:000000000000:execution:Orders:none")
    with pytest.raises(client.exceptions.ClientError, match="Exactly one of stateMachineArn and mapRunArn"):
        client.list_executions()


def _children(client, execution: str, count: int) -> tuple[str, list[dict]]:
    """The Map Run of `execution` once it has `count` child executions, and those children."""
    deadline = time.monotonic() + 20
    while not (runs := client.list_map_runs(executionArn=execution)["mapRuns"]) or len(children := client.list_executions(mapRunArn=runs[0]["mapRunArn"])["executions"]) < count:
        assert time.monotonic() < deadline, f"fewer than {count} children started"
        time.sleep(0.01)
    return runs[0]["mapRunArn"], children


GATE = {"Gate": {"Type": "Task", "Resource": ARN + "Gate", "End": True}}


def test_update_map_run_raises_concurrency_and_starts_the_waiting_children_at_once(client, gate):
    machine = client.create_state_machine(name="Widened", definition=fan(GATE, MaxConcurrency=1), roleArn=ROLE)["stateMachineArn"]
    execution = client.start_execution(stateMachineArn=machine, input=json.dumps(["a", "b", "c"]))["executionArn"]
    run_arn, children = _children(client, execution, 1)
    time.sleep(0.2)  # one child holds the only slot: no second one starts
    assert len(client.list_executions(mapRunArn=run_arn)["executions"]) == 1

    assert client.update_map_run(mapRunArn=run_arn, maxConcurrency=3)["ResponseMetadata"]["HTTPStatusCode"] == 200
    _, children = _children(client, execution, 3)  # started while the first still holds
    assert {child["status"] for child in children} == {"RUNNING"}
    described = client.describe_map_run(mapRunArn=run_arn)
    assert (described["maxConcurrency"], described["executionCounts"]["running"]) == (3, 3)
    gate.set()
    assert _wait(client, execution)["status"] == "SUCCEEDED"
    # UpdateMapRun records no history event: AWS's event types have none for it.
    types = [event["type"] for event in client.get_execution_history(executionArn=execution)["events"]]
    assert types == ["ExecutionStarted", "MapStateEntered", "MapStateStarted", "MapRunStarted", "MapRunSucceeded", "MapStateSucceeded", "MapStateExited", "ExecutionSucceeded"]


def test_update_map_run_lowers_concurrency_and_tolerates_a_failure_it_would_have_failed_on(client, gate):
    definition = fan(GATE, MaxConcurrency=2)
    machine = client.create_state_machine(name="Tolerant", definition=definition, roleArn=ROLE)["stateMachineArn"]
    execution = client.start_execution(stateMachineArn=machine, input=json.dumps(["a", "bad", "c", "d"]))["executionArn"]
    run_arn, _ = _children(client, execution, 2)
    client.update_map_run(mapRunArn=run_arn, maxConcurrency=1, toleratedFailureCount=1, toleratedFailurePercentage=30)
    described = client.describe_map_run(mapRunArn=run_arn)
    assert (described["maxConcurrency"], described["toleratedFailureCount"], described["toleratedFailurePercentage"]) == (1, 1, 30.0)
    gate.set()
    finished = _wait(client, execution)
    assert finished["status"] == "SUCCEEDED"  # without the update the bad item fails the Map Run
    output = json.loads(finished["output"])
    assert output[0] == "a" and output[1]["Error"] == "RuntimeError" and output[2:] == ["c", "d"]
    counts = client.describe_map_run(mapRunArn=run_arn)["executionCounts"]
    assert (counts["succeeded"], counts["failed"], counts["total"]) == (3, 1, 4)


def test_update_map_run_refuses_what_aws_refuses(client, tmp_path: Path):
    unchecked = boto3.client(
        "stepfunctions", endpoint_url=client.meta.endpoint_url, region_name="us-east-1", aws_access_key_id="local",
        aws_secret_access_key="local", config=Config(retries={"max_attempts": 0}, parameter_validation=False),
    )
    execution, _ = _run(client, "Closed", fan(CHECK), [{"n": 1}])
    run_arn = client.list_map_runs(executionArn=execution)["mapRuns"][0]["mapRunArn"]
    with pytest.raises(client.exceptions.ValidationException, match="only a RUNNING Map Run"):
        client.update_map_run(mapRunArn=run_arn, maxConcurrency=2)
    with pytest.raises(client.exceptions.ValidationException, match="Value '-1' at 'maxConcurrency' failed to satisfy constraint: Member must have value greater than or equal to 0"):
        unchecked.update_map_run(mapRunArn=run_arn, maxConcurrency=-1)
    with pytest.raises(client.exceptions.ValidationException, match="2 validation errors detected: .*toleratedFailureCount.*toleratedFailurePercentage.*less than or equal to 100"):
        unchecked.update_map_run(mapRunArn=run_arn, toleratedFailureCount=-3, toleratedFailurePercentage=100.5)
    with pytest.raises(client.exceptions.ValidationException, match="At least one of maxConcurrency"):
        client.update_map_run(mapRunArn=run_arn)
    with pytest.raises(client.exceptions.InvalidArn):
        client.update_map_run(mapRunArn=execution, maxConcurrency=1)
    with pytest.raises(client.exceptions.ResourceNotFound):
        client.update_map_run(mapRunArn="arn:aws:states:us-east-1:000000000000:mapRun:Closed/Fanout:0b0e1a4c-7d7e-4f57-9c5e-000000000000", maxConcurrency=1)
    assert client.describe_map_run(mapRunArn=run_arn)["maxConcurrency"] == 0


# ---------------------------------------------------------------------- across a SIGKILL

RECORD = "arn:aws:lambda:us-east-1:000000000000:function:Record"


@pytest.mark.slow
def test_a_map_run_killed_mid_way_resumes_its_children_with_whole_histories(engine_process):
    processor = {
        "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Record"},
        "Record": {"Type": "Task", "Resource": RECORD, "Parameters": {"step.$": "$.step"}, "End": True},
    }
    client = engine_process.start().client
    machine = client.create_state_machine(name="Killed", definition=fan(processor), roleArn=ROLE)["stateMachineArn"]
    execution = client.start_execution(stateMachineArn=machine, input=json.dumps([{"step": "a"}, {"step": "b"}]))["executionArn"]
    deadline = time.monotonic() + 20
    while not (runs := client.list_map_runs(executionArn=execution)["mapRuns"]) or len(client.list_executions(mapRunArn=runs[0]["mapRunArn"])["executions"]) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    engine_process.kill()  # both children inside their Wait

    client = engine_process.start().client
    deadline = time.monotonic() + 30
    while (description := client.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert description["status"] == "SUCCEEDED"
    assert json.loads(description["output"]) == [{"step": "a"}, {"step": "b"}]
    run_arn = runs[0]["mapRunArn"]
    assert client.describe_map_run(mapRunArn=run_arn)["executionCounts"]["succeeded"] == 2
    for child in client.list_executions(mapRunArn=run_arn)["executions"]:
        assert child["status"] == "SUCCEEDED"
        history = client.get_execution_history(executionArn=child["executionArn"])["events"]
        assert [event["id"] for event in history] == list(range(1, len(history) + 1))
        assert [event["type"] for event in history][0] == "ExecutionStarted" and history[-1]["type"] == "ExecutionSucceeded"
    parent = client.get_execution_history(executionArn=execution)["events"]
    assert [event["id"] for event in parent] == list(range(1, len(parent) + 1))
    assert not any(event["type"].startswith(("Wait", "Task")) for event in parent)
    assert engine_process.runs() == {"a": 1, "b": 1}


@pytest.mark.slow
def test_a_redriven_map_run_killed_mid_way_finishes_its_redriven_child(engine_process):
    # b fails in Check until the execution is redriven ($$.Execution.RedriveCount exists only then); the
    # redrive resumes b in Check, where it failed, not in Route.
    processor = {
        "Route": {"Type": "Choice", "Choices": [{"Variable": "$.step", "StringEquals": "b", "Next": "Check"}], "Default": "Record"},
        "Check": {"Type": "Pass", "Parameters": {"redrives.$": "$$.Execution.RedriveCount"}, "ResultPath": "$.check", "Next": "Pause"},
        "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Record"},
        "Record": {"Type": "Task", "Resource": RECORD, "Parameters": {"step.$": "$.step"}, "End": True},
    }
    client = engine_process.start().client
    # One child at a time: a succeeds before b fails (a child still running when the run fails is aborted, and redriven too).
    machine = client.create_state_machine(name="RedrivenKilled", definition=fan(processor, MaxConcurrency=1), roleArn=ROLE)["stateMachineArn"]
    execution = client.start_execution(stateMachineArn=machine, input=json.dumps([{"step": "a"}, {"step": "b"}]))["executionArn"]
    deadline = time.monotonic() + 20
    while client.describe_execution(executionArn=execution)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    run_arn = client.list_map_runs(executionArn=execution)["mapRuns"][0]["mapRunArn"]
    client.redrive_execution(executionArn=execution)
    engine_process.kill()  # the redriven child is inside its Wait

    client = engine_process.start().client
    deadline = time.monotonic() + 30
    while (description := client.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert description["status"] == "SUCCEEDED" and json.loads(description["output"]) == [{"step": "a"}, {"step": "b"}]
    assert engine_process.runs() == {"a": 1, "b": 1}
    children = client.list_executions(mapRunArn=run_arn)["executions"]
    assert sorted((child["status"], child["redriveCount"]) for child in children) == [("SUCCEEDED", 0), ("SUCCEEDED", 1)]
    redriven = next(child for child in children if child["redriveCount"] == 1)
    history = client.get_execution_history(executionArn=redriven["executionArn"])["events"]
    assert [event["id"] for event in history] == list(range(1, len(history) + 1))
    types = [event["type"] for event in history]
    assert types[types.index("ExecutionFailed") + 1] == "ExecutionRedriven" and types[-1] == "ExecutionSucceeded"
    resumed = history[types.index("ExecutionRedriven") + 1]
    assert resumed["type"] == "PassStateEntered" and resumed["stateEnteredEventDetails"]["name"] == "Check"
    assert json.loads(resumed["stateEnteredEventDetails"]["input"]) == {"step": "b"}
    assert client.describe_map_run(mapRunArn=run_arn)["redriveCount"] == 1


@pytest.fixture
def s3_server() -> Iterator[str]:
    """moto's S3 as a server the engine process reaches (AWS_ENDPOINT_URL_S3); yields its endpoint."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.mark.slow
def test_a_redriven_map_run_of_read_items_killed_mid_way_finishes_without_reading_again(engine_process, s3_server):
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local")
    s3.create_bucket(Bucket="items")
    s3.put_object(Bucket="items", Key="steps.json", Body=json.dumps([{"step": "a"}, {"step": "b"}, {"step": "c"}]))
    engine_process.environment.update(
        AWS_ENDPOINT_URL_S3=s3_server, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local", AWS_DEFAULT_REGION="us-east-1",
    )
    # b fails in Check until the execution is redriven; c never starts before (one child at a time).
    processor = {
        "Route": {"Type": "Choice", "Choices": [{"Variable": "$.step", "StringEquals": "b", "Next": "Check"}], "Default": "Record"},
        "Check": {"Type": "Pass", "Parameters": {"redrives.$": "$$.Execution.RedriveCount"}, "ResultPath": "$.check", "Next": "Pause"},
        "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Record"},
        "Record": {"Type": "Task", "Resource": RECORD, "Parameters": {"step.$": "$.step"}, "End": True},
    }
    reader = {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"}, "Parameters": {"Bucket": "items", "Key": "steps.json"}}
    client = engine_process.start().client
    machine = client.create_state_machine(name="ReadKilled", definition=fan(processor, MaxConcurrency=1, ItemReader=reader), roleArn=ROLE)["stateMachineArn"]
    execution = client.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    failed = engine_process.wait_for_end(execution, timeout=20)
    assert (failed["status"], failed["error"]) == ("FAILED", "States.ExceedToleratedFailureThreshold")
    run_arn = client.list_map_runs(executionArn=execution)["mapRuns"][0]["mapRunArn"]
    assert client.describe_map_run(mapRunArn=run_arn)["executionCounts"]["pending"] == 1

    s3.delete_object(Bucket="items", Key="steps.json")  # the redrive must not need it
    client.redrive_execution(executionArn=execution)
    engine_process.kill()  # b is redriven in Check, then waits in Pause; c is still to start

    client = engine_process.start().client
    description = engine_process.wait_for_end(execution, timeout=30)
    assert description["status"] == "SUCCEEDED" and json.loads(description["output"]) == [{"step": "a"}, {"step": "b"}, {"step": "c"}]
    assert engine_process.runs() == {"a": 1, "b": 1, "c": 1}
    assert [run["mapRunArn"] for run in client.list_map_runs(executionArn=execution)["mapRuns"]] == [run_arn]
    described = client.describe_map_run(mapRunArn=run_arn)
    assert (described["status"], described["redriveCount"], described["executionCounts"]["succeeded"]) == ("SUCCEEDED", 1, 3)
    children = client.list_executions(mapRunArn=run_arn)["executions"]
    assert sorted(child["redriveCount"] for child in children) == [0, 0, 1]
    for child in children:
        history = client.get_execution_history(executionArn=child["executionArn"])["events"]
        assert [event["id"] for event in history] == list(range(1, len(history) + 1)) and history[-1]["type"] == "ExecutionSucceeded"


@pytest.mark.slow
def test_a_redriven_map_run_inside_a_parallel_killed_mid_way_finishes_its_redriven_child(engine_process):
    processor = {
        "Route": {"Type": "Choice", "Choices": [{"Variable": "$.step", "StringEquals": "b", "Next": "Check"}], "Default": "Record"},
        "Check": {"Type": "Pass", "Parameters": {"redrives.$": "$$.Execution.RedriveCount"}, "ResultPath": "$.check", "Next": "Pause"},
        "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Record"},
        "Record": {"Type": "Task", "Resource": RECORD, "Parameters": {"step.$": "$.step"}, "End": True},
    }
    fanned = json.loads(fan(processor, MaxConcurrency=1))
    # b fails at once; Other must have finished by then, or the failure aborts it and the redrive runs it again
    # (as AWS would), which is not what this test is about.
    fanned = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 2, "Next": "Fan"}, **fanned["States"]}}
    other = {"StartAt": "Other", "States": {"Other": {"Type": "Task", "Resource": RECORD, "Parameters": {"step": "other"}, "End": True}}}
    definition = {"StartAt": "Both", "States": {"Both": {"Type": "Parallel", "End": True, "Branches": [other, fanned]}}}
    client = engine_process.start().client
    machine = client.create_state_machine(name="NestedKilled", definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    execution = client.start_execution(stateMachineArn=machine, input=json.dumps([{"step": "a"}, {"step": "b"}, {"step": "c"}]))["executionArn"]
    assert engine_process.wait_for_end(execution, timeout=20)["status"] == "FAILED"
    run_arn = client.list_map_runs(executionArn=execution)["mapRuns"][0]["mapRunArn"]
    client.redrive_execution(executionArn=execution)
    engine_process.kill()  # the redriven child b is in Check or Pause, c still to start

    client = engine_process.start().client
    description = engine_process.wait_for_end(execution, timeout=30)
    assert description["status"] == "SUCCEEDED"
    assert json.loads(description["output"]) == [{"step": "other"}, [{"step": "a"}, {"step": "b"}, {"step": "c"}]]
    assert engine_process.runs() == {"other": 1, "a": 1, "b": 1, "c": 1}
    assert [run["mapRunArn"] for run in client.list_map_runs(executionArn=execution)["mapRuns"]] == [run_arn]
    assert client.describe_map_run(mapRunArn=run_arn)["redriveCount"] == 1
    events = engine_process.history(execution)
    assert [event["id"] for event in events] == list(range(1, len(events) + 1))
    after = [event["type"] for event in events][[event["type"] for event in events].index("ExecutionRedriven"):]
    assert after.count("MapRunRedriven") == 1 and "MapRunStarted" not in after and "ParallelStateEntered" not in after


@pytest.mark.slow
def test_an_updated_map_run_keeps_its_new_settings_across_a_sigkill(engine_process):
    processor = {
        "Pause": {"Type": "Wait", "Seconds": 2, "Next": "Record"},
        "Record": {"Type": "Task", "Resource": RECORD, "Parameters": {"step.$": "$.step"}, "End": True},
    }
    client = engine_process.start().client
    machine = client.create_state_machine(name="UpdatedKilled", definition=fan(processor, MaxConcurrency=1), roleArn=ROLE)["stateMachineArn"]
    steps = [{"step": name} for name in ("a", "b", "c", "d")]
    execution = client.start_execution(stateMachineArn=machine, input=json.dumps(steps))["executionArn"]
    run_arn, _ = _children(client, execution, 1)
    client.update_map_run(mapRunArn=run_arn, maxConcurrency=2, toleratedFailureCount=3)
    _children(client, execution, 2)
    engine_process.kill()  # two children in their Pause, two not started

    client = engine_process.start().client
    described = client.describe_map_run(mapRunArn=run_arn)
    assert (described["maxConcurrency"], described["toleratedFailureCount"]) == (2, 3)
    description = engine_process.wait_for_end(execution, timeout=30)
    assert description["status"] == "SUCCEEDED" and json.loads(description["output"]) == steps
    assert engine_process.runs() == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert client.describe_map_run(mapRunArn=run_arn)["executionCounts"]["succeeded"] == 4
