"""Every step and compensation handler, run twice against the real local stack.

Each handler is invoked as the engine invokes it: first twice with the same
execution (the idempotency table answers the repeat with the stored result),
then again from another execution (the step's own work runs a second time and
must find everything already in place). What exists is read back from the
systems after every call (`tests/footprint.py`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from lambdas import registry
from lambdas.alarms import KINDS, alarm_name
from lambdas.errors import PipelineAlreadyOwned
from lambdas.kafka_topics import pipeline_topics
from lambdas.registry import PipelineStatus
from lambdas.spec import parse_spec
from localsfn.lambdas import LambdaContext
from statemachines import PROVISION, render
from statemachines.catalogue import by_key, import_handler, local_function_arn
from tests.footprint import Footprint, footprint

pytestmark = pytest.mark.slow

PIPELINE_ID = "steps_twice"
FIRST = f"arn:aws:states:us-east-1:000000000000:execution:ProvisionPipeline:{PIPELINE_ID}-first"
SECOND = f"arn:aws:states:us-east-1:000000000000:execution:ProvisionPipeline:{PIPELINE_ID}-second"
READY_TIMEOUT_SECONDS = 180


def static_parameters(state_name: str) -> dict[str, Any]:
    """What the rendered definition passes this state besides paths (a wait-loop's schedule, say)."""
    parameters = render.definition(PROVISION)["States"][state_name]["Parameters"]
    payload = parameters.get("Payload", parameters)
    return {key: value for key, value in payload.items() if not key.endswith(".$")}


def invoke(key: str, state_name: str, spec: dict[str, Any], execution_id: str, **fields: Any) -> dict[str, Any]:
    function = by_key(key)
    event = {**static_parameters(state_name), "spec": spec, "execution_id": execution_id, "state_name": state_name,
             **fields}
    return import_handler(function.handler)(
        event, LambdaContext(local_function_arn(function), function.timeout_seconds)
    )


def settled(spec: dict[str, Any]) -> Footprint:
    """What exists, leaving out what running connectors create on their own time (the sink's group and tables)."""
    return replace(footprint(parse_spec(spec)), consumer_groups=(), sink_tables=())


def twice(key: str, state_name: str, spec: dict[str, Any], **fields: Any) -> tuple[dict[str, Any], Footprint]:
    """Run a step, repeat it in the same execution and again in another; return its first result and what exists."""
    first = invoke(key, state_name, spec, FIRST, **fields)
    assert invoke(key, state_name, spec, FIRST, **fields) == first, f"{state_name}: the repeat ran again"
    after_first = settled(spec)
    invoke(key, state_name, spec, SECOND, **fields)
    assert settled(spec) == after_first, f"{state_name}: running it again changed what exists"
    return first, after_first


def until_ready(key: str, state_name: str, spec: dict[str, Any], **fields: Any) -> dict[str, Any]:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    attempt = 0
    while time.monotonic() < deadline:
        result = invoke(key, state_name, spec, FIRST, attempt=attempt, **fields)
        if result["ready"]:
            return result
        attempt = result["attempt"]
        time.sleep(1)
    raise AssertionError(f"{state_name} not ready after {READY_TIMEOUT_SECONDS} s")


def test_every_step_and_compensation_can_run_twice(workflow_env, spec_for) -> None:
    spec = invoke("ValidateSpec", "ValidateSpec", spec_for(PIPELINE_ID), FIRST)["spec"]
    names = parse_spec(spec).names

    # The registry is the exception: another execution may not take over the pipeline.
    registered = invoke("RegisterPipeline", "RegisterPipeline", spec, FIRST)
    assert invoke("RegisterPipeline", "RegisterPipeline", spec, FIRST) == registered
    with pytest.raises(PipelineAlreadyOwned):
        invoke("RegisterPipeline", "RegisterPipeline", spec, SECOND)
    assert registry.get(PIPELINE_ID).status is PipelineStatus.PROVISIONING
    result, _ = twice("EnsureLogicalReplication", "EnsureLogicalReplication", spec)
    assert result == {"wal_level": "logical", "reboot_required": False}
    _, exists = twice("CreateReplicationUser", "CreateReplicationUser", spec)
    assert exists.roles == (names.replication_role,) and exists.secrets == (names.replication_secret,)
    _, exists = twice("CreateHeartbeatTable", "CreateHeartbeatTable", spec)
    assert exists.heartbeat_tables == (names.heartbeat_qualified,)
    result, exists = twice("CreatePublication", "CreatePublication", spec)
    assert exists.publications == (names.publication,)
    _, exists = twice("CreateSlot", "CreateSlot", spec)
    assert exists.slots == (names.replication_slot,)
    _, exists = twice("CreateTopics", "CreateTopics", spec)
    assert sorted(exists.topics) == sorted(pipeline_topics(parse_spec(spec)))
    twice("PutSourceConnector", "PutSourceConnector", spec)
    until_ready("CheckConnector", "CheckSourceConnectorRunning", spec, connector="source")
    _, exists = twice("PutSinkConnector", "PutSinkConnector", spec)
    assert exists.connectors == (names.sink_connector, names.source_connector)
    until_ready("CheckConnector", "CheckSinkConnectorRunning", spec, connector="sink")
    canary, _ = twice("WriteCanary", "WriteCanary", spec)
    until_ready("CheckCanary", "CheckCanaryArrived", spec, token=canary["token"])
    _, exists = twice("PutAlarms", "PutAlarms", spec)
    assert sorted(exists.alarms) == sorted(alarm_name(PIPELINE_ID, kind.key) for kind in KINDS)
    marked = invoke("MarkPipeline", "MarkActive", spec, FIRST, status="ACTIVE")
    assert invoke("MarkPipeline", "MarkActive", spec, FIRST, status="ACTIVE") == marked
    with pytest.raises(PipelineAlreadyOwned):
        invoke("MarkPipeline", "MarkActive", spec, SECOND, status="ACTIVE")
    assert registry.get(PIPELINE_ID).status is PipelineStatus.ACTIVE

    # The compensations, in the order the workflow runs them; each finds less to do the second time.
    for compensation in PROVISION.compensation_chain():
        twice(compensation.function.key, compensation.name, spec)
    assert footprint(parse_spec(spec)).present() == {}
