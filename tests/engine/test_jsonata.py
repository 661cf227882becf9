"""JSONata states: Arguments, Output, Assign, Condition, Items, $states and AWS's functions.

Behaviour from https://docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html
and https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from localsfn.errors import DefinitionInvalid, StatesError
from localsfn.jsonata import evaluate, render
from localsfn.validation import validate

ARN = "arn:aws:lambda:us-east-1:000000000000:function:"


def jsonata(states: dict, start: str | None = None) -> dict:
    return {"QueryLanguage": "JSONata", "StartAt": start or next(iter(states)), "States": states}


# ---------------------------------------------------------------------- the evaluator


def test_render_evaluates_expressions_all_the_way_down():
    bindings = {"states": {"input": {"n": [1, 2, 3]}}, "limit": 2}
    template = {"total": "{% $sum($states.input.n) %}", "plain": "text", "list": ["{% $limit * 2 %}", 5]}
    assert render(template, bindings, "Output") == {"total": 6, "plain": "text", "list": [4, 5]}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$partition([1,2,3,4,5], 2)", [[1, 2], [3, 4], [5]]),
        ("$range(0, 10, 5)", [0, 5, 10]),
        ("$hash('abc', 'SHA-256')", hashlib.sha256(b"abc").hexdigest()),
        ("$parse('{\"a\": [1]}')", {"a": [1]}),
        ("$random(7) = $random(7)", True),
        ("$length($uuid())", 36),
    ],
)
def test_functions_aws_adds(expression, expected):
    assert evaluate("{% " + expression + " %}", {"states": {}}, "Output") == expected


def test_eval_is_refused_as_on_aws():
    with pytest.raises(StatesError) as refused:
        evaluate("{% $eval('1 + 1') %}", {"states": {}}, "Output")
    assert refused.value.error == "States.QueryEvaluationError"


def test_an_undefined_result_is_a_query_evaluation_error_naming_the_field():
    with pytest.raises(StatesError) as failed:
        evaluate("{% $states.input.missing %}", {"states": {"input": {}}}, "Arguments/x")
    assert failed.value.error == "States.QueryEvaluationError"
    assert "Arguments/x" in failed.value.cause and "$states.input.missing" in failed.value.cause


# ---------------------------------------------------------------------- states


def test_pass_output_and_assign_read_the_same_input_and_variables(run):
    definition = jsonata({
        "Start": {"Type": "Pass", "Assign": {"count": 1}, "Next": "Again"},
        "Again": {"Type": "Pass", "Assign": {"count": "{% $count + 1 %}"}, "Output": {"before": "{% $count %}"}, "Next": "After"},
        "After": {"Type": "Pass", "Output": {"before": "{% $states.input.before %}", "after": "{% $count %}"}, "End": True},
    })
    assert run(definition).output == {"before": 1, "after": 2}


def test_task_arguments_and_output_with_states_result(run, functions):
    functions[ARN + "Double"] = lambda event, context: {"value": event["value"] * 2}
    definition = jsonata({
        "Call": {
            "Type": "Task",
            "Resource": ARN + "Double",
            "Arguments": {"value": "{% $states.input.n %}"},
            "Output": {"doubled": "{% $states.result.value %}", "input": "{% $states.input %}", "state": "{% $states.context.State.Name %}"},
            "End": True,
        }
    })
    assert run(definition, {"n": 21}).output == {"doubled": 42, "input": {"n": 21}, "state": "Call"}


def test_lambda_invoke_takes_function_name_and_payload_from_arguments(run, functions):
    functions[ARN + "Echo"] = lambda event, context: event
    definition = jsonata({
        "Call": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Arguments": {"FunctionName": ARN + "Echo", "Payload": {"id": "{% $states.input.id %}"}},
            "Output": "{% $states.result.Payload %}",
            "End": True,
        }
    })
    assert run(definition, {"id": "orders"}).output == {"id": "orders"}


def test_choice_condition_and_default(run):
    definition = jsonata({
        "Route": {
            "Type": "Choice",
            "Choices": [{"Condition": "{% $states.input.size > 10 %}", "Next": "Big", "Output": {"kind": "big"}}],
            "Default": "Small",
        },
        "Big": {"Type": "Succeed"},
        "Small": {"Type": "Pass", "Output": {"kind": "small"}, "End": True},
    })
    assert run(definition, {"size": 11}).output == {"kind": "big"}
    assert run(definition, {"size": 1}).output == {"kind": "small"}


def test_a_condition_that_is_not_a_boolean_fails_the_state(run):
    definition = jsonata({"Route": {"Type": "Choice", "Choices": [{"Condition": "{% $states.input.size %}", "Next": "Done"}]}, "Done": {"Type": "Succeed"}})
    finished = run(definition, {"size": 3})
    assert (finished.status, finished.error) == ("FAILED", "States.QueryEvaluationError")


def test_map_items_item_selector_and_result(run):
    definition = jsonata({
        "Each": {
            "Type": "Map",
            "Items": "{% $states.input.numbers %}",
            "ItemSelector": {"value": "{% $states.context.Map.Item.Value %}", "index": "{% $states.context.Map.Item.Index %}"},
            "ItemProcessor": {"StartAt": "Square", "States": {"Square": {"Type": "Pass", "Output": "{% $states.input.value * $states.input.value + $states.input.index %}", "End": True}}},
            "Output": {"squares": "{% $states.result %}"},
            "End": True,
        }
    })
    assert run(definition, {"numbers": [1, 2, 3]}).output == {"squares": [1, 5, 11]}


def test_parallel_arguments_and_output(run):
    branch = {"StartAt": "B", "States": {"B": {"Type": "Pass", "Output": "{% $states.input.x + 1 %}", "End": True}}}
    definition = jsonata({"Fan": {"Type": "Parallel", "Arguments": {"x": "{% $states.input.start %}"}, "Branches": [branch, branch], "Output": "{% $sum($states.result) %}", "End": True}})
    assert run(definition, {"start": 1}).output == 4


def test_wait_seconds_expression(run):
    definition = jsonata({"W": {"Type": "Wait", "Seconds": "{% $states.input.delay %}", "End": True}})
    finished = run(definition, {"delay": 30})
    assert finished.status == "SUCCEEDED"
    assert (finished.history[-1]["timestamp"] - finished.history[0]["timestamp"]).total_seconds() == pytest.approx(30, abs=0.01)


def test_fail_error_and_cause_expressions(run):
    definition = jsonata({"F": {"Type": "Fail", "Error": "{% $states.input.code %}", "Cause": "{% 'pipeline ' & $states.input.id %}"}})
    finished = run(definition, {"code": "SlotBusy", "id": "orders"})
    assert (finished.error, finished.cause) == ("SlotBusy", "pipeline orders")


def test_catch_output_and_assign_read_the_error_output(run, functions):
    def fail(event, context):
        raise RuntimeError("boom")

    functions[ARN + "Fail"] = fail
    definition = jsonata({
        "Call": {
            "Type": "Task",
            "Resource": ARN + "Fail",
            "Catch": [{"ErrorEquals": ["States.ALL"], "Assign": {"failed": "{% $states.errorOutput.Error %}"}, "Output": {"input": "{% $states.input %}"}, "Next": "Report"}],
            "End": True,
        },
        "Report": {"Type": "Pass", "Output": {"failed": "{% $failed %}", "input": "{% $states.input.input %}"}, "End": True},
    })
    assert run(definition, {"id": 7}).output == {"failed": "RuntimeError", "input": {"id": 7}}


def test_a_state_level_query_language_in_a_jsonpath_machine(run):
    definition = {
        "StartAt": "Path",
        "States": {
            "Path": {"Type": "Pass", "Parameters": {"n.$": "$.n"}, "Next": "Ata"},
            "Ata": {"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% $states.input.n * 3 %}", "End": True},
        },
    }
    assert run(definition, {"n": 2}).output == 6


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("states", "message"),
    [
        ({"A": {"Type": "Pass", "Parameters": {"a": 1}, "End": True}}, "the field 'Parameters' is not supported in JSONata states"),
        ({"A": {"Type": "Pass", "InputPath": "$.a", "End": True}}, "the field 'InputPath' is not supported in JSONata states"),
        ({"A": {"Type": "Pass", "Output": "{% $sum( %}", "End": True}}, "the JSONata expression is not valid"),
        ({"A": {"Type": "Choice", "Choices": [{"Variable": "$.a", "IsPresent": True, "Next": "B"}]}, "B": {"Type": "Succeed"}}, "not supported in JSONata choice rules"),
        ({"A": {"Type": "Pass", "QueryLanguage": "JSONPath", "End": True}}, "cannot use JSONPath when the state machine's QueryLanguage is JSONata"),
    ],
)
def test_jsonpath_fields_are_refused_in_jsonata_states(states, message):
    with pytest.raises(DefinitionInvalid) as refused:
        validate(json.dumps(jsonata(states)))
    assert message in str(refused.value)


def test_jsonata_fields_are_refused_in_jsonpath_states():
    with pytest.raises(DefinitionInvalid) as refused:
        validate(json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Output": {"a": 1}, "End": True}}}))
    assert "the field 'Output' is not supported in JSONPath states" in str(refused.value)


def test_task_timeout_seconds_from_an_expression(run, functions):
    import time as real_time

    functions[ARN + "Slow"] = lambda event, context: real_time.sleep(0.5) or {}
    definition = jsonata({"Call": {"Type": "Task", "Resource": ARN + "Slow", "TimeoutSeconds": "{% $states.input.limit %}", "End": True}})
    finished = run(definition, {"limit": 1})
    assert finished.status == "SUCCEEDED"
    scheduled = finished.events("LambdaFunctionScheduled")[0]["lambdaFunctionScheduledEventDetails"]
    assert scheduled["timeoutInSeconds"] == 1
