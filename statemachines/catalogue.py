"""The function catalogue: every Lambda function of cdcflow, described once.

The step functions come from the workflows' step tables; the API and
reconcile functions are declared here. The CDK stack builds one Lambda
function per entry and fills the state machines' `${<Key>FunctionArn}`
substitutions with their ARNs; the local engine fills the same substitutions
with local ARNs and invokes the handlers in-process. Both read this list, so
the two cannot drift.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

from statemachines import WORKFLOWS
from statemachines.model import (
    ALARMS_READ, ALARMS_WRITE, FUNCTION_NAME_PREFIX, IDEMPOTENCY, METRICS, RDS_DESCRIBE, RDS_PARAMETERS, RDS_REBOOT,
    RDS_RESTORE, RECONCILE_LEASE,
    REGISTRY_READ, REGISTRY_WRITE, SECRETS_DELETE, SECRETS_LIST, SECRETS_READ, SECRETS_WRITE, STATES_READ, STATES_START,
    STATES_STOP, STATES_TASK_TOKEN, VPC_NETWORK, Function, Workflow, PRINCIPALS_READ, CONNECTIONS_WRITE,
)

# The permission names are the catalogue's vocabulary: infra/ turns each into a grant.
__all__ = [
    "ALARMS_READ", "ALARMS_WRITE", "FUNCTIONS", "FUNCTION_NAME_PREFIX", "IDEMPOTENCY", "LOCAL_ACCOUNT", "LOCAL_REGION",
    "Function", "METRICS",
    "RDS_DESCRIBE", "RDS_PARAMETERS", "RDS_REBOOT", "RDS_RESTORE", "RECONCILE_LEASE", "REGISTRY_READ", "REGISTRY_WRITE",
    "PRINCIPALS_READ", "CONNECTIONS_WRITE", "SECRETS_DELETE", "SECRETS_LIST", "SECRETS_READ", "SECRETS_WRITE",
    "STATES_READ", "STATES_START", "STATES_STOP", "STATES_TASK_TOKEN", "VPC_NETWORK", "by_key", "import_handler",
    "local_definition_substitutions", "local_function_arn", "resolve_local_function",
]

LOCAL_REGION = "us-east-1"
LOCAL_ACCOUNT = "000000000000"

API = Function(
    key="Api",
    handler="lambdas.api.handler",
    description="The pipelines REST API behind API Gateway",
    timeout_seconds=29,
    # SECRETS_READ and VPC_NETWORK: a resync's WHERE conditions are checked by the source's PostgreSQL
    # before the workflow starts, so a bad one is a 422 and not a failed execution.
    permissions=frozenset({REGISTRY_READ, REGISTRY_WRITE, STATES_START, STATES_STOP, STATES_READ, STATES_TASK_TOKEN,
                           METRICS, PRINCIPALS_READ, CONNECTIONS_WRITE, ALARMS_READ, SECRETS_READ, VPC_NETWORK}),
)
RECONCILE = Function(
    key="Reconcile",
    handler="lambdas.reconcile.handler",
    description="Compare registered pipelines with what exists, and repair",
    timeout_seconds=900,
    memory_mb=512,
    permissions=frozenset({REGISTRY_READ, REGISTRY_WRITE, SECRETS_READ, SECRETS_LIST, SECRETS_DELETE, RECONCILE_LEASE,
                           STATES_READ, METRICS, VPC_NETWORK}),
)


def step_functions(workflows: Iterable[Workflow]) -> tuple[Function, ...]:
    """The functions the workflows' tasks invoke, each once, in the order the tables first name them.

    Raises ValueError when two rows give one function key different settings.
    """
    seen: dict[str, Function] = {}
    for workflow in workflows:
        for task in workflow.tasks():
            known = seen.setdefault(task.function.key, task.function)
            if known != task.function:
                raise ValueError(f"function {task.function.key} is declared twice with different settings "
                                 f"({workflow.name}, state {task.name})")
    return tuple(seen.values())


FUNCTIONS: tuple[Function, ...] = (*step_functions(WORKFLOWS), API, RECONCILE)


def by_key(key: str) -> Function:
    for function in FUNCTIONS:
        if function.key == key:
            return function
    raise KeyError(f"no function {key!r} in the catalogue")


def local_function_arn(function: Function) -> str:
    return f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT}:function:{function.function_name}"


def local_definition_substitutions() -> dict[str, str]:
    """`${...}` values for the state machine definitions on the local engine."""
    return {function.substitution: local_function_arn(function) for function in FUNCTIONS}


def import_handler(dotted: str) -> Callable[[Any, Any], Any]:
    module_name, _, attribute = dotted.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def resolve_local_function(arn: str) -> Callable[[Any, Any], Any] | None:
    """The handler behind a local function ARN (or bare function name), imported on first use."""
    name = arn.rsplit(":", 1)[-1] if arn.startswith("arn:") else arn
    for function in FUNCTIONS:
        if function.function_name == name:
            return import_handler(function.handler)
    return None
