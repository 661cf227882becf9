"""Health records and status changes on registry entries, against moto's DynamoDB."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest

from lambdas import registry
from lambdas.reconcile.health import DEGRADED_ERROR, read_health_records, save_assessment
from lambdas.reconcile.policy import HealthRecord
from lambdas.registry import PipelineStatus
from tests.unit.factories import pipeline_spec

REGISTRY = "cdcflow-registry"
EXECUTION = "arn:aws:states:us-east-1:000000000000:execution:provision:orders-1"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture
def dynamodb(registry_table):
    return registry_table


def active(pipeline_id: str = "orders") -> registry.RegistryEntry:
    registry.register(pipeline_spec(pipeline_id), EXECUTION)
    return registry.mark(pipeline_id, PipelineStatus.ACTIVE)


def raw_item(pipeline_id: str) -> dict:
    return boto3.client("dynamodb").get_item(TableName=REGISTRY, Key={"pipeline_id": {"S": pipeline_id}})["Item"]


def test_observations_are_stored_without_touching_status_or_updated_at(dynamodb):
    before = active()
    health = HealthRecord(failed_sweeps=1, restarts=("2026-11-22T12:00:00+00:00",), slot_lag_bytes=4096, checked_at="t")
    assert save_assessment("orders", EXECUTION, health, PipelineStatus.ACTIVE, PipelineStatus.ACTIVE, NOW)
    after = registry.get("orders")
    assert (after.status, after.updated_at, after.version) == (PipelineStatus.ACTIVE, before.updated_at, before.version + 1)
    assert read_health_records() == {"orders": health}
    assert raw_item("orders")["slot_lag_bytes"] == {"N": "4096"}


def test_degrading_records_the_problems_and_recovering_clears_them(dynamodb):
    active()
    problems = ("replication slot cdcflow_orders is 5000 bytes behind (threshold 1000)",)
    assert save_assessment(
        "orders", EXECUTION, HealthRecord(slot_lag_bytes=5000), PipelineStatus.DEGRADED, PipelineStatus.ACTIVE, NOW, problems
    )
    degraded = registry.get("orders")
    assert degraded.status is PipelineStatus.DEGRADED
    assert degraded.last_error == {"error": DEGRADED_ERROR, "cause": problems[0]}
    assert degraded.updated_at == NOW.isoformat(timespec="milliseconds")

    assert save_assessment("orders", EXECUTION, HealthRecord(), PipelineStatus.ACTIVE, PipelineStatus.DEGRADED, NOW)
    recovered = registry.get("orders")
    assert (recovered.status, recovered.last_error) == (PipelineStatus.ACTIVE, None)


def test_an_entry_that_changed_during_the_sweep_is_left_alone(dynamodb):
    active()
    registry.mark("orders", PipelineStatus.DELETING)  # a teardown started after the registry was read
    assert not save_assessment("orders", EXECUTION, HealthRecord(), PipelineStatus.DEGRADED, PipelineStatus.ACTIVE, NOW)
    assert registry.get("orders").status is PipelineStatus.DELETING
    assert read_health_records() == {}


def test_an_entry_of_another_execution_is_left_alone(dynamodb):
    active()
    assert not save_assessment("orders", "arn:other", HealthRecord(), PipelineStatus.ACTIVE, PipelineStatus.ACTIVE, NOW)


def test_a_missing_entry_is_not_created(dynamodb):
    assert not save_assessment("ghost", EXECUTION, HealthRecord(), PipelineStatus.ACTIVE, PipelineStatus.ACTIVE, NOW)
    assert registry.get("ghost") is None


def test_only_active_and_degraded_are_reconciliation_states(dynamodb):
    active()
    with pytest.raises(ValueError, match="only moves pipelines between ACTIVE and DEGRADED"):
        save_assessment("orders", EXECUTION, HealthRecord(), PipelineStatus.FAILED, PipelineStatus.ACTIVE, NOW)


def test_a_paused_entry_gets_its_slot_lag_recorded_and_stays_paused(dynamodb):
    active()
    paused = registry.mark("orders", PipelineStatus.PAUSED)

    assert save_assessment("orders", EXECUTION, HealthRecord(slot_lag_bytes=8192), PipelineStatus.PAUSED,
                           PipelineStatus.PAUSED, NOW)
    after = registry.get("orders")

    assert (after.status, after.slot_lag_bytes, after.updated_at) == (PipelineStatus.PAUSED, 8192, paused.updated_at)
    for moved in (PipelineStatus.ACTIVE, PipelineStatus.DEGRADED):
        with pytest.raises(ValueError, match="a PAUSED one stays PAUSED"):
            save_assessment("orders", EXECUTION, HealthRecord(), moved, PipelineStatus.PAUSED, NOW)


def test_health_records_of_every_reconciled_entry_are_read(dynamodb):
    for index in range(30):
        active(f"pipe_{index:03d}")
        save_assessment(
            f"pipe_{index:03d}", EXECUTION, HealthRecord(failed_sweeps=index), PipelineStatus.ACTIVE, PipelineStatus.ACTIVE, NOW
        )
    active("never_checked")
    records = read_health_records()
    assert len(records) == 30 and "never_checked" not in records
    assert records["pipe_029"].failed_sweeps == 29
