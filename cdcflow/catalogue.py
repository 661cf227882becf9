"""The function catalogue: every Lambda function of cdcflow, described once.

The CDK stack builds one Lambda function per entry and fills the state
machines' `${<Key>FunctionArn}` substitutions with their ARNs; the local
engine fills the same substitutions with local ARNs and invokes the handlers
in-process. Both read this list, so the two cannot drift.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LOCAL_REGION = "us-east-1"
LOCAL_ACCOUNT = "000000000000"
FUNCTION_NAME_PREFIX = "cdcflow-"

# Named permissions a function may need; infra/ turns each into the narrowest grant.
REGISTRY_READ = "registry:read"
REGISTRY_WRITE = "registry:write"
IDEMPOTENCY = "idempotency"
SECRETS_READ = "secrets:read"  # the admin secrets named in pipeline specs
SECRETS_WRITE = "secrets:write"  # the replication secrets cdcflow creates
RDS_PARAMETERS = "rds:parameters"
RDS_DESCRIBE = "rds:describe"
STATES_START = "states:start"
STATES_READ = "states:read"
STATES_TASK_TOKEN = "states:task-token"
METRICS = "cloudwatch:metrics"
VPC_NETWORK = "network:source"  # reaches PostgreSQL, Kafka and Connect


@dataclass(frozen=True)
class LambdaFunction:
    key: str
    handler: str
    description: str
    timeout_seconds: int = 60
    memory_mb: int = 256
    permissions: frozenset[str] = field(default_factory=frozenset)

    @property
    def function_name(self) -> str:
        kebab = "".join(f"-{c.lower()}" if c.isupper() else c for c in self.key).lstrip("-")
        return FUNCTION_NAME_PREFIX + kebab

    @property
    def substitution(self) -> str:
        return f"{self.key}FunctionArn"


def _step(key: str, handler: str, description: str, *permissions: str, timeout: int = 60) -> LambdaFunction:
    return LambdaFunction(
        key=key,
        handler=f"lambdas.steps.{handler}",
        description=description,
        timeout_seconds=timeout,
        permissions=frozenset({IDEMPOTENCY, METRICS, *permissions}),
    )


FUNCTIONS: tuple[LambdaFunction, ...] = (
    _step("ValidateSpec", "validate_spec.handler", "Validate a pipeline spec against the JSON Schema"),
    _step("RegisterPipeline", "registry.register_handler", "Claim the pipeline id in the registry", REGISTRY_WRITE),
    _step("MarkPipeline", "registry.mark_handler", "Record status, current step and last error", REGISTRY_WRITE),
    _step("EnsureLogicalReplication", "logical_replication.ensure_handler",
          "Check wal_level, or enable rds.logical_replication in the parameter group",
          SECRETS_READ, RDS_PARAMETERS, RDS_DESCRIBE, VPC_NETWORK),
    _step("RequestApproval", "approval.request_handler", "Store the task token of a pending approval", REGISTRY_WRITE),
    _step("RebootSourceInstance", "logical_replication.reboot_handler", "Reboot the RDS source to apply parameters",
          RDS_PARAMETERS, RDS_DESCRIBE),
    _step("CheckSourceInstance", "logical_replication.check_instance_handler", "Poll the RDS source until available and logical",
          SECRETS_READ, RDS_DESCRIBE, VPC_NETWORK),
    _step("CreateReplicationUser", "replication_user.create_handler", "Create the replication role and its secret",
          SECRETS_READ, SECRETS_WRITE, VPC_NETWORK),
    _step("DropReplicationUser", "replication_user.drop_handler", "Drop the replication role and delete its secret",
          SECRETS_READ, SECRETS_WRITE, VPC_NETWORK),
    _step("CreateHeartbeatTable", "heartbeat_table.create_handler", "Create the Debezium heartbeat table",
          SECRETS_READ, VPC_NETWORK),
    _step("DropHeartbeatTable", "heartbeat_table.drop_handler", "Drop the heartbeat table", SECRETS_READ, VPC_NETWORK),
    _step("CreatePublication", "publication.create_handler", "Create or re-align the publication", SECRETS_READ, VPC_NETWORK),
    _step("DropPublication", "publication.drop_handler", "Drop the publication", SECRETS_READ, VPC_NETWORK),
    _step("CreateSlot", "replication_slot.create_handler", "Create the logical replication slot",
          SECRETS_READ, VPC_NETWORK, timeout=300),
    _step("DropSlot", "replication_slot.drop_handler", "Terminate the slot's walsender and drop the slot",
          SECRETS_READ, VPC_NETWORK),
    _step("CreateTopics", "kafka_topics.create_handler", "Create the pipeline's Kafka topics", VPC_NETWORK),
    _step("DeleteTopics", "kafka_topics.delete_handler", "Delete the pipeline's Kafka topics", VPC_NETWORK),
    _step("PutSourceConnector", "connectors.put_source_handler", "Deploy the Debezium source connector",
          SECRETS_READ, VPC_NETWORK),
    _step("PutSinkConnector", "connectors.put_sink_handler", "Deploy the sink connector", SECRETS_READ, VPC_NETWORK),
    _step("CheckConnector", "connectors.check_handler", "Report a connector's readiness", VPC_NETWORK),
    _step("DeleteConnectors", "connectors.delete_handler", "Delete the pipeline's connectors", VPC_NETWORK),
    _step("WriteCanary", "canary.write_handler", "Write a canary change in the source", SECRETS_READ, VPC_NETWORK),
    _step("CheckCanary", "canary.check_handler", "Look for the canary change at the sink", SECRETS_READ, VPC_NETWORK),
    LambdaFunction(
        key="Api",
        handler="lambdas.api.handler",
        description="The pipelines REST API behind API Gateway",
        timeout_seconds=29,
        permissions=frozenset({REGISTRY_READ, REGISTRY_WRITE, STATES_START, STATES_READ, STATES_TASK_TOKEN, METRICS}),
    ),
    LambdaFunction(
        key="Reconcile",
        handler="lambdas.reconcile.handler",
        description="Compare registered pipelines with what exists, and repair",
        timeout_seconds=900,
        memory_mb=512,
        permissions=frozenset({REGISTRY_READ, REGISTRY_WRITE, SECRETS_READ, STATES_READ, METRICS, VPC_NETWORK}),
    ),
)


def by_key(key: str) -> LambdaFunction:
    for function in FUNCTIONS:
        if function.key == key:
            return function
    raise KeyError(f"no function {key!r} in the catalogue")


def local_function_arn(function: LambdaFunction) -> str:
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
