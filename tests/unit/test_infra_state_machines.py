"""The Workflows construct on small definitions written to a tmp folder."""

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from statemachines import catalogue
from infra.state_machines import InvalidDefinition, Workflows, referenced_functions

pytestmark = pytest.mark.unit


def _task(key: str, next_state: str | None = None) -> dict:
    state = {"Type": "Task", "Resource": f"${{{key}FunctionArn}}"}
    return state | ({"Next": next_state} if next_state else {"End": True})


def _write(folder, name: str, definition: dict) -> None:
    (folder / f"{name}.asl.json").write_text(json.dumps(definition))


def _synth(definitions_dir) -> Template:
    stack = cdk.Stack(cdk.App())
    functions = {
        function.key: lambda_.Function(
            stack, function.key, function_name=function.function_name,
            runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler",
            code=lambda_.Code.from_inline("def handler(event, context):\n    return event\n"),
        )
        for function in catalogue.FUNCTIONS
    }
    Workflows(stack, "Workflows", functions=functions, definitions_dir=definitions_dir)
    return Template.from_stack(stack)


def _function_logical_id(template: Template, key: str) -> str:
    [logical_id] = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"FunctionName": catalogue.by_key(key).function_name}},
    )
    return logical_id


def test_each_definition_becomes_a_standard_state_machine_with_only_its_functions(tmp_path):
    _write(tmp_path, "first_flow", {"StartAt": "A", "States": {
        "A": _task("ValidateSpec", "B"), "B": _task("MarkPipeline"),
    }})
    _write(tmp_path, "second_flow", {"StartAt": "A", "States": {"A": _task("DropSlot")}})
    template = _synth(tmp_path)

    machines = template.find_resources("AWS::StepFunctions::StateMachine")
    assert len(machines) == 2
    substitutions = sorted(sorted(machine["Properties"]["DefinitionSubstitutions"]) for machine in machines.values())
    assert substitutions == [["DropSlotFunctionArn"], ["MarkPipelineFunctionArn", "ValidateSpecFunctionArn"]]
    for machine in machines.values():
        properties = machine["Properties"]
        assert properties["StateMachineType"] == "STANDARD"
        assert properties["TracingConfiguration"] == {"Enabled": True}
        assert properties["LoggingConfiguration"]["Level"] == "ALL"
        assert properties["LoggingConfiguration"]["IncludeExecutionData"] is False
        for key, value in properties["DefinitionSubstitutions"].items():
            function_key = key.removesuffix("FunctionArn")
            assert value == {"Fn::GetAtt": [_function_logical_id(template, function_key), "Arn"]}

    # The role of the second machine may invoke DropSlot and nothing else.
    template.has_resource_properties("AWS::IAM::Policy", {
        "PolicyDocument": {"Statement": Match.array_with([{
            "Action": "lambda:InvokeFunction",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [_function_logical_id(template, "DropSlot"), "Arn"]},
        }])},
    })
    invoke_resources = [
        statement["Resource"]
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "lambda:InvokeFunction" in statement["Action"]
    ]
    invoked = {
        reference["Fn::GetAtt"][0]
        for resource in invoke_resources
        for reference in (resource if isinstance(resource, list) else [resource])
    }
    assert invoked == {_function_logical_id(template, key) for key in ("ValidateSpec", "MarkPipeline", "DropSlot")}


def test_referenced_functions_in_first_use_order(tmp_path):
    _write(tmp_path, "flow", {"StartAt": "A", "States": {
        "A": _task("CreateSlot", "B"), "B": _task("DropSlot", "C"), "C": _task("CreateSlot"),
    }})
    assert referenced_functions(tmp_path / "flow.asl.json") == ["CreateSlot", "DropSlot"]


def test_unknown_placeholder_is_rejected_naming_it(tmp_path):
    _write(tmp_path, "flow", {"StartAt": "A", "States": {"A": _task("LaunchRocket")}})
    with pytest.raises(InvalidDefinition, match=r"flow\.asl\.json refers to \$\{LaunchRocketFunctionArn\}"):
        referenced_functions(tmp_path / "flow.asl.json")


def test_malformed_definitions_are_rejected_naming_the_file(tmp_path):
    (tmp_path / "broken.asl.json").write_text("{ not json")
    with pytest.raises(InvalidDefinition, match="broken.asl.json is not valid JSON"):
        referenced_functions(tmp_path / "broken.asl.json")
    (tmp_path / "broken.asl.json").write_text('{"Comment": "no states"}')
    with pytest.raises(InvalidDefinition, match="broken.asl.json is not a state machine"):
        referenced_functions(tmp_path / "broken.asl.json")


def test_a_folder_without_definitions_is_an_error(tmp_path):
    with pytest.raises(InvalidDefinition, match="no \\*.asl.json"):
        _synth(tmp_path)
