"""Workflow executions named so that one request starts one execution, however often it is retried.

Names are derived from the request: ProvisionPipeline's from the spec's
fingerprint, TeardownPipeline's from the pipeline id and the generation being
torn down (the registry's current execution). Step Functions refuses a
second execution of one name, so a retried request finds the execution the
first one started. Step Functions keeps a closed execution's name for 90
days: a workflow that must run again (a teardown that failed or was stopped,
a provisioning whose registry entry was lost) gets a name derived from the
closed execution, the same for every request.

A lifecycle execution's name (PausePipeline, ResumePipeline) comes from the
pipeline id and the registry entry's version when it was requested: the API
records the execution on the entry before it starts it
(`registry.claim_lifecycle`), and a retried request finds it there.

The state machines' ARNs come from the environment (`PROVISION_STATE_MACHINE_ARN`,
`TEARDOWN_STATE_MACHINE_ARN`, `PAUSE_STATE_MACHINE_ARN`, `RESUME_STATE_MACHINE_ARN`, `UPDATE_STATE_MACHINE_ARN`,
`RESYNC_STATE_MACHINE_ARN`, `REBUILD_STATE_MACHINE_ARN`); the Step Functions client follows boto3's
endpoint resolution, so `AWS_ENDPOINT_URL_SFN` points it at the local engine.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from lambdas import aws, registry
from lambdas.spec import PipelineSpec

PROVISION_STATE_MACHINE_ARN = "PROVISION_STATE_MACHINE_ARN"
TEARDOWN_STATE_MACHINE_ARN = "TEARDOWN_STATE_MACHINE_ARN"
PAUSE_STATE_MACHINE_ARN = "PAUSE_STATE_MACHINE_ARN"
RESUME_STATE_MACHINE_ARN = "RESUME_STATE_MACHINE_ARN"
UPDATE_STATE_MACHINE_ARN = "UPDATE_STATE_MACHINE_ARN"
RESYNC_STATE_MACHINE_ARN = "RESYNC_STATE_MACHINE_ARN"
REBUILD_STATE_MACHINE_ARN = "REBUILD_STATE_MACHINE_ARN"
# Each lifecycle action and the variable naming its state machine.
LIFECYCLE_STATE_MACHINE_ARNS = {"pause": PAUSE_STATE_MACHINE_ARN, "resume": RESUME_STATE_MACHINE_ARN,
                                "update": UPDATE_STATE_MACHINE_ARN, "resync": RESYNC_STATE_MACHINE_ARN,
                                "rebuild": REBUILD_STATE_MACHINE_ARN}


class ExecutionInputDiffers(Exception):
    """An execution of the name exists with another input: the name is taken by a different request."""

    def __init__(self, name: str, execution_arn: str) -> None:
        super().__init__(f"execution {name!r} already exists with a different input")
        self.name = name
        self.execution_arn = execution_arn


def stepfunctions() -> Any:
    """The Step Functions client, built on first use by the shared factory."""
    return aws.client("stepfunctions")


def state_machine_arn_from(variable: str) -> str:
    """The ARN in environment variable `variable`; RuntimeError when it is unset (a deployment fault)."""
    arn = os.environ.get(variable)
    if not arn:
        raise RuntimeError(f"{variable} is not set")
    return arn


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN Step Functions gives execution `name` of a standard state machine."""
    prefix, _, state_machine_name = state_machine_arn.rpartition(":stateMachine:")
    return f"{prefix}:execution:{state_machine_name}:{name}"


def execution_name_in(arn: str | None, state_machine_arn: str) -> str | None:
    """The name of execution `arn` when it belongs to `state_machine_arn`."""
    prefix = execution_arn(state_machine_arn, "")
    if arn and arn.startswith(prefix):
        return arn[len(prefix):]
    return None


def _short_hash(*parts: object) -> str:
    return hashlib.sha256("|".join(str(part) for part in parts).encode()).hexdigest()[:12]


def _encode_input(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def start_execution_once(state_machine_arn: str, name: str, execution_input: dict[str, Any]) -> dict[str, str]:
    """Start execution `name` with `execution_input`, or find the one a previous request started.

    Idempotent: Step Functions returns a running execution of the same name
    and input instead of starting another; a closed one makes it refuse with
    ExecutionAlreadyExists, and that execution is described and returned when
    its input is the same. Raises `ExecutionInputDiffers` when it is not.
    """
    client = stepfunctions()
    try:
        started = client.start_execution(
            stateMachineArn=state_machine_arn, name=name, input=_encode_input(execution_input),
        )
        return {"execution_arn": started["executionArn"], "status": "RUNNING"}
    except client.exceptions.ExecutionAlreadyExists:
        arn = execution_arn(state_machine_arn, name)
        existing = client.describe_execution(executionArn=arn)
        if json.loads(existing.get("input") or "null") != execution_input:
            raise ExecutionInputDiffers(name, arn) from None
        return {"execution_arn": arn, "status": existing["status"]}


def provision_execution_name(
    spec: PipelineSpec, fingerprint: str, entry: registry.RegistryEntry | None, state_machine_arn: str,
) -> str:
    """The ProvisionPipeline execution name for `spec`, given the pipeline's registry entry.

    The same for every retry of one request: the spec's fingerprint names the
    first provisioning; while the pipeline is live, the execution the registry
    records is the answer; once it has ended (DELETED or FAILED), a new
    generation gets a name of its own, derived from the ended entry so that
    retries agree on it.
    """
    base = spec.names.execution_name(fingerprint)
    if entry is None:
        # A first provisioning, or one whose entry was lost: a closed execution of
        # the name is not this request's, and answering with it would leave the claim
        # PROVISIONING behind an old result.
        return named_executions(base, state_machine_arn).next_name
    if entry.status in registry.REPROVISIONABLE:
        return f"{base}-{_short_hash(entry.execution_arn, entry.updated_at)[:8]}"
    return execution_name_in(entry.execution_arn, state_machine_arn) or base


@dataclass(frozen=True)
class NamedExecutions:
    """The executions of one state machine named after one base name."""

    latest: dict[str, Any] | None  # DescribeExecution of the newest one, None when there is none
    next_name: str  # the newest one's name while it runs, else the first name no execution holds

    @property
    def running(self) -> bool:
        return self.latest is not None and self.latest["status"] == "RUNNING"


def named_executions(base: str, state_machine_arn: str) -> NamedExecutions:
    """Follow `base` and the names derived from it while closed executions hold them.

    Deriving the next name from the closed execution gives every concurrent
    or retried request the same one.
    """
    client = stepfunctions()
    latest, name = None, base
    while True:
        try:
            described = client.describe_execution(executionArn=execution_arn(state_machine_arn, name))
        except client.exceptions.ExecutionDoesNotExist:
            return NamedExecutions(latest, name)
        latest = described
        if described["status"] == "RUNNING":
            return NamedExecutions(latest, name)
        name = f"{base}-{_short_hash(described['executionArn'], described.get('stopDate'))[:8]}"


def has_ended(arn: str) -> bool:
    """True once execution `arn` exists and is closed.

    One that does not exist yet has not ended: the API claims the registry
    entry just before it starts the execution the entry names.
    """
    client = stepfunctions()
    try:
        return client.describe_execution(executionArn=arn)["status"] != "RUNNING"
    except client.exceptions.ExecutionDoesNotExist:
        return False


def teardown_executions(entry: registry.RegistryEntry) -> NamedExecutions:
    """The TeardownPipeline executions of the pipeline generation `entry` records.

    Named after the pipeline id and the registry's current execution, so a
    retried DELETE names the same execution and a pipeline provisioned again
    later gets a new one; a teardown that failed or was stopped is followed by
    one under a name derived from it.
    """
    base = f"{entry.pipeline_id}-teardown-{_short_hash(entry.pipeline_id, entry.execution_arn, entry.created_at)}"
    return named_executions(base, state_machine_arn_from(TEARDOWN_STATE_MACHINE_ARN))


def lifecycle_execution_name(entry: registry.RegistryEntry, action: str) -> str:
    """The name of the `action` (pause, resume) execution requested on the entry as it is now.

    Derived from the pipeline id, the generation (the provisioning execution)
    and the entry's version, which every write bumps: requests that read the
    same entry agree on the name, and the next pause of the same pipeline gets
    another one.
    """
    return f"{entry.pipeline_id}-{action}-{_short_hash(entry.pipeline_id, entry.execution_arn, entry.version)}"
