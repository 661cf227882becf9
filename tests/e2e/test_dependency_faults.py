"""ProvisionPipeline against dependencies that really go away: services stopped and restarted mid-workflow.

The workflow runs on the local engine in this process. Each fault is a real
one: the stack's Kafka Connect, PostgreSQL or Kafka process is stopped while
the step that needs it runs, so the step meets a refused connection or a
server shutting down, exactly as it would on AWS. The service comes back
before the step's next attempt, so each scenario shows the Retry policy
turning the outage into success; a transaction that blocks slot creation
shows the other outcome, the named error and a complete rollback. What is
left is counted by inventory queries (`tests/footprint.py`), not taken from
return values.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cdcflow.local import stack
from cdcflow.local.config import Endpoints
from lambdas import registry
from lambdas.registry import PipelineStatus
from lambdas.spec import parse_spec
from statemachines.catalogue import resolve_local_function
from tests.footprint import footprint

pytestmark = pytest.mark.slow

EXECUTION_TIMEOUT_SECONDS = 600
Action = Callable[[], None]


def stop(service: str) -> Action:
    return lambda: stack.down(only=[service])


def restore_stack() -> None:
    """Start whatever is down and wait until every service answers."""
    stack.up()


class Outages:
    """Wraps the real handlers: before the n-th call of a state, run that state's n-th action.

    Records the error each call of the real handler raised, by type name, so a
    test can see that the outage was met and named, not skipped.
    """

    def __init__(self, actions: dict[str, list[Action]]) -> None:
        self.pending = defaultdict(list, {state: list(queue) for state, queue in actions.items()})
        self.errors: dict[str, list[str]] = defaultdict(list)
        self.calls: Counter[str] = Counter()

    def __call__(self, arn: str) -> Callable[[dict[str, Any], Any], Any] | None:
        handler = resolve_local_function(arn)
        if handler is None:
            return None

        def invoke(event: dict[str, Any], context: Any) -> Any:
            state = event.get("state_name", "")
            self.calls[state] += 1
            if self.pending[state]:
                self.pending[state].pop(0)()
            try:
                return handler(event, context)
            except Exception as error:
                self.errors[state].append(type(error).__name__)
                raise

        return invoke


@pytest.fixture
def stack_restored(workflow_env: Endpoints) -> Iterator[Endpoints]:
    """Whatever a scenario stops, the next test finds every service up again."""
    yield workflow_env
    restore_stack()


def run(engine_with: Callable[..., Any], machine: str, payload: dict[str, Any], name: str, functions=None) -> dict:
    with engine_with(functions or resolve_local_function) as (engine, machines):
        arn = engine.start_execution(machines[machine], json.dumps(payload), name=name)
        return engine.wait_for_execution(arn, EXECUTION_TIMEOUT_SECONDS)


def provision_then_teardown(engine_with, spec: dict[str, Any], outages: Outages) -> dict[str, Any]:
    """Provision under `outages`; check it is ACTIVE, tear it down and check nothing is left."""
    execution = run(engine_with, "ProvisionPipeline", {"spec": spec}, spec["pipeline_id"], outages)
    assert execution["status"] == "SUCCEEDED", execution
    assert registry.get(spec["pipeline_id"]).status is PipelineStatus.ACTIVE

    teardown = run(
        engine_with,
        "TeardownPipeline",
        {"spec": spec, "keep_topics": False, "keep_index": False},
        f"teardown-{spec['pipeline_id']}",
    )
    assert teardown["status"] == "SUCCEEDED", teardown
    assert footprint(parse_spec(spec)).present() == {}
    return execution


def test_connect_stopped_during_the_source_connector_wait_loop(engine_with, spec_for, stack_restored) -> None:
    spec = spec_for("fault_connect_down")
    outages = Outages({"CheckSourceConnectorRunning": [stop("connect"), restore_stack]})

    provision_then_teardown(engine_with, spec, outages)

    assert outages.errors["CheckSourceConnectorRunning"][0] == "ConnectUnavailable"
    assert outages.calls["CheckSourceConnectorRunning"] >= 2


def test_postgres_restarted_while_the_slot_is_being_created(
    engine_with, spec_for, stack_restored: Endpoints
) -> None:
    """An open transaction holds slot creation in its wait, so the restart lands inside CREATE_REPLICATION_SLOT."""
    spec = spec_for("fault_pg_restart")
    slot = f"cdcflow_{spec['pipeline_id']}"
    blocker = psycopg.connect(stack_restored.postgres.source_dsn())
    blocker.execute("SELECT pg_current_xact_id()")  # a transaction with an xid: creation waits for it

    def stop_postgres_once_creation_waits() -> None:
        def watch() -> None:
            with psycopg.connect(stack_restored.postgres.source_dsn(), autocommit=True) as conn:
                while not conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [slot]).fetchone():
                    time.sleep(0.05)
            stack.down(only=["postgres"])

        threading.Thread(target=watch, daemon=True).start()

    outages = Outages({"CreateSlot": [stop_postgres_once_creation_waits, restore_stack]})
    try:
        provision_then_teardown(engine_with, spec, outages)
    finally:
        blocker.close()

    assert outages.errors["CreateSlot"][0] == "DatabaseUnavailable"
    assert outages.calls["CreateSlot"] == 2


def test_kafka_stopped_during_topic_creation(engine_with, spec_for, stack_restored) -> None:
    spec = spec_for("fault_kafka_down")
    outages = Outages({"CreateTopics": [stop("kafka"), restore_stack]})

    provision_then_teardown(engine_with, spec, outages)

    assert outages.errors["CreateTopics"][0] == "KafkaUnavailable"
    assert outages.calls["CreateTopics"] >= 2


def test_a_long_transaction_blocking_the_slot_ends_in_the_named_error_and_a_full_rollback(
    engine_with, spec_for, workflow_env: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLOT_CREATE_WAIT_SECONDS", "3")
    spec = spec_for("fault_long_transaction")
    with psycopg.connect(workflow_env.postgres.source_dsn()) as blocker:
        blocker.execute("SELECT pg_current_xact_id()")
        blocker_pid = blocker.info.backend_pid

        execution = run(engine_with, "ProvisionPipeline", {"spec": spec}, spec["pipeline_id"])

        assert execution["status"] == "FAILED"
        assert execution["error"] == "SlotBlockedByLongTransaction"
        assert f"pid {blocker_pid}" in execution["cause"]
        assert "within 3s" in execution["cause"]
        entry = registry.get(spec["pipeline_id"])
        assert entry.status is PipelineStatus.FAILED
        assert entry.current_step == "CreateSlot"
        # The rollback did not need the transaction gone: nothing is left while it still runs.
        assert footprint(parse_spec(spec)).present() == {}
        blocker.rollback()

    assert footprint(parse_spec(spec)).present() == {}


def retry_attempts(error: str) -> int:
    """How many times a task is run for `error` before its Catch takes over: once, plus its policy's retries."""
    policies = json.loads((Path(__file__).parents[2] / "statemachines" / "retry_policies.json").read_text())
    (policy,) = [policy for policy in policies.values() if error in policy["ErrorEquals"]]
    return 1 + policy["MaxAttempts"]


@pytest.mark.parametrize(
    ("service", "failing_state", "error", "back_before"),
    [
        ("connect", "CheckSourceConnectorRunning", "ConnectUnavailable", "DeleteConnectors"),
        ("kafka", "CreateTopics", "KafkaUnavailable", "DeleteTopics"),
    ],
)
def test_an_outage_that_outlasts_the_retries_is_rolled_back_once_the_service_is_back(
    engine_with, spec_for, stack_restored, service: str, failing_state: str, error: str, back_before: str
) -> None:
    spec = spec_for(f"fault_{service}_gone")
    outages = Outages({failing_state: [stop(service)], back_before: [restore_stack]})

    execution = run(engine_with, "ProvisionPipeline", {"spec": spec}, spec["pipeline_id"], outages)

    assert execution["status"] == "FAILED"
    assert execution["error"] == error
    assert outages.errors[failing_state] == [error] * retry_attempts(error)
    assert set(outages.errors) == {failing_state}  # every compensation succeeded at its first attempt
    entry = registry.get(spec["pipeline_id"])
    assert entry.status is PipelineStatus.FAILED
    assert entry.current_step == failing_state
    assert footprint(parse_spec(spec)).present() == {}
