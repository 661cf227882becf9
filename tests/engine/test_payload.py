"""Payload templates: Parameters, ItemSelector and ResultSelector."""

import pytest

from localsfn.errors import StatesError
from localsfn.payload import render

DATA = {"spec": {"pipeline_id": "orders", "tables": ["public.orders"]}, "n": 3}
CONTEXT = {"Execution": {"Id": "arn:aws:states:local:000000000000:execution:Provision:run-1"}, "State": {"Name": "CreateSlot"}}


def test_task_payload_as_the_step_handlers_expect():
    template = {"spec.$": "$.spec", "execution_id.$": "$$.Execution.Id", "state_name.$": "$$.State.Name", "slot": "fixed"}
    assert render(template, DATA, CONTEXT) == {
        "spec": DATA["spec"],
        "execution_id": CONTEXT["Execution"]["Id"],
        "state_name": "CreateSlot",
        "slot": "fixed",
    }


def test_nested_objects_and_arrays_are_rendered_all_the_way_down():
    template = {"outer": {"inner.$": "$.n", "list": [1, {"deep.$": "$.spec.pipeline_id"}, [{"x.$": "$.n"}]]}}
    assert render(template, DATA, CONTEXT) == {"outer": {"inner": 3, "list": [1, {"deep": "orders"}, [{"x": 3}]]}}


def test_intrinsic_calls_and_indefinite_paths():
    template = {
        "name.$": "States.Format('cdcflow-{}-source', $.spec.pipeline_id)",
        "tables.$": "$.spec.tables[*]",
        "count.$": "States.ArrayLength($.spec.tables)",
    }
    assert render(template, DATA, CONTEXT) == {"name": "cdcflow-orders-source", "tables": ["public.orders"], "count": 1}


def test_literals_are_copied_as_written_and_keys_without_the_suffix_are_not_evaluated():
    template = {"path_like": "$.spec", "number": 1.5, "flag": False, "none": None, "text": "States.UUID()"}
    assert render(template, DATA, CONTEXT) == template


def test_non_object_templates():
    assert render([{"a.$": "$.n"}, 2], DATA, CONTEXT) == [{"a": 3}, 2]
    assert render("plain", DATA, CONTEXT) == "plain"


def test_the_result_shares_nothing_with_the_data_or_the_template():
    template = {"spec.$": "$.spec", "literal": {"list": [1]}, "merged.$": "States.Array($.spec)"}
    rendered = render(template, DATA, CONTEXT)
    rendered["spec"]["tables"].append("mutated")
    rendered["literal"]["list"].append(2)
    rendered["merged"][0]["pipeline_id"] = "mutated"
    assert DATA["spec"] == {"pipeline_id": "orders", "tables": ["public.orders"]}
    assert template["literal"] == {"list": [1]}


def test_a_missing_path_fails_naming_the_field_and_the_input():
    with pytest.raises(StatesError) as raised:
        render({"outer": {"slot.$": "$.spec.slot"}}, DATA, CONTEXT)
    assert raised.value.error == "States.Runtime"
    assert raised.value.cause == (
        "The JSONPath '$.spec.slot' specified for the field 'slot.$' could not be found in the input "
        '\'{"spec":{"pipeline_id":"orders","tables":["public.orders"]},"n":3}\''
    )


def test_a_missing_context_path_names_the_context_object():
    with pytest.raises(StatesError) as raised:
        render({"token.$": "$$.Task.Token"}, DATA, CONTEXT)
    assert "'$$.Task.Token' specified for the field 'token.$'" in raised.value.cause
    assert '"State":{"Name":"CreateSlot"}' in raised.value.cause


def test_a_missing_path_inside_an_intrinsic_names_the_field():
    with pytest.raises(StatesError) as raised:
        render({"name.$": "States.Format('{}', $.nope)"}, DATA, CONTEXT)
    assert raised.value.error == "States.Runtime"
    assert "'$.nope' specified for the field 'name.$'" in raised.value.cause


def test_an_intrinsic_failure_propagates():
    with pytest.raises(StatesError) as raised:
        render({"item.$": "States.ArrayGetItem($.spec.tables, 4)"}, DATA, CONTEXT)
    assert raised.value.error == "States.IntrinsicFailure"


@pytest.mark.parametrize("value", ["spec", 3, None, {"a": "$.b"}, "States"])
def test_a_dynamic_field_must_hold_a_path_or_an_intrinsic(value):
    with pytest.raises(StatesError) as raised:
        render({"field.$": value}, DATA, CONTEXT)
    assert raised.value.error == "States.Runtime"
    assert "'field.$' must be a path or an intrinsic function call" in raised.value.cause
