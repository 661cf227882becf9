"""Definitions AWS rejects are rejected at CreateStateMachine, naming the state and the problem, creating nothing."""

from __future__ import annotations

import json

import pytest

from localsfn import DefinitionInvalid, Engine, ServiceError

ARN = "arn:aws:lambda:us-east-1:000000000000:function:Step"
TASK = {"Type": "Task", "Resource": ARN, "End": True}


def machine(states: dict, start: str = "A", **top) -> str:
    return json.dumps({"StartAt": start, "States": states, **top})


INVALID = {
    "not JSON": ("{", "not valid JSON"),
    "missing StartAt": (json.dumps({"States": {"A": {"Type": "Succeed"}}}), "StartAt is missing"),
    "StartAt names nothing": (machine({"A": {"Type": "Succeed"}}, start="B"), "StartAt names 'B'"),
    "unknown Next": (machine({"A": {"Type": "Pass", "Next": "Nowhere"}}), "State 'A': MISSING_TRANSITION_TARGET: Next names \"Nowhere\""),
    "unreachable state": (machine({"A": {"Type": "Succeed"}, "Orphan": {"Type": "Succeed"}}), "State 'Orphan': MISSING_TRANSITION_TARGET"),
    "no terminal state": (machine({"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}), "MISSING_END_STATE"),
    "missing Type": (machine({"A": {"End": True}}), "State 'A': Type is missing"),
    "unknown Type": (machine({"A": {"Type": "Sleep", "End": True}}), "State 'A': unknown Type \"Sleep\""),
    "field of another type": (machine({"A": {"Type": "Pass", "Resource": ARN, "End": True}}), "State 'A': field 'Resource' is not valid in a Pass state"),
    "both Next and End": (machine({"A": {"Type": "Pass", "Next": "B", "End": True}, "B": {"Type": "Succeed"}}), "State 'A': has both Next and End"),
    "neither Next nor End": (machine({"A": {"Type": "Pass"}}), "State 'A': needs Next"),
    "Task without Resource": (machine({"A": {"Type": "Task", "End": True}}), "State 'A': Resource is missing"),
    "unsupported integration": (machine({"A": {**TASK, "Resource": "arn:aws:states:::sqs:sendMessage"}}), "State 'A': Resource \"arn:aws:states:::sqs:sendMessage\" is not supported"),
    "invoke without FunctionName": (machine({"A": {**TASK, "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {}}}), "needs Parameters.FunctionName"),
    "heartbeat not below timeout": (machine({"A": {**TASK, "TimeoutSeconds": 10, "HeartbeatSeconds": 10}}), "HeartbeatSeconds must be smaller than TimeoutSeconds"),
    "Wait with two fields": (machine({"A": {"Type": "Wait", "Seconds": 1, "SecondsPath": "$.s", "End": True}}), "exactly one of Seconds"),
    "negative Seconds": (machine({"A": {"Type": "Wait", "Seconds": -1, "End": True}}), "Seconds must be a non-negative integer"),
    "Choice without Choices": (machine({"A": {"Type": "Choice", "Choices": []}}), "State 'A': Choices must be a non-empty array"),
    "Choice rule without operator": (machine({"A": {"Type": "Choice", "Choices": [{"Variable": "$.x", "Next": "B"}]}, "B": {"Type": "Succeed"}}), "State 'A' Choices[0]"),
    "Choice with Next": (machine({"A": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "B"}], "Next": "B"}, "B": {"Type": "Succeed"}}), "field 'Next' is not valid in a Choice state"),
    "unknown Default": (machine({"A": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "B"}], "Default": "Z"}, "B": {"Type": "Succeed"}}), "Default names \"Z\""),
    "Fail with Error and ErrorPath": (machine({"A": {"Type": "Fail", "Error": "E", "ErrorPath": "$.e"}}), "Error and ErrorPath cannot both be set"),
    "States.ALL not alone": (machine({"A": {**TASK, "Retry": [{"ErrorEquals": ["States.ALL", "X"]}]}}), "State 'A' Retry[0]: States.ALL must appear alone"),
    "States.ALL not last": (machine({"A": {**TASK, "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "B"}, {"ErrorEquals": ["X"], "Next": "B"}]}, "B": {"Type": "Succeed"}}), "State 'A' Catch[0]: States.ALL must appear alone"),
    "BackoffRate below one": (machine({"A": {**TASK, "Retry": [{"ErrorEquals": ["X"], "BackoffRate": 0.5}]}}), "BackoffRate must be a number of at least 1.0"),
    "negative MaxAttempts": (machine({"A": {**TASK, "Retry": [{"ErrorEquals": ["X"], "MaxAttempts": -1}]}}), "MaxAttempts must be a non-negative integer"),
    "bad JitterStrategy": (machine({"A": {**TASK, "Retry": [{"ErrorEquals": ["X"], "JitterStrategy": "HALF"}]}}), "JitterStrategy must be FULL or NONE"),
    "zero IntervalSeconds": (machine({"A": {**TASK, "Retry": [{"ErrorEquals": ["X"], "IntervalSeconds": 0}]}}), "IntervalSeconds must be a positive integer"),
    "empty ErrorEquals": (machine({"A": {**TASK, "Retry": [{"ErrorEquals": []}]}}), "ErrorEquals must be a non-empty array"),
    "Catch without Next": (machine({"A": {**TASK, "Catch": [{"ErrorEquals": ["X"]}]}}), "State 'A' Catch[0]: Next is missing"),
    "bad ResultPath": (machine({"A": {"Type": "Pass", "ResultPath": "$.a[*]", "End": True}}), "State 'A': ResultPath \"$.a[*]\" must be a reference path"),
    "bad Parameters path": (machine({"A": {"Type": "Pass", "Parameters": {"x.$": "$..["}, "End": True}}), "State 'A': Parameters: 'x.$' is not a valid path"),
    "bad intrinsic": (machine({"A": {"Type": "Pass", "Parameters": {"x.$": "States.Format('{}'"}, "End": True}}), "'x.$' is not a valid intrinsic function call"),
    "Parallel without branches": (machine({"A": {"Type": "Parallel", "Branches": [], "End": True}}), "State 'A': Branches must be a non-empty array"),
    "invalid branch": (machine({"A": {"Type": "Parallel", "Branches": [{"StartAt": "X", "States": {"X": {"Type": "Pass"}}}], "End": True}}), "State 'A' Branches[0] State 'X': needs Next"),
    "branch Next into the outer machine": (machine({"A": {"Type": "Parallel", "Branches": [{"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "A"}}}], "End": True}}), "Branches[0] State 'X': MISSING_TRANSITION_TARGET"),
    "Map without processor": (machine({"A": {"Type": "Map", "End": True}}), "State 'A': a Map state needs exactly one of ItemProcessor and Iterator"),
    "distributed Map": (machine({"A": {"Type": "Map", "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "X", "States": {"X": {"Type": "Succeed"}}}, "End": True}}), "a DISTRIBUTED Map needs ExecutionType STANDARD or EXPRESS"),
    "negative MaxConcurrency": (machine({"A": {"Type": "Map", "MaxConcurrency": -2, "Iterator": {"StartAt": "X", "States": {"X": {"Type": "Succeed"}}}, "End": True}}), "MaxConcurrency must be a non-negative integer"),
    "state name too long": (machine({"A" * 81: {"Type": "Succeed"}}, start="A" * 81), "at most 80 characters"),
    "unknown query language": (machine({"A": {"Type": "Succeed"}}, QueryLanguage="JMESPath"), "QueryLanguage must be JSONPath or JSONata"),
}


@pytest.mark.parametrize("definition, problem", INVALID.values(), ids=INVALID.keys())
def test_invalid_definitions_are_rejected_naming_the_problem(engine: Engine, definition: str, problem: str):
    with pytest.raises(DefinitionInvalid) as raised:
        engine.create_state_machine("Rejected", definition)
    assert any(problem in message for message in raised.value.problems), raised.value.problems
    assert engine.list_state_machines() == []


def test_every_problem_is_reported_at_once(engine: Engine):
    definition = machine({"A": {"Type": "Pass", "Next": "Nowhere"}, "B": {"Type": "Wait", "End": True}})
    with pytest.raises(DefinitionInvalid) as raised:
        engine.create_state_machine("Rejected", definition)
    assert len(raised.value.problems) >= 3  # unknown Next, Wait without a duration, B unreachable


def test_a_valid_definition_with_every_state_type_is_accepted(engine: Engine):
    definition = machine(
        {
            "A": {"Type": "Pass", "Next": "B"},
            "B": {"Type": "Task", "Resource": ARN, "Retry": [{"ErrorEquals": ["X"]}, {"ErrorEquals": ["States.ALL"]}], "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "F"}], "Next": "C"},
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "D"}], "Default": "E"},
            "D": {"Type": "Wait", "Seconds": 1, "Next": "E"},
            "E": {"Type": "Parallel", "Branches": [{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}], "Next": "G"},
            "G": {"Type": "Map", "ItemProcessor": {"StartAt": "Q", "States": {"Q": {"Type": "Succeed"}}}, "Next": "S"},
            "S": {"Type": "Succeed"},
            "F": {"Type": "Fail", "Error": "Failed"},
        }
    )
    arn = engine.create_state_machine("Valid", definition)
    assert engine.describe_state_machine(arn)["definition"] == definition


def test_the_same_name_with_another_definition_already_exists(engine: Engine):
    first = machine({"A": {"Type": "Succeed"}})
    arn = engine.create_state_machine("Twice", first)
    assert engine.create_state_machine("Twice", first) == arn  # the same request again: the same machine
    with pytest.raises(ServiceError) as raised:
        engine.create_state_machine("Twice", machine({"A": {"Type": "Pass", "End": True}}))
    assert raised.value.code == "StateMachineAlreadyExists"


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 81, "semi;colon"])
def test_invalid_names_are_rejected(engine: Engine, name: str):
    with pytest.raises(ServiceError) as raised:
        engine.create_state_machine(name, machine({"A": {"Type": "Succeed"}}))
    assert raised.value.code == "InvalidName"
