"""waitForTaskToken tasks: SendTaskSuccess, SendTaskFailure, SendTaskHeartbeat, stale and foreign tokens."""

from __future__ import annotations

import json
import queue
import time

import pytest

from localsfn import Engine, ServiceError

ARN = "arn:aws:lambda:us-east-1:000000000000:function:"


def approval(**fields) -> dict:
    return {
        "StartAt": "Approve",
        "States": {
            "Approve": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "RequestApproval", "Payload": {"token.$": "$$.Task.Token", "id.$": "$.id"}},
                "ResultPath": "$.decision",
                "End": True,
                **fields,
            }
        },
    }


@pytest.fixture
def tokens(functions) -> queue.Queue:
    """The tokens the RequestApproval function was called with."""
    received: queue.Queue = queue.Queue()
    functions[ARN + "RequestApproval"] = lambda event, context: received.put(event["token"])
    return received


def start(engine, definition: dict, execution_input: dict) -> str:
    machine = engine.create_state_machine("Approval", json.dumps(definition))
    return engine.start_execution(machine, json.dumps(execution_input))


def wait_for_event(engine, arn: str, kind: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while kind not in [event["type"] for event in engine.get_execution_history(arn)]:
        assert time.monotonic() < deadline, f"no {kind} event"
        time.sleep(0.01)


def test_send_task_success_completes_the_task_with_its_output(engine, tokens):
    arn = start(engine, approval(), {"id": "orders"})
    token = tokens.get(timeout=10)
    wait_for_event(engine, arn, "TaskSubmitted")
    engine.send_task_success(token, json.dumps({"approved": True, "by": "ada"}))
    description = engine.wait_for_execution(arn, timeout=10)
    assert description["status"] == "SUCCEEDED"
    assert json.loads(description["output"]) == {"id": "orders", "decision": {"approved": True, "by": "ada"}}
    types = [event["type"] for event in engine.get_execution_history(arn)]
    assert types == [
        "ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSubmitted",
        "TaskSucceeded", "TaskStateExited", "ExecutionSucceeded",
    ]


def test_send_task_failure_fails_the_task_and_catch_applies(engine, tokens):
    definition = approval(Catch=[{"ErrorEquals": ["Rejected"], "ResultPath": "$.rejection", "Next": "Rejected"}])
    definition["States"]["Rejected"] = {"Type": "Fail", "Error": "PipelineRejected", "CausePath": "$.rejection.Cause"}
    arn = start(engine, definition, {"id": "orders"})
    engine.send_task_failure(tokens.get(timeout=10), error="Rejected", cause="not during business hours")
    description = engine.wait_for_execution(arn, timeout=10)
    assert (description["status"], description["error"], description["cause"]) == ("FAILED", "PipelineRejected", "not during business hours")


def test_a_token_works_once(engine, tokens):
    arn = start(engine, approval(), {"id": "orders"})
    token = tokens.get(timeout=10)
    engine.send_task_success(token, "{}")
    engine.wait_for_execution(arn, timeout=10)
    with pytest.raises(ServiceError) as raised:
        engine.send_task_success(token, "{}")
    assert raised.value.code == "TaskTimedOut"


def test_an_unknown_token_is_rejected(engine):
    with pytest.raises(ServiceError) as raised:
        engine.send_task_success("not-a-token", "{}")
    assert raised.value.code == "InvalidToken"


def test_output_must_be_json(engine, tokens):
    start(engine, approval(), {"id": "orders"})
    with pytest.raises(ServiceError) as raised:
        engine.send_task_success(tokens.get(timeout=10), "{not json")
    assert raised.value.code == "InvalidOutput"


def test_heartbeats_push_the_heartbeat_deadline(tmp_path):
    # On virtual time an idle engine jumps straight to the heartbeat deadline; this needs the real clock.
    received: queue.Queue = queue.Queue()
    functions = {ARN + "RequestApproval": lambda event, context: received.put(event["token"])}
    with Engine(tmp_path / "journal.sqlite", functions) as engine:
        arn = start(engine, approval(HeartbeatSeconds=1, TimeoutSeconds=60), {"id": "orders"})
        token = received.get(timeout=10)
        for _ in range(6):  # 2.4 s of heartbeats, each within the 1 s heartbeat window
            time.sleep(0.4)
            engine.send_task_heartbeat(token)
        engine.send_task_success(token, '"approved"')
        description = engine.wait_for_execution(arn, timeout=10)
    assert description["status"] == "SUCCEEDED"
    assert json.loads(description["output"])["decision"] == "approved"


def test_without_heartbeats_the_task_times_out(engine, tokens):
    arn = start(engine, approval(HeartbeatSeconds=60), {"id": "orders"})
    token = tokens.get(timeout=10)
    description = engine.wait_for_execution(arn, timeout=10)
    assert (description["status"], description["error"]) == ("FAILED", "States.HeartbeatTimeout")
    with pytest.raises(ServiceError) as raised:
        engine.send_task_heartbeat(token)
    assert raised.value.code == "TaskTimedOut"


def test_stop_execution_aborts_a_waiting_task(engine, tokens):
    arn = start(engine, approval(), {"id": "orders"})
    tokens.get(timeout=10)
    engine.stop_execution(arn, error="Operator", cause="cancelled by hand")
    description = engine.wait_for_execution(arn, timeout=10)
    assert (description["status"], description["error"], description["cause"]) == ("ABORTED", "Operator", "cancelled by hand")
    assert engine.get_execution_history(arn)[-1]["type"] == "ExecutionAborted"
