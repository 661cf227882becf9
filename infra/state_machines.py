"""One Standard state machine per `statemachines/*.asl.json` file.

Each definition is loaded as it is (`DefinitionBody.from_file`) and its
`${...}` placeholders are filled by CloudFormation. The values the stack
defines are the catalogue's function ARNs, `${<Key>FunctionArn}`. A
definition receives (and its role may invoke) exactly the functions it
names; a placeholder that is not a catalogue function fails the synth.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from statemachines import catalogue

STATEMACHINES_DIR = Path(__file__).resolve().parent.parent / "statemachines"
DEFINITION_SUFFIX = ".asl.json"
LOG_RETENTION = logs.RetentionDays.THREE_MONTHS

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


class InvalidDefinition(ValueError):
    """A state machine definition the stack cannot deploy; the message names the file."""


def workflow_name(definition: Path) -> str:
    """`provision_pipeline.asl.json` -> `provision_pipeline`."""
    return definition.name.removesuffix(DEFINITION_SUFFIX)


def referenced_functions(definition: Path) -> list[str]:
    """The catalogue keys whose ARNs the definition's placeholders name, in first-use order.

    Raises InvalidDefinition if the file is not a JSON state machine or names a
    placeholder the stack does not define.
    """
    text = definition.read_text()
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidDefinition(f"{definition.name} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or "StartAt" not in document or "States" not in document:
        raise InvalidDefinition(f"{definition.name} is not a state machine: it needs StartAt and States")
    keys_by_substitution = {function.substitution: function.key for function in catalogue.FUNCTIONS}
    keys: list[str] = []
    for placeholder in _PLACEHOLDER.findall(text):
        key = keys_by_substitution.get(placeholder)
        if key is None:
            raise InvalidDefinition(
                f"{definition.name} refers to ${{{placeholder}}}, which is not a catalogue function ARN "
                f"(known: ${{<Key>FunctionArn}} for {', '.join(sorted(keys_by_substitution.values()))})"
            )
        if key not in keys:
            keys.append(key)
    return keys


class Workflows(Construct):
    """The state machines, by workflow name (`provision_pipeline`, ...)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Mapping[str, lambda_.IFunction],
        definitions_dir: Path = STATEMACHINES_DIR,
    ) -> None:
        super().__init__(scope, construct_id)
        definitions = sorted(definitions_dir.glob(f"*{DEFINITION_SUFFIX}"))
        if not definitions:
            raise InvalidDefinition(f"no *{DEFINITION_SUFFIX} state machine definitions in {definitions_dir}")
        self.state_machines: dict[str, sfn.StateMachine] = {
            workflow_name(definition): self._state_machine(definition, functions) for definition in definitions
        }

    def _state_machine(self, definition: Path, functions: Mapping[str, lambda_.IFunction]) -> sfn.StateMachine:
        name = workflow_name(definition)
        construct_id = "".join(part.capitalize() for part in name.split("_"))
        invoked_keys = referenced_functions(definition)
        log_group = logs.LogGroup(
            self, f"{construct_id}Logs",
            # The /aws/vendedlogs/ prefix keeps CloudWatch Logs' resource policy small as workflows are added.
            log_group_name=f"/aws/vendedlogs/states/cdcflow-{name.replace('_', '-')}",
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.DESTROY,
        )
        state_machine = sfn.StateMachine(
            self, construct_id,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_file(str(definition)),
            definition_substitutions={
                catalogue.by_key(key).substitution: functions[key].function_arn for key in invoked_keys
            },
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            tracing_enabled=True,
        )
        # The unqualified ARNs only: the definitions invoke no versions or aliases.
        state_machine.add_to_role_policy(iam.PolicyStatement(
            actions=["lambda:InvokeFunction"], resources=[functions[key].function_arn for key in invoked_keys],
        ))
        NagSuppressions.add_resource_suppressions(state_machine.role, [NagPackSuppression(
            id="AwsSolutions-IAM5",
            reason="X-Ray tracing and CloudWatch Logs delivery (logs:CreateLogDelivery, ...) support no "
                   "resource-level permissions",
            applies_to=["Resource::*"],
        )], apply_to_children=True)
        return state_machine
