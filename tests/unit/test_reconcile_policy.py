"""Reconciliation's decisions: connector states, DEGRADED transitions, restart windows, stuck entries, settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lambdas.reconcile.policy import (
    ConnectorObservation,
    HealthRecord,
    ReconcileSettings,
    ReconcileSettingsInvalid,
    SlotObservation,
    assess,
    classify_connector,
    is_stuck,
    publication_drift,
    recent_restarts,
)
from lambdas.registry import PipelineStatus

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SETTINGS = ReconcileSettings(lag_threshold_bytes=1000, degrade_after_failed_sweeps=3, degrade_after_restarts=4)
RUNNING = [ConnectorObservation("cdcflow-orders-source", "RUNNING"), ConnectorObservation("cdcflow-orders-sink", "RUNNING")]
FAILED = [ConnectorObservation("cdcflow-orders-source", "FAILED", (0,)), RUNNING[1]]
HEALTHY_SLOT = SlotObservation("cdcflow_orders", exists=True, active=True, lag_bytes=10)


def status(connector_state: str, *task_states: str, trace: str | None = None) -> dict:
    tasks = [{"id": i, "state": state, "worker_id": "w:8083"} for i, state in enumerate(task_states)]
    for task in tasks:
        if task["state"] == "FAILED" and trace:
            task["trace"] = trace
    return {"name": "c", "connector": {"state": connector_state, "worker_id": "w:8083"}, "tasks": tasks, "type": "source"}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (status("RUNNING", "RUNNING"), "RUNNING"),
        (status("RUNNING", "RUNNING", "FAILED"), "FAILED"),
        (status("FAILED"), "FAILED"),
        (status("PAUSED", "PAUSED"), "PAUSED"),
        (status("RUNNING"), "PENDING"),  # no task yet
        (status("RUNNING", "UNASSIGNED"), "PENDING"),
        (status("RESTARTING", "RESTARTING"), "PENDING"),
        ({}, "PENDING"),  # config stored, status not yet published
        (None, "MISSING"),
    ],
)
def test_classify_connector(document, expected):
    assert classify_connector("c", document).state == expected


def test_a_failed_task_is_named_with_a_summary_of_its_trace():
    trace = (
        "org.apache.kafka.connect.errors.ConnectException: slot is gone\n\tat io.debezium.Foo.bar(Foo.java:1)\n"
        "Caused by: org.postgresql.util.PSQLException: replication slot \"cdcflow_orders\" does not exist\n"
    )
    observation = classify_connector("c", status("RUNNING", "RUNNING", "FAILED", trace=trace))
    assert observation.failed_tasks == (1,)
    assert "ConnectException: slot is gone" in observation.trace_summary
    assert 'replication slot "cdcflow_orders" does not exist' in observation.trace_summary
    assert "Foo.java" not in observation.trace_summary


def test_a_healthy_pipeline_is_active_and_its_failure_streak_resets():
    previous = HealthRecord(failed_sweeps=2)
    result = assess(PipelineStatus.ACTIVE, previous, SETTINGS, NOW, connectors=RUNNING, slot=HEALTHY_SLOT)
    assert result.status is PipelineStatus.ACTIVE
    assert result.problems == ()
    assert result.health.failed_sweeps == 0
    assert result.health.slot_lag_bytes == 10
    assert result.health.checked_at == NOW.isoformat(timespec="seconds")


def test_degraded_after_the_configured_number_of_failing_sweeps_in_a_row():
    health = HealthRecord()
    outcomes = []
    for sweep in range(3):
        result = assess(
            PipelineStatus.ACTIVE, health, SETTINGS, NOW + timedelta(minutes=15 * sweep),
            connectors=FAILED, slot=HEALTHY_SLOT, restarts_made=1,
        )
        outcomes.append(result.status)
        health = result.health
    assert outcomes == [PipelineStatus.ACTIVE, PipelineStatus.ACTIVE, PipelineStatus.DEGRADED]
    assert health.failed_sweeps == 3
    assert result.problems == ("cdcflow-orders-source FAILED in 3 sweeps in a row",)


def test_a_degraded_pipeline_that_recovers_goes_back_to_active():
    previous = HealthRecord(failed_sweeps=5, restarts=(NOW.isoformat(),))
    result = assess(PipelineStatus.DEGRADED, previous, SETTINGS, NOW, connectors=RUNNING, slot=HEALTHY_SLOT)
    assert result.status is PipelineStatus.ACTIVE
    assert result.health.failed_sweeps == 0
    assert result.health.restarts == previous.restarts  # restarts stay counted for their window


def test_a_connector_that_fails_after_every_restart_is_degraded_by_its_restart_count():
    # Fails, is restarted, runs at the next sweep, fails again: never three failing sweeps in a row.
    health = HealthRecord()
    statuses = []
    for sweep in range(8):
        failing = sweep % 2 == 0
        result = assess(
            PipelineStatus.ACTIVE, health, SETTINGS, NOW + timedelta(minutes=15 * sweep),
            connectors=FAILED if failing else RUNNING, slot=HEALTHY_SLOT, restarts_made=1 if failing else 0,
        )
        statuses.append(result.status)
        health = result.health
    assert statuses == [PipelineStatus.ACTIVE] * 6 + [PipelineStatus.DEGRADED] * 2
    assert result.problems == ("4 connector restarts within 24 h",)  # still DEGRADED while running, until they age out


def test_restarts_older_than_the_window_are_forgotten():
    old = (NOW - timedelta(hours=25)).isoformat()
    recent = (NOW - timedelta(hours=1)).isoformat()
    assert recent_restarts([old, recent], NOW, timedelta(hours=24)) == (recent,)


def test_slot_lag_above_the_threshold_is_degraded_and_below_it_is_not():
    lagging = SlotObservation("cdcflow_orders", exists=True, active=False, lag_bytes=1001)
    result = assess(PipelineStatus.ACTIVE, HealthRecord(), SETTINGS, NOW, connectors=RUNNING, slot=lagging)
    assert result.status is PipelineStatus.DEGRADED
    assert result.problems == ("replication slot cdcflow_orders is 1001 bytes behind (threshold 1000)",)
    at_threshold = SlotObservation("cdcflow_orders", exists=True, active=True, lag_bytes=1000)
    result = assess(PipelineStatus.ACTIVE, HealthRecord(), SETTINGS, NOW, connectors=RUNNING, slot=at_threshold)
    assert result.status is PipelineStatus.ACTIVE


def test_missing_slot_and_connector_are_degraded_at_once():
    connectors = [ConnectorObservation("cdcflow-orders-source", "MISSING"), RUNNING[1]]
    missing_slot = SlotObservation("cdcflow_orders", exists=False)
    result = assess(PipelineStatus.ACTIVE, HealthRecord(), SETTINGS, NOW, connectors=connectors, slot=missing_slot)
    assert result.status is PipelineStatus.DEGRADED
    assert set(result.problems) == {"connector cdcflow-orders-source is missing", "replication slot cdcflow_orders is missing"}


def test_an_unobserved_side_leaves_the_status_as_it_was():
    degraded = assess(PipelineStatus.DEGRADED, HealthRecord(failed_sweeps=4), SETTINGS, NOW, connectors=None, slot=HEALTHY_SLOT)
    assert degraded.status is PipelineStatus.DEGRADED
    assert degraded.health.failed_sweeps == 4  # not observed: neither reset nor counted
    active = assess(PipelineStatus.ACTIVE, HealthRecord(slot_lag_bytes=7), SETTINGS, NOW, connectors=RUNNING, slot=None)
    assert active.status is PipelineStatus.ACTIVE
    assert active.health.slot_lag_bytes == 7  # the last measurement is kept


def test_a_problem_seen_on_the_observed_side_degrades_even_when_the_other_is_unknown():
    lagging = SlotObservation("cdcflow_orders", exists=True, active=True, lag_bytes=5000)
    result = assess(PipelineStatus.ACTIVE, HealthRecord(), SETTINGS, NOW, connectors=None, slot=lagging)
    assert result.status is PipelineStatus.DEGRADED


def test_other_problems_from_the_caller_degrade():
    result = assess(
        PipelineStatus.ACTIVE, HealthRecord(), SETTINGS, NOW, connectors=RUNNING, slot=HEALTHY_SLOT,
        other_problems=["publication cdcflow_orders may differ from the spec"],
    )
    assert result.status is PipelineStatus.DEGRADED


def test_publication_drift():
    assert publication_drift(["public.a", "public.b"], ["public.b", "public.c"]) == (["public.a"], ["public.c"])
    assert publication_drift(["public.a"], ["public.a"]) == ([], [])


def test_health_record_round_trips_through_a_document():
    record = HealthRecord(failed_sweeps=2, restarts=("2026-11-22T11:00:00+00:00",), slot_lag_bytes=42, checked_at="x")
    assert HealthRecord.from_dict(record.to_dict()) == record
    assert HealthRecord.from_dict(None) == HealthRecord()


@pytest.mark.parametrize(
    ("entry_status", "age", "stuck"),
    [
        (PipelineStatus.PROVISIONING, timedelta(minutes=61), True),
        (PipelineStatus.PROVISIONING, timedelta(minutes=59), False),
        (PipelineStatus.DELETING, timedelta(hours=3), True),
        (PipelineStatus.ACTIVE, timedelta(days=30), False),
        (PipelineStatus.FAILED, timedelta(days=30), False),
    ],
)
def test_is_stuck(entry_status, age, stuck):
    updated_at = (NOW - age).isoformat(timespec="milliseconds")
    assert is_stuck(entry_status, updated_at, NOW, ReconcileSettings()) is stuck


def test_settings_from_the_environment():
    settings = ReconcileSettings.from_env({
        "RECONCILE_LAG_THRESHOLD_BYTES": "4096",
        "RECONCILE_DEGRADE_AFTER_FAILED_SWEEPS": "5",
        "RECONCILE_RESTART_WINDOW_MINUTES": "90",
        "RECONCILE_STUCK_AFTER_MINUTES": " 30 ",
    })
    assert settings == ReconcileSettings(
        lag_threshold_bytes=4096, degrade_after_failed_sweeps=5, restart_window=timedelta(minutes=90),
        stuck_after=timedelta(minutes=30),
    )
    assert ReconcileSettings.from_env({}) == ReconcileSettings()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RECONCILE_LAG_THRESHOLD_BYTES", "1GB", "RECONCILE_LAG_THRESHOLD_BYTES must be an integer, got '1GB'"),
        ("RECONCILE_DEGRADE_AFTER_FAILED_SWEEPS", "0", "degrade_after_failed_sweeps must be positive, got 0"),
        ("RECONCILE_STUCK_AFTER_MINUTES", "-5", "stuck_after must be a positive duration"),
    ],
)
def test_bad_settings_name_the_problem(variable, value, message):
    with pytest.raises(ReconcileSettingsInvalid, match=message):
        ReconcileSettings.from_env({variable: value})


# -- PAUSED: the connectors are meant to be paused, and the pipeline stays PAUSED ------------------------------------

PAUSED_CONNECTORS = [ConnectorObservation("cdcflow-orders-source", "PAUSED"),
                     ConnectorObservation("cdcflow-orders-sink", "PAUSED")]


def test_a_paused_pipeline_with_paused_connectors_is_as_asked_and_its_retained_wal_is_recorded():
    retaining = SlotObservation("cdcflow_orders", exists=True, active=False, lag_bytes=500)

    assessment = assess(PipelineStatus.PAUSED, HealthRecord(), SETTINGS, NOW, connectors=PAUSED_CONNECTORS,
                        slot=retaining)

    assert assessment.status is PipelineStatus.PAUSED
    assert assessment.problems == ()
    assert assessment.health.slot_lag_bytes == 500 and assessment.health.failed_sweeps == 0


@pytest.mark.parametrize(("connectors", "slot", "problem"), [
    ([ConnectorObservation("cdcflow-orders-source", "RUNNING"), PAUSED_CONNECTORS[1]], HEALTHY_SLOT,
     "cdcflow-orders-source is RUNNING while the pipeline is PAUSED"),
    ([PAUSED_CONNECTORS[0], ConnectorObservation("cdcflow-orders-sink", "MISSING")], HEALTHY_SLOT,
     "connector cdcflow-orders-sink is missing"),
    (PAUSED_CONNECTORS, SlotObservation("cdcflow_orders", exists=True, active=False, lag_bytes=5000),
     "5000 bytes behind (threshold 1000)"),
    (PAUSED_CONNECTORS, SlotObservation("cdcflow_orders", exists=False), "replication slot cdcflow_orders is missing"),
])
def test_what_is_wrong_with_a_paused_pipeline_is_reported_and_it_stays_paused(connectors, slot, problem):
    assessment = assess(PipelineStatus.PAUSED, HealthRecord(), SETTINGS, NOW, connectors=connectors, slot=slot)

    assert assessment.status is PipelineStatus.PAUSED
    assert any(problem in reported for reported in assessment.problems), assessment.problems


def test_paused_connectors_of_an_active_pipeline_do_not_degrade_it():
    # A pause in progress: the connectors are paused before the registry says PAUSED.
    assessment = assess(PipelineStatus.ACTIVE, HealthRecord(), SETTINGS, NOW, connectors=PAUSED_CONNECTORS,
                        slot=HEALTHY_SLOT)

    assert assessment.status is PipelineStatus.ACTIVE and assessment.problems == ()
