"""Retry (backoff on virtual time, MaxAttempts, MaxDelaySeconds, jitter) and Catch (ResultPath, order, predefined names)."""

from __future__ import annotations

import json

import pytest

ARN = "arn:aws:lambda:us-east-1:000000000000:function:"


class DatabaseUnavailable(Exception):
    pass


class ConnectorFailed(Exception):
    pass


def failing(times: int, error: type[Exception] = DatabaseUnavailable, result: object = "done"):
    """A handler that raises `error` on its first `times` calls, then returns `result`; `.calls` counts calls."""

    def handler(event, context):
        handler.calls += 1
        if handler.calls <= times:
            raise error(f"attempt {handler.calls} failed")
        return result

    handler.calls = 0
    return handler


def task(name: str, **fields) -> dict:
    return {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": ARN + name, "End": True, **fields}, "Caught": {"Type": "Pass", "End": True}}}


def retry_delays(finished) -> list[float]:
    """Seconds between each LambdaFunctionFailed and the next LambdaFunctionScheduled."""
    delays, failed_at = [], None
    for event in finished.history:
        if event["type"] == "LambdaFunctionFailed":
            failed_at = event["timestamp"]
        elif event["type"] == "LambdaFunctionScheduled" and failed_at is not None:
            delays.append((event["timestamp"] - failed_at).total_seconds())
    return delays


def only(definition: dict) -> dict:
    """Drop the spare Caught state for definitions without a Catch (AWS rejects unreachable states)."""
    del definition["States"]["Caught"]
    return definition


def test_retry_backs_off_exponentially_on_virtual_time(run, functions):
    functions[ARN + "Flaky"] = handler = failing(3)
    retrier = {"ErrorEquals": ["DatabaseUnavailable"], "IntervalSeconds": 2, "BackoffRate": 3.0, "MaxAttempts": 3}
    finished = run(only(task("Flaky", Retry=[retrier])))
    assert finished.status == "SUCCEEDED" and handler.calls == 4
    assert retry_delays(finished) == pytest.approx([2, 6, 18], abs=0.01)


def test_retry_count_is_in_the_context_object(run, functions):
    seen = []

    def handler(event, context):
        seen.append(event["retry"])
        if len(seen) < 3:
            raise DatabaseUnavailable("down")
        return "up"

    functions[ARN + "Counted"] = handler
    finished = run(only(task("Counted", Parameters={"retry.$": "$$.State.RetryCount"}, Retry=[{"ErrorEquals": ["States.ALL"]}])))
    assert finished.status == "SUCCEEDED"
    assert seen == [0, 1, 2]


def test_max_delay_seconds_caps_the_backoff(run, functions):
    functions[ARN + "Flaky"] = failing(4)
    retrier = {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 10, "BackoffRate": 10.0, "MaxDelaySeconds": 60, "MaxAttempts": 4}
    finished = run(only(task("Flaky", Retry=[retrier])))
    assert retry_delays(finished) == pytest.approx([10, 60, 60, 60], abs=0.01)


def test_full_jitter_waits_at_most_the_backoff(run, functions):
    functions[ARN + "Flaky"] = failing(5)
    retrier = {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 8, "BackoffRate": 2.0, "MaxAttempts": 5, "JitterStrategy": "FULL"}
    finished = run(only(task("Flaky", Retry=[retrier])))
    delays = retry_delays(finished)
    assert len(delays) == 5
    assert all(0 <= delay <= limit + 0.01 for delay, limit in zip(delays, [8, 16, 32, 64, 128]))
    assert delays != pytest.approx([8, 16, 32, 64, 128], abs=0.01)  # jittered, not the plain backoff


def test_exhausted_retries_fail_the_execution_with_the_last_error(run, functions):
    functions[ARN + "Down"] = handler = failing(100)
    finished = run(only(task("Down", Retry=[{"ErrorEquals": ["DatabaseUnavailable"], "MaxAttempts": 2}])))
    assert (finished.status, finished.error) == ("FAILED", "DatabaseUnavailable")
    assert handler.calls == 3
    assert json.loads(finished.cause)["errorMessage"] == "attempt 3 failed"


def test_max_attempts_zero_never_retries(run, functions):
    functions[ARN + "Down"] = handler = failing(100)
    finished = run(only(task("Down", Retry=[{"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}])))
    assert finished.status == "FAILED" and handler.calls == 1


def test_only_the_first_matching_retrier_applies(run, functions):
    functions[ARN + "Down"] = handler = failing(100)
    retriers = [
        {"ErrorEquals": ["DatabaseUnavailable"], "MaxAttempts": 1},
        {"ErrorEquals": ["States.ALL"], "MaxAttempts": 5},
    ]
    finished = run(only(task("Down", Retry=retriers)))
    assert finished.status == "FAILED" and handler.calls == 2


def test_catch_writes_error_and_cause_at_its_result_path_keeping_the_input(run, functions):
    functions[ARN + "CreateSlot"] = failing(1, ConnectorFailed)
    catcher = {"ErrorEquals": ["ConnectorFailed"], "ResultPath": "$.errors.CreateSlot", "Next": "Caught"}
    finished = run(task("CreateSlot", Catch=[catcher]), {"spec": {"id": "orders"}})
    assert finished.status == "SUCCEEDED"
    assert finished.output["spec"] == {"id": "orders"}
    caught = finished.output["errors"]["CreateSlot"]
    assert caught["Error"] == "ConnectorFailed" and json.loads(caught["Cause"])["errorMessage"] == "attempt 1 failed"
    assert finished.types[-5:] == ["LambdaFunctionFailed", "TaskStateExited", "PassStateEntered", "PassStateExited", "ExecutionSucceeded"]


def test_retry_runs_before_catch(run, functions):
    functions[ARN + "Down"] = handler = failing(100)
    finished = run(task("Down", Retry=[{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}], Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]))
    assert finished.status == "SUCCEEDED" and handler.calls == 3
    assert finished.output["Error"] == "DatabaseUnavailable"


def test_catchers_are_tried_in_order(run, functions):
    functions[ARN + "Fails"] = failing(1, ConnectorFailed)
    definition = task(
        "Fails",
        Catch=[
            {"ErrorEquals": ["DatabaseUnavailable"], "Next": "Wrong"},
            {"ErrorEquals": ["ConnectorFailed"], "ResultPath": "$.which", "Next": "Caught"},
            {"ErrorEquals": ["States.ALL"], "Next": "Wrong"},
        ],
    )
    definition["States"]["Wrong"] = {"Type": "Fail", "Error": "WrongCatcher"}
    finished = run(definition, {})
    assert finished.status == "SUCCEEDED" and finished.output["which"]["Error"] == "ConnectorFailed"


def test_task_failed_matches_errors_but_not_timeouts(run, functions):
    functions[ARN + "Fails"] = failing(1, ValueError)
    finished = run(task("Fails", Catch=[{"ErrorEquals": ["States.TaskFailed"], "Next": "Caught"}]))
    assert finished.status == "SUCCEEDED" and finished.output["Error"] == "ValueError"


def callback_task(catchers: list[dict], **timeouts: int) -> dict:
    """A waitForTaskToken task whose token nobody sends back, so only a timeout ends it."""
    return {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "Submit", "Payload": {"token.$": "$$.Task.Token"}},
                "Catch": catchers,
                "End": True,
                **timeouts,
            },
            "Wrong": {"Type": "Fail", "Error": "WrongCatcher"},
            "Caught": {"Type": "Pass", "End": True},
        },
    }


def test_task_failed_does_not_match_states_timeout(run, functions):
    functions[ARN + "Submit"] = lambda event, context: None
    catchers = [{"ErrorEquals": ["States.TaskFailed"], "Next": "Wrong"}, {"ErrorEquals": ["States.Timeout"], "Next": "Caught"}]
    finished = run(callback_task(catchers, TimeoutSeconds=60))
    assert finished.status == "SUCCEEDED" and finished.output["Error"] == "States.Timeout"
    timed_out = finished.events("TaskTimedOut")[0]
    assert timed_out["taskTimedOutEventDetails"]["error"] == "States.Timeout"
    assert (timed_out["timestamp"] - finished.events("TaskScheduled")[0]["timestamp"]).total_seconds() == pytest.approx(60, abs=0.01)


def test_heartbeat_timeout_is_its_own_error(run, functions):
    functions[ARN + "Submit"] = lambda event, context: None
    catchers = [{"ErrorEquals": ["States.Timeout"], "Next": "Wrong"}, {"ErrorEquals": ["States.HeartbeatTimeout"], "Next": "Caught"}]
    finished = run(callback_task(catchers, HeartbeatSeconds=30, TimeoutSeconds=600))
    assert finished.status == "SUCCEEDED" and finished.output["Error"] == "States.HeartbeatTimeout"
    assert "TaskSubmitted" in finished.types and "TaskTimedOut" in finished.types


def test_states_all_does_not_catch_states_runtime(run):
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.missing",
                "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                "Retry": [{"ErrorEquals": ["States.ALL"]}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    finished = run(definition, {})
    assert (finished.status, finished.error) == ("FAILED", "States.Runtime")
    assert finished.types.count("MapStateEntered") == 1


def test_a_catch_result_path_through_a_string_fails_with_result_path_match_failure(run, functions):
    functions[ARN + "Fails"] = failing(1, ValueError)
    finished = run(task("Fails", Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.text.inner", "Next": "Caught"}]), {"text": "plain"})
    assert (finished.status, finished.error) == ("FAILED", "States.ResultPathMatchFailure")


def test_retry_on_a_parallel_state_reruns_every_branch(run, functions):
    functions[ARN + "Flaky"] = handler = failing(1)
    functions[ARN + "Steady"] = steady = failing(0, result="steady")
    definition = {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": ARN + "Flaky", "End": True}}},
                    {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": ARN + "Steady", "End": True}}},
                ],
                "Retry": [{"ErrorEquals": ["DatabaseUnavailable"], "IntervalSeconds": 5}],
                "End": True,
            }
        },
    }
    finished = run(definition)
    assert finished.output == ["done", "steady"]
    assert handler.calls == 2 and steady.calls in (1, 2)
    assert finished.types.count("ParallelStateStarted") == 2
