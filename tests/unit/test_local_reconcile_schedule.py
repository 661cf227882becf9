"""The local stack's reconciliation schedule: its interval, its event, and a sweep that fails or finds the lease held."""

from __future__ import annotations

import threading

import pytest

from cdcflow.local import reconcile_schedule
from cdcflow.local.reconcile_schedule import INTERVAL_ENV, ReconcileSchedule, interval_from_env, scheduled_event
from lambdas.reconcile import _repair_requested
from lambdas.reconcile.lease import ReconcileAlreadyRunning

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("raw", "interval"), [(None, 60.0), ("", 60.0), ("5", 5.0), ("0.5", 0.5), ("0", None)])
def test_the_interval_defaults_to_a_minute_and_zero_turns_the_schedule_off(raw, interval):
    assert interval_from_env({} if raw is None else {INTERVAL_ENV: raw}) == interval


@pytest.mark.parametrize("raw", ["soon", "-1", "nan"])
def test_a_malformed_interval_names_the_variable(raw):
    with pytest.raises(ValueError, match=INTERVAL_ENV):
        interval_from_env({INTERVAL_ENV: raw})


def test_the_event_is_eventbridges_own_on_which_the_handler_only_reports_and_restarts():
    event = scheduled_event(reconcile_schedule.datetime(2026, 12, 2, 3, 0, tzinfo=reconcile_schedule.UTC))
    assert event["source"] == "aws.events" and event["detail-type"] == "Scheduled Event"
    assert event["time"] == "2026-12-02T03:00:00Z"
    assert _repair_requested(event) is False


def report(*restarted: str) -> dict:
    return {"pipelines": [{"pipeline_id": "orders", "restarted": list(restarted)}, {"pipeline_id": "b", "restarted": []}]}


def test_a_sweep_logs_what_it_restarted():
    lines: list[str] = []
    schedule = ReconcileSchedule(60, sweep=lambda event: report("cdcflow-orders-sink"), log=lines.append)
    schedule.run_once()
    assert lines == ['scheduled reconcile: {"pipelines": 2, "restarted": ["cdcflow-orders-sink"]}']


def test_a_sweep_that_finds_the_lease_held_is_skipped_and_one_that_fails_is_logged():
    outcomes = iter([ReconcileAlreadyRunning("held by cdcflow reconcile, pid 4242"), RuntimeError("registry gone")])
    lines: list[str] = []

    def sweep(event):
        raise next(outcomes)

    schedule = ReconcileSchedule(60, sweep=sweep, log=lines.append)
    schedule.run_once()
    schedule.run_once()
    assert lines == ["scheduled reconcile skipped: held by cdcflow reconcile, pid 4242",
                     "scheduled reconcile failed: RuntimeError: registry gone"]


def test_the_schedule_sweeps_every_interval_until_stopped():
    swept = threading.Semaphore(0)

    def sweep(event):
        swept.release()
        return report()

    schedule = ReconcileSchedule(0.01, sweep=sweep, log=lambda line: None).start()
    try:
        for _ in range(3):
            assert swept.acquire(timeout=10)
    finally:
        schedule.stop(timeout=10)
    count = schedule.sweeps
    assert count >= 3
    assert not schedule._thread.is_alive()


@pytest.fixture
def lease_table(registry_table, monkeypatch):
    from cdcflow.local.workflows import IDEMPOTENCY_TABLE

    monkeypatch.setenv("IDEMPOTENCY_TABLE", IDEMPOTENCY_TABLE)
    return registry_table


def test_the_lease_of_a_scheduled_sweep_that_died_with_the_engine_is_released(lease_table):
    from lambdas.reconcile.lease import acquire

    acquire(f"the Reconcile function, request {reconcile_schedule.REQUEST_ID_PREFIX}1234")
    assert reconcile_schedule.forget_dead_sweep() is True
    acquire("the next sweep")  # the lease is free again
    assert reconcile_schedule.forget_dead_sweep() is False


def test_a_lease_someone_else_holds_is_left_alone(lease_table):
    from lambdas.reconcile.lease import acquire

    acquire("cdcflow reconcile, pid 4242 on host")
    assert reconcile_schedule.forget_dead_sweep() is False
    with pytest.raises(ReconcileAlreadyRunning, match="pid 4242"):
        acquire("the next sweep")
