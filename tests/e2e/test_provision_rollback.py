"""ProvisionPipeline rolls back cleanly whichever step fails, and its compensations survive failing themselves.

The workflow runs on the local engine in this process, against the real
local stack; failures are injected by wrapping the real handlers, so every
step before the failing one really ran. What is left afterwards is counted by
querying PostgreSQL, Kafka, Connect and Secrets Manager (`tests/footprint.py`).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from lambdas import registry
from lambdas.errors import ConnectUnavailable, DatabaseUnavailable, KafkaUnavailable
from lambdas.registry import PipelineStatus
from lambdas.spec import parse_spec
from statemachines.catalogue import resolve_local_function
from tests.footprint import footprint

pytestmark = pytest.mark.slow

# Every task state of a provision from a self-managed source, in order.
HAPPY_PATH_TASKS = (
    "RegisterPipeline",
    "EnsureLogicalReplication",
    "CreateReplicationUser",
    "CreateHeartbeatTable",
    "CreatePublication",
    "CreateSlot",
    "CreateTopics",
    "PutSourceConnector",
    "CheckSourceConnectorRunning",
    "PutSinkConnector",
    "CheckSinkConnectorRunning",
    "WriteCanary",
    "CheckCanaryArrived",
    "PutAlarms",
    "MarkActiveBackfilling",  # the default snapshot mode's way to ACTIVE; a failure up to here rolls back
)

# Each compensation, with a transient error its Retry policy covers.
COMPENSATIONS = {
    "DeleteConnectors": ConnectUnavailable,
    "DeleteTopics": KafkaUnavailable,
    "DropSlot": DatabaseUnavailable,
    "DropPublication": DatabaseUnavailable,
    "DropHeartbeatTable": DatabaseUnavailable,
    "DropReplicationUser": DatabaseUnavailable,
}

EXECUTION_TIMEOUT_SECONDS = 600


class InjectedFault(Exception):
    """Raised in place of a step's work; the engine reports it under this name, as Lambda would."""


class FaultPlan:
    """Wraps the real handlers: the listed states fail with the given errors, in order, before running for real."""

    def __init__(self, failures: dict[str, list[Exception]]) -> None:
        self.pending = defaultdict(list, {state: list(errors) for state, errors in failures.items()})
        self.calls: Counter[str] = Counter()

    def __call__(self, arn: str) -> Callable[[dict[str, Any], Any], Any] | None:
        handler = resolve_local_function(arn)
        if handler is None:
            return None

        def invoke(event: dict[str, Any], context: Any) -> Any:
            state = event.get("state_name", "")
            self.calls[state] += 1
            if self.pending[state]:
                raise self.pending[state].pop(0)
            return handler(event, context)

        return invoke


def provision(engine_with: Callable[..., Any], spec: dict[str, Any], plan: FaultPlan) -> dict[str, Any]:
    with engine_with(plan) as (engine, machines):
        arn = engine.start_execution(
            machines["ProvisionPipeline"],
            json.dumps({"spec": spec}),
            name=spec["pipeline_id"],
        )
        return engine.wait_for_execution(arn, EXECUTION_TIMEOUT_SECONDS)


def teardown(engine_with: Callable[..., Any], spec: dict[str, Any]) -> dict[str, Any]:
    with engine_with() as (engine, machines):
        arn = engine.start_execution(
            machines["TeardownPipeline"],
            json.dumps({"spec": spec, "keep_topics": False, "keep_index": False}),
            name=f"teardown-{spec['pipeline_id']}",
        )
        return engine.wait_for_execution(arn, EXECUTION_TIMEOUT_SECONDS)


@pytest.mark.parametrize("failing_state", HAPPY_PATH_TASKS)
def test_a_failing_step_is_rolled_back_without_leftovers(engine_with, spec_for, failing_state: str) -> None:
    spec = spec_for(f"rb_{failing_state.lower()}")
    plan = FaultPlan({failing_state: [InjectedFault(f"injected failure at {failing_state}")]})

    execution = provision(engine_with, spec, plan)

    assert execution["status"] == "FAILED"
    assert execution["error"] == "InjectedFault"
    assert f"injected failure at {failing_state}" in execution["cause"]
    # No step after the failing one ran.
    later = HAPPY_PATH_TASKS[HAPPY_PATH_TASKS.index(failing_state) + 1 :]
    assert not [state for state in later if plan.calls[state]]
    entry = registry.get(spec["pipeline_id"])
    if failing_state == "RegisterPipeline":
        assert entry is None  # the id was never claimed
    else:
        assert entry.status is PipelineStatus.FAILED
        assert entry.current_step == failing_state
        assert entry.last_error["error"] == "InjectedFault"
        assert entry.last_error["cause"] == f"{failing_state}: injected failure at {failing_state}"
    assert footprint(parse_spec(spec)).present() == {}


def test_compensations_that_fail_once_are_retried_and_finish(engine_with, spec_for) -> None:
    spec = spec_for("rb_flaky_compensations")
    failures: dict[str, list[Exception]] = {
        "CheckCanaryArrived": [InjectedFault("injected failure at CheckCanaryArrived")]
    }
    for compensation, error in COMPENSATIONS.items():
        failures[compensation] = [error(f"injected transient failure at {compensation}")]
    plan = FaultPlan(failures)

    execution = provision(engine_with, spec, plan)

    assert execution["status"] == "FAILED"
    assert execution["error"] == "InjectedFault"  # the original failure, not a compensation's
    assert {compensation: plan.calls[compensation] for compensation in COMPENSATIONS} == dict.fromkeys(COMPENSATIONS, 2)
    entry = registry.get(spec["pipeline_id"])
    assert entry.status is PipelineStatus.FAILED
    assert entry.last_error == {
        "error": "InjectedFault",
        "cause": "CheckCanaryArrived: injected failure at CheckCanaryArrived",
    }
    assert footprint(parse_spec(spec)).present() == {}


def test_a_compensation_that_keeps_failing_is_reported_and_teardown_finishes_the_job(engine_with, spec_for) -> None:
    spec = spec_for("rb_stuck_compensation")
    plan = FaultPlan(
        {
            "WriteCanary": [InjectedFault("injected failure at WriteCanary")],
            "DropSlot": [InjectedFault("injected failure at DropSlot")],
        }
    )

    execution = provision(engine_with, spec, plan)

    assert execution["status"] == "FAILED"
    assert execution["error"] == "InjectedFault"
    entry = registry.get(spec["pipeline_id"])
    assert entry.status is PipelineStatus.FAILED
    assert entry.last_error == {
        "error": "InjectedFault",
        "cause": "WriteCanary: injected failure at WriteCanary | cleanup incomplete, run the teardown again: "
        f"replication slot cdcflow_{spec['pipeline_id']} (DropSlot: InjectedFault: injected failure at DropSlot)",
    }
    # Everything but the slot was undone; the slot is named as left behind.
    assert footprint(parse_spec(spec)).present() == {"slots": [f"cdcflow_{spec['pipeline_id']}"]}

    finished = teardown(engine_with, spec)

    assert finished["status"] == "SUCCEEDED"
    assert registry.get(spec["pipeline_id"]).status is PipelineStatus.DELETED
    assert footprint(parse_spec(spec)).present() == {}


def test_a_failed_backfill_keeps_the_streaming_pipeline_and_says_to_resync(engine_with, spec_for) -> None:
    spec = spec_for("rb_backfill")
    plan = FaultPlan({"StartBackfill": [InjectedFault("injected failure at StartBackfill")]})

    execution = provision(engine_with, spec, plan)

    assert execution["status"] == "FAILED"
    assert execution["error"] == "InjectedFault"
    assert "rows that existed before it may be missing at the sink: resync" in execution["cause"]
    # Nothing is rolled back: the pipeline streams, released by its provisioning, with the failure recorded.
    entry = registry.get(spec["pipeline_id"])
    assert entry.status is PipelineStatus.ACTIVE and entry.lifecycle_execution_arn is None
    assert entry.backfill["status"] == "FAILED" and entry.backfill["error"] == "InjectedFault"
    assert entry.last_error["error"] == "InjectedFault"
    present = footprint(parse_spec(spec)).present()
    assert present["slots"] == [f"cdcflow_{spec['pipeline_id']}"] and len(present["connectors"]) == 2

    finished = teardown(engine_with, spec)

    assert finished["status"] == "SUCCEEDED"
    assert footprint(parse_spec(spec)).present() == {}
