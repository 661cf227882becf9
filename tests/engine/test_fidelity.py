"""Details of history and errors where the engine must answer exactly as AWS does.

Each test names the documented behaviour it checks.
"""

from __future__ import annotations

import pytest

ARN = "arn:aws:lambda:us-east-1:000000000000:function:"


def one(name: str, state: dict) -> dict:
    if state["Type"] not in ("Choice", "Succeed", "Fail") and "Next" not in state:
        state = {**state, "End": True}
    return {"StartAt": name, "States": {name: state}}


def test_first_state_entered_event_links_to_event_zero(run):
    # AWS's example histories (GetExecutionHistory): ExecutionStarted id 1, then the
    # first ...StateEntered id 2 with previousEventId 0; later events chain on.
    finished = run({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "End": True}}})
    links = [(event["id"], event["previousEventId"], event["type"]) for event in finished.history]
    assert links[:4] == [(1, 0, "ExecutionStarted"), (2, 0, "PassStateEntered"), (3, 2, "PassStateExited"), (4, 3, "PassStateEntered")]


def test_hyphenated_field_names_in_context_paths_everywhere(run):
    definition = {
        "StartAt": "Route",
        "States": {
            "Route": {"Type": "Choice", "Choices": [{"Variable": "$$.Execution.Input.input-value", "NumericEquals": 5, "Next": "Read"}]},
            "Read": {"Type": "Pass", "Parameters": {"value.$": "$$.Execution.Input.input-value"}, "InputPath": "$$.Execution.Input", "End": True},
        },
    }
    finished = run(definition, {"input-value": 5})
    assert (finished.status, finished.output) == ("SUCCEEDED", {"value": 5})


def test_choice_is_present_reads_the_context_object(run):
    rule = {"Variable": "$$.Execution.Input.flag", "IsPresent": True, "Next": "Yes"}
    definition = {"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [rule], "Default": "No"}, "Yes": {"Type": "Succeed"}, "No": {"Type": "Fail", "Error": "No"}}}
    assert run(definition, {"flag": 1}).status == "SUCCEEDED"
    assert run(definition, {}).error == "No"


def test_fail_without_cause_inside_a_parallel_leaves_no_cause(run):
    branch = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom"}}}
    finished = run(one("P", {"Type": "Parallel", "Branches": [branch]}))
    assert (finished.status, finished.error) == ("FAILED", "Boom")
    assert "cause" not in finished.description
    assert "cause" not in finished.events("ExecutionFailed")[0]["executionFailedEventDetails"]


@pytest.mark.parametrize(
    ("seconds", "cause"),
    [
        (-1, "The SecondsPath parameter references a negative value: $.delay == -1"),
        (1.5, "The SecondsPath parameter cannot be parsed as a long value: $.delay == 1.5"),
        ("soon", 'The SecondsPath parameter cannot be parsed as a long value: $.delay == "soon"'),
    ],
)
def test_wait_seconds_path_errors_are_worded_as_aws_words_them(run, seconds, cause):
    finished = run(one("W", {"Type": "Wait", "SecondsPath": "$.delay"}), {"delay": seconds})
    assert (finished.status, finished.error, finished.cause) == ("FAILED", "States.Runtime", cause)


def test_retry_count_is_in_the_context_of_task_states_only(run, functions):
    functions[ARN + "Echo"] = lambda event, context: event
    definition = {
        "StartAt": "Pass",
        "States": {
            "Pass": {"Type": "Pass", "Parameters": {"state.$": "$$.State"}, "ResultPath": "$.pass", "Next": "Task"},
            "Task": {"Type": "Task", "Resource": ARN + "Echo", "Parameters": {"state.$": "$$.State"}, "ResultPath": "$.task", "End": True},
        },
    }
    output = run(definition).output
    assert set(output["pass"]["state"]) == {"Name", "EnteredTime"}
    assert output["task"]["state"]["RetryCount"] == 0


@pytest.mark.parametrize("wait", [{"Timestamp": "2099-01-01T00:00:00Z"}, {"Seconds": 99999999}])
def test_wait_beyond_the_maximum_duration_fails_at_once(run, wait):
    # A Standard workflow lasts at most one year: AWS fails a longer Wait with States.Runtime.
    finished = run(one("W", {"Type": "Wait", **wait}))
    assert (finished.status, finished.error) == ("FAILED", "States.Runtime")
    assert "one year" in finished.cause
    assert finished.types == ["ExecutionStarted", "WaitStateEntered", "ExecutionFailed"]
