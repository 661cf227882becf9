"""Workflow variables: Assign in JSONPath states, `$name` references, scopes and their checks.

Behaviour from https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html.
"""

from __future__ import annotations

import json

import pytest

from localsfn.errors import DefinitionInvalid
from localsfn.validation import validate
from localsfn.variables import variable_references

ARN = "arn:aws:lambda:us-east-1:000000000000:function:"


def test_jsonpath_assign_and_references_in_parameters_intrinsics_and_choice(run):
    definition = {
        "StartAt": "Remember",
        "States": {
            "Remember": {"Type": "Pass", "Result": {"slot": "cdc_orders"}, "Assign": {"slot.$": "$.slot", "attempts": 2}, "Next": "Use"},
            "Use": {"Type": "Pass", "Parameters": {"slot.$": "$slot", "label.$": "States.Format('{} x{}', $slot, $attempts)"}, "Next": "Route"},
            "Route": {"Type": "Choice", "Choices": [{"Variable": "$attempts", "NumericEquals": 2, "Next": "Done"}]},
            "Done": {"Type": "Succeed"},
        },
    }
    assert run(definition).output == {"slot": "cdc_orders", "label": "cdc_orders x2"}


def test_jsonpath_task_assign_reads_the_result_before_result_selector(run, functions):
    functions[ARN + "Slot"] = lambda event, context: {"name": "s1", "lsn": "0/1"}
    definition = {
        "StartAt": "Create",
        "States": {
            "Create": {"Type": "Task", "Resource": ARN + "Slot", "Assign": {"lsn.$": "$.lsn"}, "ResultSelector": {"slot.$": "$.name"}, "ResultPath": "$.created", "Next": "Report"},
            "Report": {"Type": "Pass", "Parameters": {"lsn.$": "$lsn", "created.$": "$.created"}, "End": True},
        },
    }
    assert run(definition, {}).output == {"lsn": "0/1", "created": {"slot": "s1"}}


def test_assign_takes_effect_from_the_next_state(run):
    definition = {
        "StartAt": "One",
        "States": {
            "One": {"Type": "Pass", "Assign": {"n": 1}, "Next": "Two"},
            "Two": {"Type": "Pass", "Assign": {"n": 2}, "Parameters": {"seen.$": "$n"}, "Next": "Three"},
            "Three": {"Type": "Pass", "Parameters": {"seen.$": "$.seen", "now.$": "$n"}, "End": True},
        },
    }
    assert run(definition).output == {"seen": 1, "now": 2}


def test_inner_scopes_read_outer_variables_and_their_own_end_with_them(run):
    processor = {"StartAt": "Inner", "States": {
        "Inner": {"Type": "Pass", "Assign": {"local.$": "$"}, "Next": "Read"},
        "Read": {"Type": "Pass", "Parameters": {"item.$": "$local", "prefix.$": "$prefix"}, "End": True},
    }}
    definition = {
        "StartAt": "Set",
        "States": {
            "Set": {"Type": "Pass", "Assign": {"prefix": "p"}, "Next": "Each"},
            "Each": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": processor, "End": True},
        },
    }
    assert run(definition, {"items": [1, 2]}).output == [{"item": 1, "prefix": "p"}, {"item": 2, "prefix": "p"}]


def test_variables_survive_an_engine_restart(tmp_path, functions, clock):
    from localsfn import Engine

    definition = {
        "StartAt": "Set",
        "States": {"Set": {"Type": "Pass", "Assign": {"kept": "yes"}, "Next": "Sleep"}, "Sleep": {"Type": "Wait", "Seconds": 60, "Next": "Read"},
                   "Read": {"Type": "Pass", "Parameters": {"kept.$": "$kept"}, "End": True}},
    }
    first = Engine(tmp_path / "journal.sqlite", functions, clock=clock)
    machine = first.create_state_machine("m", json.dumps(definition))
    arn = first.start_execution(machine, "{}")
    import time

    deadline = time.monotonic() + 10
    while not any(event["type"] == "WaitStateEntered" for event in first.get_execution_history(arn)):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    first.close()
    with Engine(tmp_path / "journal.sqlite", functions, clock=clock) as second:
        finished = second.wait_for_execution(arn, timeout=10)
    assert json.loads(finished["output"]) == {"kept": "yes"}


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters": {"x.$": "$nowhere"}, "End": True}}},
            "the variable '$nowhere' is referenced but never assigned",
        ),
        (
            {"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "Output": "{% $nowhere + 1 %}", "End": True}}},
            "the variable '$nowhere' is referenced but never assigned",
        ),
        (
            {"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Assign": {"total": 0}, "Next": "M"},
                "M": {"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "Assign": {"total": 1}, "End": True}}}, "End": True},
            }},
            "the variable '$total' belongs to an outer scope and cannot be assigned here",
        ),
        (
            {"StartAt": "P", "States": {"P": {"Type": "Parallel", "Branches": [
                {"StartAt": "X", "States": {"X": {"Type": "Pass", "Assign": {"mine": 1}, "End": True}}},
                {"StartAt": "Y", "States": {"Y": {"Type": "Pass", "Parameters": {"v.$": "$mine"}, "End": True}}},
            ], "End": True}}},
            "the variable '$mine' is referenced but never assigned",
        ),
        ({"StartAt": "A", "States": {"A": {"Type": "Pass", "Assign": {"states": 1}, "End": True}}}, "is reserved"),
        ({"StartAt": "A", "States": {"A": {"Type": "Pass", "Assign": {"1st": 1}, "End": True}}}, "must start with a letter"),
        ({"StartAt": "A", "States": {"A": {"Type": "Succeed", "Assign": {"x": 1}}}}, "'Assign' is not valid in a Succeed state"),
    ],
)
def test_invalid_variable_use_is_refused_at_creation(definition, message):
    with pytest.raises(DefinitionInvalid) as refused:
        validate(json.dumps(definition))
    assert message in str(refused.value)


def test_variable_references_name_what_each_state_reads():
    definition = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Assign": {"x": 1, "y": 2}, "Next": "B"},
            "B": {"Type": "Pass", "Parameters": {"v.$": "$x"}, "Next": "C"},
            "C": {"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% $x + $y %}", "End": True},
        },
    }
    assert variable_references(definition) == {"B": ["x"], "C": ["x", "y"]}


def test_describe_state_machine_gives_variable_references(engine):
    definition = {
        "StartAt": "A",
        "States": {"A": {"Type": "Pass", "Assign": {"slot": "s"}, "Next": "B"}, "B": {"Type": "Pass", "Parameters": {"v.$": "$slot"}, "End": True}},
    }
    machine = engine.create_state_machine("with-variables", json.dumps(definition))
    assert engine.describe_state_machine(machine)["variableReferences"] == {"B": ["slot"]}
    plain = engine.create_state_machine("without", json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}))
    assert "variableReferences" not in engine.describe_state_machine(plain)
