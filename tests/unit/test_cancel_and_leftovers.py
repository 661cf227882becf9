"""Cancel and clean: what a rollback records as left, what a teardown skips, and the wait for a stopped step."""

from __future__ import annotations

import inspect
import time

import pytest

from lambdas import registry
from lambdas.common import idempotency, step_handler
from lambdas.errors import DatabaseUnavailable
from lambdas.registry import PipelineStatus
from lambdas.steps import cancel
from lambdas.steps.registry import mark_handler
from statemachines.catalogue import import_handler
from statemachines.provision_pipeline import PROVISION, STEPS, undoes
from statemachines.teardown_pipeline import PROVISION_STEP_KEY_PREFIXES
from tests.unit.factories import pipeline_spec, raw_spec

pytestmark = pytest.mark.unit

EXECUTION = "arn:aws:states:us-east-1:000000000000:execution:ProvisionPipeline:orders-1"
UNDOES = undoes(STEPS)


@pytest.fixture
def entry(registry_table, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_IDEMPOTENCY_DISABLED", "1")
    spec = pipeline_spec()
    registry.register(spec, EXECUTION)
    return spec


def mark(status: str, **fields) -> dict:
    return mark_handler({"spec": raw_spec(), "execution_id": EXECUTION, "state_name": f"Mark{status.title()}",
                         "status": status, **fields}, None)


def caught(message: str) -> dict:
    return {"Error": "DatabaseUnavailable", "Cause": message}


def test_a_failure_at_preflight_records_that_nothing_is_left_and_the_teardown_learns_it(entry):
    mark("FAILED", errors={"Preflight": {"Error": "SourceUnreachable", "Cause": "127.0.0.1:1"}},
         compensation_errors={}, results={}, undoes=UNDOES)

    failed = registry.get("orders")
    assert failed.recorded_left() == []
    assert "cleanup incomplete" not in failed.last_error["cause"]
    assert mark("DELETING") == {"pipeline_id": "orders", "status": "DELETING", "resources_left": [],
                                "nothing_left": True}


def test_a_compensation_that_failed_for_a_step_that_never_ran_is_not_reported_as_left(entry):
    mark("FAILED",
         errors={"CreatePublication": {"Error": "DatabaseUnavailable", "Cause": "PostgreSQL is unavailable"}},
         compensation_errors={"DropSlot": caught("cannot reach PostgreSQL"),
                              "DropPublication": caught("cannot reach PostgreSQL"),
                              "DropReplicationUser": caught("cannot reach PostgreSQL")},
         results={"Preflight": {}, "CreateReplicationUser": {}, "CreateHeartbeatTable": {}}, undoes=UNDOES)

    failed = registry.get("orders")
    # CreateSlot never ran; CreatePublication failed part-way, CreateReplicationUser finished.
    assert failed.recorded_left() == ["DropPublication", "DropReplicationUser"]
    cause = failed.last_error["cause"]
    assert "cleanup incomplete" in cause
    assert "publication cdcflow_orders (DropPublication" in cause
    assert "replication role cdcflow_orders and secret cdcflow/orders/replication" in cause
    assert "DropSlot" not in cause and "replication slot" not in cause
    assert mark("DELETING")["nothing_left"] is False


def test_without_a_record_of_the_current_execution_everything_may_be_left(entry):
    assert mark("DELETING") == {"pipeline_id": "orders", "status": "DELETING", "resources_left": None,
                                "nothing_left": False}
    # A record made by an earlier execution says nothing of the current one.
    registry.mark("orders", PipelineStatus.FAILED, resources_left=("arn:aws:states:...:an-older-one", []))
    assert registry.get("orders").recorded_left() is None


def test_provisioning_again_forgets_the_record(entry):
    mark("FAILED", errors={"Preflight": {"Error": "SourceUnreachable", "Cause": ""}}, compensation_errors={},
         results={}, undoes=UNDOES)
    again = registry.register(pipeline_spec(), EXECUTION + "-2")
    assert again.resources_left is None and registry.get("orders").resources_left is None


@step_handler(idempotent=False)
def drop_something(spec, event):
    raise DatabaseUnavailable("PostgreSQL is unavailable: connection refused at 127.0.0.1:1")


def compensation(**fields) -> dict:
    return {"spec": raw_spec(), "execution_id": EXECUTION, "state_name": "DropSlot", **fields}


def test_an_unreachable_dependency_of_what_was_never_created_is_nothing_to_undo():
    result = drop_something(compensation(resources_left=["DropReplicationUser"]), None)
    assert result["nothing_left"] is True and "127.0.0.1:1" in result["skipped"]


@pytest.mark.parametrize("resources_left", [["DropSlot"], None, "absent"])
def test_an_unreachable_dependency_of_what_may_exist_still_fails(resources_left):
    fields = {} if resources_left == "absent" else {"resources_left": resources_left}
    with pytest.raises(DatabaseUnavailable):
        drop_something(compensation(**fields), None)


def test_the_teardown_knows_each_provisioning_step_by_its_idempotency_key_prefix():
    for task in PROVISION.tasks():
        function = inspect.unwrap(import_handler(task.function.handler))
        assert PROVISION_STEP_KEY_PREFIXES[task.name] == f"cdcflow.{function.__module__}.{function.__qualname__}"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_wait_for_a_stopped_step_lasts_while_its_record_is_in_progress(monkeypatch):
    clock = FakeClock()
    # In progress for the first 3 s of the wait, then finished.
    monkeypatch.setattr(cancel, "in_progress_until", lambda prefix, task: time.time() + 60 if clock.now < 3 else None)
    waited = cancel.await_step("cdcflow.lambdas.steps.slot.create_handler", {}, clock=clock, sleep=clock.sleep)
    assert 3 <= waited < 3.5


def test_a_step_that_never_began_is_waited_for_only_briefly(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(cancel, "in_progress_until", lambda prefix, task: None)
    waited = cancel.await_step("p", {}, clock=clock, sleep=clock.sleep)
    assert cancel.NOT_BEGUN_GRACE_SECONDS <= waited < cancel.NOT_BEGUN_GRACE_SECONDS + 0.5


def test_a_step_that_never_finishes_ends_the_wait_with_an_error(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(cancel, "in_progress_until", lambda prefix, task: time.time() + 60)
    with pytest.raises(TimeoutError, match="CreateSlot"):
        cancel.await_step("p", {"state_name": "CreateSlot"}, clock=clock, sleep=clock.sleep, deadline_seconds=5)


class LambdaContext:
    """The attributes Powertools reads: the in-progress record expires when the function's time is up."""

    function_name = "cdcflow-create-slot"
    aws_request_id = "req-1"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:cdcflow-create-slot"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def test_in_progress_records_are_found_and_forgotten_but_finished_ones_kept(registry_table, monkeypatch):
    monkeypatch.setenv(idempotency.TABLE_ENV, "cdcflow-idempotency")
    monkeypatch.delenv(idempotency.DISABLED_ENV, raising=False)
    idempotency.reset_persistence_layers()
    task = {"spec": raw_spec(), "execution_id": EXECUTION, "state_name": "CreateSlot"}
    seen: dict[str, float | None] = {}

    def step() -> dict:
        seen["during"] = idempotency.in_progress_until("cdcflow.test.step", task)
        return {"ok": True}

    idempotency.run_once(step, task, LambdaContext(), "cdcflow.test.step")
    assert seen["during"] is not None and seen["during"] > time.time()
    assert idempotency.in_progress_until("cdcflow.test.step", task) is None  # finished

    # A run whose process died: nothing removed its record (a BaseException is not handled as a failure).
    def dies() -> dict:
        raise SystemExit("the process died")

    other = {**task, "state_name": "CreateTopics"}
    with pytest.raises(SystemExit):
        idempotency.run_once(dies, other, LambdaContext(), "cdcflow.test.dies")
    assert idempotency.in_progress_until("cdcflow.test.dies", other) > time.time() + 250
    assert len(idempotency.forget_in_progress_records()) == 1
    assert idempotency.in_progress_until("cdcflow.test.dies", other) is None
    assert idempotency.in_progress_until("cdcflow.test.step", task) is None
    assert idempotency.run_once(lambda: {"again": True}, other, LambdaContext(), "cdcflow.test.dies") == {"again": True}
