"""Execution naming and starting once, against moto's Step Functions (the API's tests cover them through routes)."""

from __future__ import annotations

import boto3
import pytest

from lambdas import executions
from tests.unit.factories import create_state_machine

pytestmark = pytest.mark.unit

STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:TeardownPipeline"


@pytest.fixture
def state_machine(moto):
    return create_state_machine(boto3.client("stepfunctions"), "TeardownPipeline")


def test_an_execution_arn_gives_back_its_name_only_for_its_own_state_machine():
    arn = executions.execution_arn(STATE_MACHINE, "orders-teardown-abc")
    assert arn == "arn:aws:states:us-east-1:123456789012:execution:TeardownPipeline:orders-teardown-abc"
    assert executions.execution_name_in(arn, STATE_MACHINE) == "orders-teardown-abc"
    other = STATE_MACHINE.replace("TeardownPipeline", "ProvisionPipeline")
    assert executions.execution_name_in(arn, other) is None
    assert executions.execution_name_in(None, STATE_MACHINE) is None


def test_a_name_is_started_once_and_refused_to_another_input(state_machine):
    first = executions.start_execution_once(state_machine, "orders-x", {"spec": {"pipeline_id": "orders"}})
    again = executions.start_execution_once(state_machine, "orders-x", {"spec": {"pipeline_id": "orders"}})
    assert again["execution_arn"] == first["execution_arn"]
    with pytest.raises(executions.ExecutionInputDiffers, match="execution 'orders-x' already exists") as refused:
        executions.start_execution_once(state_machine, "orders-x", {"spec": {"pipeline_id": "other"}})
    assert refused.value.execution_arn == first["execution_arn"]


def test_a_closed_execution_is_followed_by_one_name_derived_from_it(state_machine):
    assert executions.named_executions("orders-t", state_machine) == executions.NamedExecutions(None, "orders-t")
    started = executions.start_execution_once(state_machine, "orders-t", {})
    assert executions.named_executions("orders-t", state_machine).running
    boto3.client("stepfunctions").stop_execution(executionArn=started["execution_arn"])

    after = executions.named_executions("orders-t", state_machine)
    assert not after.running and after.latest["executionArn"] == started["execution_arn"]
    assert after.next_name.startswith("orders-t-") and after.next_name != "orders-t"
    assert executions.named_executions("orders-t", state_machine).next_name == after.next_name
    assert executions.has_ended(started["execution_arn"])
    assert not executions.has_ended(executions.execution_arn(state_machine, after.next_name))


def test_an_unset_state_machine_variable_is_named(monkeypatch):
    monkeypatch.delenv(executions.TEARDOWN_STATE_MACHINE_ARN, raising=False)
    with pytest.raises(RuntimeError, match="TEARDOWN_STATE_MACHINE_ARN is not set"):
        executions.state_machine_arn_from(executions.TEARDOWN_STATE_MACHINE_ARN)
