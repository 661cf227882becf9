"""`current_step` follows the execution live: every step records itself in the registry as it starts.

The registry is moto's DynamoDB; the step is a real `step_handler` invoked as
the engine (or Lambda) invokes it, with the state name in its payload.
"""

from __future__ import annotations

import boto3
import pytest

from infra import functions as infra_functions
from lambdas import registry
from lambdas.common import step_handler
from lambdas.registry import PipelineStatus
from statemachines import catalogue
from statemachines.model import REGISTRY_STEP
from tests.unit.factories import pipeline_spec, raw_spec

pytestmark = pytest.mark.unit

EXECUTION = "arn:aws:states:us-east-1:000000000000:execution:ProvisionPipeline:orders-1"


@pytest.fixture
def registered(registry_table, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_IDEMPOTENCY_DISABLED", "1")
    return registry.register(pipeline_spec(), EXECUTION)


def invoke(state_name: str, seen: list[str | None] | None = None) -> dict:
    @step_handler
    def handler(spec, event):
        if seen is not None:
            seen.append(registry.get(spec.pipeline_id).current_step)  # what a reader sees while the step runs
        return {"ran": event["state_name"]}

    return handler({"spec": raw_spec(), "execution_id": EXECUTION, "state_name": state_name}, None)


def test_each_step_records_itself_before_it_runs(registered):
    assert registered.current_step is None
    seen: list[str | None] = []
    invoke("CreateReplicationUser", seen)
    invoke("CreateSlot", seen)
    assert seen == ["CreateReplicationUser", "CreateSlot"]
    entry = registry.get("orders")
    assert (entry.current_step, entry.status) == ("CreateSlot", PipelineStatus.PROVISIONING)


def test_a_teardown_step_records_itself_while_deleting(registered):
    registry.mark("orders", PipelineStatus.DELETING, current_step="MarkDeleting")
    invoke("DropSlot")
    assert registry.get("orders").current_step == "DropSlot"


@pytest.mark.parametrize("settled", [PipelineStatus.ACTIVE, PipelineStatus.FAILED, PipelineStatus.DELETED])
def test_a_settled_pipeline_keeps_its_step(registered, settled):
    registry.mark("orders", settled, current_step="MarkActive")
    assert registry.record_step("orders", "CheckConnector") is False
    invoke("CheckConnector")
    entry = registry.get("orders")
    assert (entry.current_step, entry.status) == ("MarkActive", settled)


def test_an_unregistered_pipeline_or_a_missing_table_never_fails_the_step(registry_table, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_IDEMPOTENCY_DISABLED", "1")
    assert registry.record_step("ghost", "CreateSlot") is False
    assert registry.get("ghost") is None  # no entry is created by recording a step
    monkeypatch.setenv("REGISTRY_TABLE", "no-such-table")
    assert registry.record_step("orders", "CreateSlot") is False
    assert invoke("CreateSlot") == {"ran": "CreateSlot"}


def test_recording_touches_only_the_attributes_iam_allows(registered):
    before = boto3.client("dynamodb").get_item(TableName=registry.table_name(), Key={"pipeline_id": {"S": "orders"}})
    registry.record_step("orders", "CreateTopics")
    after = boto3.client("dynamodb").get_item(TableName=registry.table_name(), Key={"pipeline_id": {"S": "orders"}})
    changed = {name for name in after["Item"] if before["Item"].get(name) != after["Item"][name]}
    assert changed <= set(registry.STEP_ATTRIBUTES)
    assert changed == {"current_step", "updated_at", "version"}
    assert registry.STEP_ATTRIBUTES == infra_functions.STEP_ATTRIBUTES


def test_every_workflow_step_may_record_its_step():
    steps = [function for function in catalogue.FUNCTIONS if function.handler.startswith("lambdas.steps.")]
    assert steps and all(REGISTRY_STEP in function.permissions for function in steps)
