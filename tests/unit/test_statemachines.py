"""Static checks of the state machine definitions that CDK deploys and the local engine runs."""

import json
import re
from pathlib import Path

import pytest

from cdcflow.catalogue import FUNCTIONS

pytestmark = pytest.mark.unit

STATEMACHINES = Path(__file__).resolve().parents[2] / "statemachines"
DEFINITIONS = sorted(STATEMACHINES.glob("*.asl.json"))
RETRY_POLICIES = json.loads((STATEMACHINES / "retry_policies.json").read_text())


def all_states(states: dict):
    for name, state in states.items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from all_states(branch["States"])
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from all_states(processor["States"])


@pytest.fixture(params=DEFINITIONS, ids=lambda p: p.name)
def definition(request) -> dict:
    return json.loads(request.param.read_text())


def test_there_is_a_provision_definition():
    assert STATEMACHINES / "provision_pipeline.asl.json" in DEFINITIONS


def test_every_retry_is_a_named_policy(definition):
    named = list(RETRY_POLICIES.values())
    for name, state in all_states(definition["States"]):
        for retrier in state.get("Retry", []):
            assert retrier in named, f"{name} has a Retry that is not one of {sorted(RETRY_POLICIES)}"


def test_every_substitution_names_a_catalogued_function(definition):
    known = {function.substitution for function in FUNCTIONS}
    used = set(re.findall(r"\$\{(\w+)\}", json.dumps(definition)))
    assert used, "a definition without function substitutions runs nothing"
    assert used <= known, f"unknown substitutions: {sorted(used - known)}"


def test_every_task_retries_lambda_service_errors(definition):
    for name, state in all_states(definition["States"]):
        if state["Type"] == "Task":
            errors = {error for retrier in state.get("Retry", []) for error in retrier["ErrorEquals"]}
            assert "IdempotencyAlreadyInProgressError" in errors, name


def test_task_payloads_carry_execution_and_state_for_idempotency(definition):
    for name, state in all_states(definition["States"]):
        if state["Type"] != "Task":
            continue
        payload = state["Parameters"].get("Payload", state["Parameters"])
        assert payload.get("execution_id.$") == "$$.Execution.Id", name
        assert payload.get("state_name.$") == "$$.State.Name", name


def test_provision_forward_steps_after_registration_route_failures_to_compensation():
    states = json.loads((STATEMACHINES / "provision_pipeline.asl.json").read_text())["States"]
    compensations = {"DeleteConnectors", "DeleteTopics", "DropSlot", "DropPublication",
                     "DropHeartbeatTable", "DropReplicationUser", "MarkFailed"}
    for name, state in states.items():
        if state["Type"] != "Task" or name in compensations | {"ValidateSpec", "RegisterPipeline"}:
            continue
        targets = {catcher["Next"] for catcher in state["Catch"]}
        assert targets == {"DeleteConnectors"}, f"{name} fails to {targets}"
        assert state["Catch"][0]["ErrorEquals"] == ["States.ALL"]


def test_provision_compensations_run_in_reverse_order_and_never_stop_the_chain():
    states = json.loads((STATEMACHINES / "provision_pipeline.asl.json").read_text())["States"]
    chain = ["DeleteConnectors", "DeleteTopics", "DropSlot", "DropPublication",
             "DropHeartbeatTable", "DropReplicationUser", "MarkFailed"]
    for current, following in zip(chain, chain[1:]):
        assert states[current]["Next"] == following
        assert {c["Next"] for c in states[current].get("Catch", [])} <= {following}
    assert states["MarkFailed"]["Next"] == "ProvisionFailed"
    assert states["ProvisionFailed"]["Type"] == "Fail"
