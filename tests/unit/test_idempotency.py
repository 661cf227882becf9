"""step_handler's idempotency against moto's DynamoDB: once per execution, state and pipeline."""

from __future__ import annotations

import threading
import time

import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from cdcflow.local.tables import ensure_tables
from lambdas.common import idempotency, step_handler
from lambdas.errors import DatabaseUnavailable
from tests.unit.factories import raw_spec

pytestmark = pytest.mark.unit

SPEC = raw_spec()
TABLE = "cdcflow-idempotency"  # the table `registry_table` creates beside the registry


def task(execution: str = "e1", state: str = "CreateSlot", **fields) -> dict:
    return {
        "spec": SPEC,
        "execution_id": f"arn:aws:states:us-east-1:000000000000:execution:provision:{execution}",
        "state_name": state,
        **fields,
    }


class Context:
    function_name = "cdcflow-create-slot"
    aws_request_id = "req"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:cdcflow-create-slot"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def idempotency_table(registry_table, monkeypatch):
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED", raising=False)
    monkeypatch.setenv("IDEMPOTENCY_TABLE", TABLE)
    idempotency.reset_persistence_layers()
    yield registry_table
    idempotency.reset_persistence_layers()


def counting_step(calls: list) -> object:
    @step_handler
    def create_slot(spec, event):
        calls.append(event["execution_id"])
        return {"slot": spec.names.replication_slot, "run": len(calls)}

    return create_slot


def test_same_execution_and_state_runs_once_and_replays_the_result(idempotency_table):
    calls: list = []
    handler = counting_step(calls)
    first = handler(task(), Context())
    second = handler(task(), Context())
    assert first == second == {"slot": "cdcflow_orders", "run": 1}
    assert len(calls) == 1
    assert idempotency_table.scan(TableName=TABLE)["Count"] == 1


def test_retry_fields_are_not_part_of_the_key(idempotency_table):
    calls: list = []
    handler = counting_step(calls)
    handler(task(retry_count=0, requested_at="2026-11-22T10:00:00Z"), Context())
    handler(task(retry_count=1, requested_at="2026-11-22T10:00:05Z"), Context())
    assert len(calls) == 1


def test_another_execution_or_state_runs_again(idempotency_table):
    calls: list = []
    handler = counting_step(calls)
    handler(task(execution="e1"), Context())
    handler(task(execution="e2"), Context())
    handler(task(execution="e1", state="CreateSlotAgain"), Context())
    assert len(calls) == 3


def test_another_pipeline_in_the_same_execution_runs_again(idempotency_table):
    calls: list = []
    handler = counting_step(calls)
    handler(task(), Context())
    handler({**task(), "spec": {**SPEC, "pipeline_id": "payments"}}, Context())
    assert len(calls) == 2


def test_a_failed_run_leaves_no_record_so_the_retry_runs(idempotency_table):
    attempts: list = []

    @step_handler
    def flaky(spec, event):
        attempts.append(1)
        if len(attempts) == 1:
            raise DatabaseUnavailable("connection refused")
        return {"attempt": len(attempts)}

    with pytest.raises(DatabaseUnavailable):
        flaky(task(), Context())
    assert flaky(task(), Context()) == {"attempt": 2}
    assert flaky(task(), Context()) == {"attempt": 2}
    assert len(attempts) == 2


def test_a_concurrent_duplicate_raises_already_in_progress(idempotency_table):
    started, release = threading.Event(), threading.Event()
    results: dict = {}

    @step_handler
    def slow(spec, event):
        started.set()
        release.wait(timeout=30)
        return {"done": True}

    first = threading.Thread(target=lambda: results.setdefault("first", slow(task(), Context())))
    first.start()
    assert started.wait(timeout=30)
    try:
        with pytest.raises(IdempotencyAlreadyInProgressError):
            slow(task(), Context())
    finally:
        release.set()
        first.join(timeout=30)
    assert results["first"] == {"done": True}
    assert slow(task(), Context()) == {"done": True}


def test_checks_polled_by_wait_loops_run_every_time(idempotency_table):
    calls: list = []

    @step_handler(idempotent=False)
    def check(spec, event):
        calls.append(event["attempt"])
        return {"ready": event["attempt"] >= 2}

    assert check(task(attempt=1), Context()) == {"ready": False}
    assert check(task(attempt=2), Context()) == {"ready": True}
    assert calls == [1, 2]
    assert idempotency_table.scan(TableName=TABLE)["Count"] == 0


def test_records_expire_after_the_longest_execution(idempotency_table):
    counting_step([])(task(), Context())
    item = idempotency_table.scan(TableName=TABLE)["Items"][0]
    expires_in = int(item["expiration"]["N"]) - time.time()
    assert 2 * 24 * 3600 < expires_in <= idempotency.RECORD_TTL_SECONDS
    assert item["status"]["S"] == "COMPLETED"


def test_the_table_is_read_from_the_environment_on_first_use(idempotency_table, monkeypatch):
    monkeypatch.setenv("IDEMPOTENCY_TABLE", "another-table")
    ensure_tables(idempotency_table, "unused-registry", "another-table")
    counting_step([])(task(), Context())
    assert idempotency_table.scan(TableName="another-table")["Count"] == 1
    assert idempotency_table.scan(TableName=TABLE)["Count"] == 0
