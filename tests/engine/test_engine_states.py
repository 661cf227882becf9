"""Each state type and its fields, run to the end on an engine with virtual time."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest

from localsfn import Engine

ARN = "arn:aws:lambda:us-east-1:000000000000:function:"


def end(name: str, state: dict, **more: dict) -> dict:
    """A definition starting at `name`; `state` ends the execution unless it says otherwise."""
    if state["Type"] not in ("Choice", "Succeed", "Fail") and "Next" not in state:
        state = {**state, "End": True}
    return {"StartAt": name, "States": {name: state, **more}}


# ---------------------------------------------------------------------- Pass


def test_pass_result_resultpath_and_output_path(run):
    finished = run(end("P", {"Type": "Pass", "Result": {"slot": "cdcflow_orders"}, "ResultPath": "$.results.slot", "OutputPath": "$.results"}), {"id": "orders"})
    assert finished.status == "SUCCEEDED"
    assert finished.output == {"slot": {"slot": "cdcflow_orders"}}
    assert finished.types == ["ExecutionStarted", "PassStateEntered", "PassStateExited", "ExecutionSucceeded"]


def test_pass_parameters_read_the_context_object(run):
    parameters = {
        "execution_id.$": "$$.Execution.Id",
        "execution_name.$": "$$.Execution.Name",
        "input.$": "$$.Execution.Input",
        "start.$": "$$.Execution.StartTime",
        "role.$": "$$.Execution.RoleArn",
        "machine.$": "$$.StateMachine.Id",
        "machine_name.$": "$$.StateMachine.Name",
        "state.$": "$$.State.Name",
        "entered.$": "$$.State.EnteredTime",
    }
    finished = run(end("Context", {"Type": "Pass", "Parameters": parameters}), {"n": 1}, name="run-1")
    output = finished.output
    assert output["execution_id"] == finished.arn
    assert output["execution_name"] == "run-1"
    assert output["input"] == {"n": 1}
    assert output["machine"] == finished.description["stateMachineArn"]
    assert output["machine_name"] == finished.description["stateMachineArn"].rsplit(":", 1)[1]
    assert output["state"] == "Context"
    assert output["role"].startswith("arn:aws:iam::000000000000:role/")
    assert output["start"].endswith("Z") and output["start"][:19] == finished.description["startDate"].strftime("%Y-%m-%dT%H:%M:%S")
    assert output["entered"].endswith("Z")


def test_input_path_null_gives_an_empty_object_and_result_path_null_keeps_the_input(run):
    definition = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "InputPath": None, "ResultPath": "$.seen", "Next": "B"},
            "B": {"Type": "Pass", "Result": "dropped", "ResultPath": None, "End": True},
        },
    }
    assert run(definition, {"keep": True}).output == {"keep": True, "seen": {}}


def test_a_missing_parameter_path_fails_with_states_runtime_naming_the_state(run):
    finished = run(end("P", {"Type": "Pass", "Parameters": {"x.$": "$.missing"}}), {"present": 1})
    assert finished.status == "FAILED"
    assert finished.error == "States.Runtime"
    assert "state 'P'" in finished.cause and "$.missing" in finished.cause
    assert finished.types == ["ExecutionStarted", "PassStateEntered", "ExecutionFailed"]


# ---------------------------------------------------------------------- Choice, Succeed, Fail


def test_choice_routes_on_the_first_matching_rule_and_applies_output_path(run):
    definition = {
        "StartAt": "Route",
        "States": {
            "Route": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"},
                    {"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Medium"},
                ],
                "Default": "Small",
                "OutputPath": "$.n",
            },
            "Big": {"Type": "Pass", "Result": "big", "End": True},
            "Medium": {"Type": "Pass", "Result": "medium", "End": True},
            "Small": {"Type": "Pass", "Result": "small", "End": True},
        },
    }
    assert run(definition, {"n": 50}).output == "big"
    assert run(definition, {"n": 5}).output == "medium"
    finished = run(definition, {"n": 0})
    assert finished.output == "small"
    assert finished.events("PassStateEntered")[0]["stateEnteredEventDetails"]["input"] == "0"


def test_choice_without_a_match_or_default_fails_with_no_choice_matched(run):
    definition = end("Route", {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "One"}]}, One={"Type": "Succeed"})
    finished = run(definition, {"n": 2})
    assert (finished.status, finished.error) == ("FAILED", "States.NoChoiceMatched")


def test_succeed_applies_input_and_output_paths(run):
    finished = run(end("Done", {"Type": "Succeed", "InputPath": "$.a", "OutputPath": "$.b"}), {"a": {"b": [1, 2]}})
    assert finished.output == [1, 2]
    assert finished.types[-3:] == ["SucceedStateEntered", "SucceedStateExited", "ExecutionSucceeded"]


def test_fail_with_static_error_and_cause(run):
    finished = run(end("Stop", {"Type": "Fail", "Error": "PipelineFailed", "Cause": "slot is in use"}))
    assert (finished.status, finished.error, finished.cause) == ("FAILED", "PipelineFailed", "slot is in use")
    assert finished.types == ["ExecutionStarted", "FailStateEntered", "ExecutionFailed"]


def test_fail_with_error_path_and_an_intrinsic_cause_path(run):
    state = {"Type": "Fail", "ErrorPath": "$.error.name", "CausePath": "States.Format('pipeline {} failed', $.id)"}
    finished = run(end("Stop", state), {"id": "orders", "error": {"name": "SlotBlocked"}})
    assert (finished.error, finished.cause) == ("SlotBlocked", "pipeline orders failed")


# ---------------------------------------------------------------------- Task


def test_task_calls_the_handler_with_event_and_context(run, functions):
    seen = {}

    def handler(event, context):
        seen.update(event=event, name=context.function_name, remaining=context.get_remaining_time_in_millis(), request=context.aws_request_id)
        return {"slot": f"cdcflow_{event['id']}"}

    functions[ARN + "CreateSlot"] = handler
    state = {"Type": "Task", "Resource": ARN + "CreateSlot", "Parameters": {"id.$": "$.id"}, "ResultPath": "$.results.CreateSlot", "TimeoutSeconds": 30}
    finished = run(end("CreateSlot", state), {"id": "orders"})
    assert finished.output == {"id": "orders", "results": {"CreateSlot": {"slot": "cdcflow_orders"}}}
    assert seen["event"] == {"id": "orders"} and seen["name"] == "CreateSlot" and seen["request"]
    assert 0 < seen["remaining"] <= 30_000
    assert finished.types == [
        "ExecutionStarted", "TaskStateEntered", "LambdaFunctionScheduled", "LambdaFunctionStarted",
        "LambdaFunctionSucceeded", "TaskStateExited", "ExecutionSucceeded",
    ]
    scheduled = finished.events("LambdaFunctionScheduled")[0]["lambdaFunctionScheduledEventDetails"]
    assert scheduled["resource"] == ARN + "CreateSlot" and json.loads(scheduled["input"]) == {"id": "orders"}
    assert scheduled["timeoutInSeconds"] == 30


def test_one_argument_callables_get_the_event_only(run, functions):
    functions[ARN + "Double"] = lambda event: event * 2
    assert run(end("T", {"Type": "Task", "Resource": ARN + "Double"}), 21).output == 42


def test_a_handler_cannot_change_the_state_data_behind_the_engine(run, functions):
    def mutate(event, context):
        event["items"].append("sneaky")
        return "ok"

    functions[ARN + "Mutate"] = mutate
    finished = run(end("T", {"Type": "Task", "Resource": ARN + "Mutate", "ResultPath": "$.result"}), {"items": [1]})
    assert finished.output == {"items": [1], "result": "ok"}


def test_result_selector_then_result_path(run, functions):
    functions[ARN + "Describe"] = lambda event, context: {"status": "RUNNING", "tasks": [{"state": "RUNNING"}], "noise": 1}
    state = {"Type": "Task", "Resource": ARN + "Describe", "ResultSelector": {"state.$": "$.status", "first.$": "$.tasks[0].state"}, "ResultPath": "$.connector"}
    assert run(end("T", state), {"id": 1}).output == {"id": 1, "connector": {"state": "RUNNING", "first": "RUNNING"}}


def test_a_handler_exception_becomes_the_lambda_error_named_by_its_class(run, functions):
    class SlotBlockedByLongTransaction(Exception):
        pass

    def blocked(event, context):
        raise SlotBlockedByLongTransaction("transaction 42 holds the slot")

    functions[ARN + "CreateSlot"] = blocked
    finished = run(end("CreateSlot", {"Type": "Task", "Resource": ARN + "CreateSlot"}))
    assert (finished.status, finished.error) == ("FAILED", "SlotBlockedByLongTransaction")
    document = json.loads(finished.cause)
    assert document["errorType"] == "SlotBlockedByLongTransaction"
    assert document["errorMessage"] == "transaction 42 holds the slot"
    assert document["requestId"] and any("blocked" in line for line in document["stackTrace"])
    assert finished.types[-2:] == ["LambdaFunctionFailed", "ExecutionFailed"]


def test_a_result_that_is_not_json_fails_like_the_python_runtime(run, functions):
    functions[ARN + "Bad"] = lambda event, context: {"when": object()}
    finished = run(end("T", {"Type": "Task", "Resource": ARN + "Bad"}))
    assert finished.error == "Runtime.MarshalError"
    assert "Unable to marshal response" in json.loads(finished.cause)["errorMessage"]


def test_an_unknown_function_fails_with_resource_not_found(run):
    finished = run(end("T", {"Type": "Task", "Resource": ARN + "Nowhere"}))
    assert finished.error == "Lambda.ResourceNotFoundException"
    assert ARN + "Nowhere" in finished.cause


def test_lambda_invoke_integration_returns_the_invoke_response(run, functions):
    functions[ARN + "Greet"] = lambda event, context: f"hello {event['name']}"
    state = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "Greet", "Payload": {"name.$": "$.who"}},
    }
    finished = run(end("T", state), {"who": "ada"})
    assert finished.output["Payload"] == "hello ada"
    assert finished.output["StatusCode"] == 200
    assert finished.output["ExecutedVersion"] == "$LATEST"
    assert finished.output["SdkHttpMetadata"]["HttpStatusCode"] == 200
    assert finished.types[2:6] == ["TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskStateExited"]
    scheduled = finished.events("TaskScheduled")[0]["taskScheduledEventDetails"]
    assert scheduled["resourceType"] == "lambda" and scheduled["resource"] == "invoke"
    assert json.loads(scheduled["parameters"]) == {"FunctionName": "Greet", "Payload": {"name": "ada"}}


def test_lambda_invoke_failure_is_task_failed(run, functions):
    def broken(event, context):
        raise ValueError("spec is invalid")

    functions[ARN + "Broken"] = broken
    state = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": ARN + "Broken", "Payload.$": "$"}}
    finished = run(end("T", state))
    assert finished.error == "ValueError"
    failed = finished.events("TaskFailed")[0]["taskFailedEventDetails"]
    assert failed["error"] == "ValueError" and failed["resource"] == "invoke"


def test_a_result_over_256_kib_fails_with_data_limit_exceeded(run, functions):
    functions[ARN + "Big"] = lambda event, context: "x" * (256 * 1024 + 1)
    state = {"Type": "Task", "Resource": ARN + "Big", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]}
    finished = run(end("T", state, Caught={"Type": "Succeed"}))
    # States.ALL does not catch States.DataLimitExceeded.
    assert (finished.status, finished.error) == ("FAILED", "States.DataLimitExceeded")


def test_task_timeout_path_times_out_a_slow_handler(tmp_path):
    # Virtual time stands still while a handler runs, so a timeout needs the real clock.
    release = threading.Event()
    functions = {ARN + "Slow": lambda event, context: release.wait(10)}
    state = {"Type": "Task", "Resource": ARN + "Slow", "TimeoutSecondsPath": "$.timeout"}
    with Engine(tmp_path / "journal.sqlite", functions) as engine:
        machine = engine.create_state_machine("Slow", json.dumps(end("T", state)))
        arn = engine.start_execution(machine, json.dumps({"timeout": 1}))
        try:
            description = engine.wait_for_execution(arn, timeout=10)
        finally:
            release.set()
        types = [event["type"] for event in engine.get_execution_history(arn)]
    assert (description["status"], description["error"]) == ("FAILED", "States.Timeout")
    assert types[-2:] == ["LambdaFunctionTimedOut", "ExecutionFailed"]


# ---------------------------------------------------------------------- Wait


@pytest.mark.parametrize(
    ("field", "value", "execution_input", "seconds"),
    [
        ("Seconds", 3600, {}, 3600),
        ("SecondsPath", "$.delay", {"delay": 90}, 90),
        ("Timestamp", "2027-01-15T08:00:00Z", {}, None),
        ("TimestampPath", "$.until", {"until": "2027-01-15T08:00:00+00:00"}, None),
    ],
)
def test_wait_forms_wait_on_virtual_time(run, field, value, execution_input, seconds):
    finished = run(end("W", {"Type": "Wait", field: value, "Next": "Done"}, Done={"Type": "Succeed"}), execution_input)
    assert finished.status == "SUCCEEDED"
    entered, exited = finished.events("WaitStateEntered")[0], finished.events("WaitStateExited")[0]
    if seconds is not None:
        assert (exited["timestamp"] - entered["timestamp"]).total_seconds() == pytest.approx(seconds, abs=0.01)
    else:
        assert exited["timestamp"] == datetime(2027, 1, 15, 8, 0, tzinfo=UTC)


def test_the_execution_times_out_after_the_definitions_timeout_seconds(run):
    definition = {**end("W", {"Type": "Wait", "Seconds": 3600}), "TimeoutSeconds": 60}
    finished = run(definition)
    assert (finished.status, finished.error) == ("TIMED_OUT", "States.Timeout")
    assert finished.types[-1] == "ExecutionTimedOut"
    assert (finished.history[-1]["timestamp"] - finished.history[0]["timestamp"]).total_seconds() == pytest.approx(60, abs=0.01)


def test_wait_seconds_path_must_be_a_non_negative_integer(run):
    finished = run(end("W", {"Type": "Wait", "SecondsPath": "$.delay"}), {"delay": "soon"})
    assert (finished.status, finished.error) == ("FAILED", "States.Runtime")
    assert "SecondsPath" in finished.cause


# ---------------------------------------------------------------------- Parallel and Map


def test_parallel_outputs_each_branch_in_order(run, functions):
    functions[ARN + "Square"] = lambda event, context: event["n"] ** 2
    definition = end(
        "Fan",
        {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "Sq", "States": {"Sq": {"Type": "Task", "Resource": ARN + "Square", "End": True}}},
                {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "InputPath": "$.n", "End": True}}},
            ],
            "ResultSelector": {"square.$": "$[0]", "n.$": "$[1]"},
            "ResultPath": "$.fan",
        },
    )
    finished = run(definition, {"n": 7})
    assert finished.output == {"n": 7, "fan": {"square": 49, "n": 7}}
    assert finished.types[1:3] == ["ParallelStateEntered", "ParallelStateStarted"]
    assert finished.types[-3:] == ["ParallelStateSucceeded", "ParallelStateExited", "ExecutionSucceeded"]


def test_a_failed_branch_fails_the_parallel_with_its_error_and_catch_applies(run, functions):
    class ConnectorFailed(Exception):
        pass

    def failing(event, context):
        raise ConnectorFailed("sink is FAILED")

    functions[ARN + "Fails"] = failing
    definition = end(
        "Fan",
        {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "Bad", "States": {"Bad": {"Type": "Task", "Resource": ARN + "Fails", "End": True}}},
                {"StartAt": "Long", "States": {"Long": {"Type": "Wait", "Seconds": 86400, "End": True}}},
            ],
            "Catch": [{"ErrorEquals": ["ConnectorFailed"], "ResultPath": "$.error", "Next": "Handled"}],
            "Next": "Never",
        },
        Never={"Type": "Fail", "Error": "Unexpected"},
        Handled={"Type": "Pass", "End": True},
    )
    finished = run(definition, {"id": 1})
    assert finished.status == "SUCCEEDED"
    assert finished.output["error"]["Error"] == "ConnectorFailed"
    assert "WaitStateExited" not in finished.types  # the other branch was stopped
    assert finished.types.index("ParallelStateFailed") < finished.types.index("ParallelStateExited")


def test_map_runs_items_through_item_selector_and_keeps_their_order(run, functions):
    functions[ARN + "Square"] = lambda event, context: {"index": event["index"], "square": event["value"] ** 2, "tag": event["tag"]}
    definition = end(
        "Each",
        {
            "Type": "Map",
            "ItemsPath": "$.numbers",
            "ItemSelector": {"value.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index", "tag.$": "$.tag"},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Sq", "States": {"Sq": {"Type": "Task", "Resource": ARN + "Square", "End": True}}},
            "ResultPath": "$.squares",
        },
    )
    finished = run(definition, {"numbers": [3, 1, 2], "tag": "t"})
    assert finished.output["squares"] == [
        {"index": 0, "square": 9, "tag": "t"},
        {"index": 1, "square": 1, "tag": "t"},
        {"index": 2, "square": 4, "tag": "t"},
    ]
    assert finished.events("MapStateStarted")[0]["mapStateStartedEventDetails"] == {"length": 3}
    assert sorted(event["mapIterationSucceededEventDetails"]["index"] for event in finished.events("MapIterationSucceeded")) == [0, 1, 2]


def test_map_max_concurrency_bounds_the_iterations_in_flight(run, functions):
    lock = threading.Lock()
    in_flight = {"now": 0, "peak": 0}

    def tracked(event, context):
        with lock:
            in_flight["now"] += 1
            in_flight["peak"] = max(in_flight["peak"], in_flight["now"])
        threading.Event().wait(0.02)
        with lock:
            in_flight["now"] -= 1
        return event

    functions[ARN + "Tracked"] = tracked
    definition = end(
        "Each",
        {
            "Type": "Map",
            "MaxConcurrency": 2,
            "Iterator": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": ARN + "Tracked", "End": True}}},
        },
    )
    finished = run(definition, list(range(8)))
    assert finished.output == list(range(8))
    assert in_flight["peak"] == 2


def test_map_over_an_empty_array_outputs_an_empty_array(run):
    definition = end("Each", {"Type": "Map", "ItemsPath": "$.none", "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}})
    finished = run(definition, {"none": []})
    assert finished.output == []
    assert "MapIterationStarted" not in finished.types


def test_map_items_path_must_be_an_array(run):
    definition = end("Each", {"Type": "Map", "ItemsPath": "$.one", "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}})
    finished = run(definition, {"one": {"not": "an array"}})
    assert (finished.status, finished.error) == ("FAILED", "States.Runtime")


def test_nested_map_in_parallel(run):
    inner = {"Type": "Map", "ItemsPath": "$.rows", "ItemProcessor": {"StartAt": "Id", "States": {"Id": {"Type": "Pass", "End": True}}}, "End": True}
    definition = end("Outer", {"Type": "Parallel", "Branches": [{"StartAt": "Inner", "States": {"Inner": inner}}, {"StartAt": "Const", "States": {"Const": {"Type": "Pass", "Result": 1, "End": True}}}]})
    assert run(definition, {"rows": [[1], [2]]}).output == [[[1], [2]], 1]


# ---------------------------------------------------------------------- history shape


def test_history_events_chain_by_previous_event_id(run, functions):
    functions[ARN + "Echo"] = lambda event, context: event
    definition = {
        "StartAt": "A",
        "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Task", "Resource": ARN + "Echo", "End": True}},
    }
    finished = run(definition, {"x": 1})
    ids = [event["id"] for event in finished.history]
    assert ids == list(range(1, len(ids) + 1))
    # AWS links the first StateEntered event to 0, like ExecutionStarted.
    assert [event["previousEventId"] for event in finished.history] == [0, 0, *ids[1:-1]]
    started = finished.history[0]["executionStartedEventDetails"]
    assert json.loads(started["input"]) == {"x": 1} and started["roleArn"]
    succeeded = finished.history[-1]["executionSucceededEventDetails"]
    assert json.loads(succeeded["output"]) == {"x": 1}
