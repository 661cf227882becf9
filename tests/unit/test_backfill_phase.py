"""The backfill phase: its progress arithmetic, its hold on the registry entry, and how the CLI shows it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from cdcflow.operate_cli import backfill_line
from lambdas import registry
from lambdas.backfill import BackfillStalled, BackfillUnfollowed, connector_snapshot_mode, progress_of
from lambdas.errors import DatabaseUnavailable, PipelineAlreadyOwned
from lambdas.registry import LifecycleConflict, PipelineStatus
from lambdas.source.signals import SnapshotProgress
from lambdas.steps import backfill as backfill_steps
from lambdas.wait_loop import Schedule
from tests.unit.factories import pipeline_spec, raw_spec

pytestmark = pytest.mark.unit

EXECUTION = "arn:aws:states:us-east-1:000000000000:execution:provision:orders-1"
OTHER_EXECUTION = "arn:aws:states:us-east-1:000000000000:execution:provision:orders-2"
STARTED = "2026-12-03T08:00:00+00:00"
TABLES = ["public.orders", "public.items"]


def _at(seconds: float) -> datetime:
    return datetime.fromisoformat(STARTED) + timedelta(seconds=seconds)


def test_only_the_backfill_mode_starts_the_connector_without_a_snapshot():
    assert connector_snapshot_mode("backfill") == "no_data"
    assert [connector_snapshot_mode(mode) for mode in ("initial", "no_data", "when_needed")] == [
        "initial", "no_data", "when_needed"]


def test_progress_counts_the_sink_while_a_table_is_read_and_debeziums_count_once_it_was():
    snapshot = SnapshotProgress("s", TABLES, scanned={"public.items": {"status": "SUCCEEDED", "rows": 300}})
    progress = progress_of(snapshot, {"public.orders": 1000, "public.items": 280}, {"public.orders": 250,
                                                                                    "public.items": 290},
                           STARTED, _at(10))
    assert (progress.rows_copied, progress.rows_estimated, progress.tables_done) == (550, 1300, ["public.items"])
    # 550 rows in 10 s: the 750 left take about 14 s more.
    assert (progress.rows_per_second, progress.eta_seconds) == (55.0, 14)


def test_rows_streamed_into_a_table_being_read_do_not_count_beyond_its_estimate():
    snapshot = SnapshotProgress("s", ["public.orders"])
    progress = progress_of(snapshot, {"public.orders": 100}, {"public.orders": 400}, STARTED, _at(5))
    assert (progress.rows_copied, progress.rows_estimated, progress.eta_seconds) == (100, 100, 0)


def test_a_table_read_in_full_beyond_its_estimate_raises_the_estimate():
    snapshot = SnapshotProgress("s", ["public.orders"], scanned={"public.orders": {"status": "SUCCEEDED",
                                                                                   "rows": 5000}})
    progress = progress_of(snapshot, {"public.orders": 0}, {"public.orders": 4000}, STARTED, _at(5))
    assert (progress.rows_copied, progress.rows_estimated, progress.eta_seconds) == (5000, 5000, 0)


def test_no_rate_and_no_time_left_before_the_first_row():
    progress = progress_of(SnapshotProgress("s", TABLES), {"public.orders": 10}, {}, STARTED, _at(3))
    assert progress.to_dict() == {"tables": TABLES, "tables_done": [], "rows_copied": 0, "rows_estimated": 10,
                                  "elapsed_seconds": 3.0, "rows_per_second": None, "eta_seconds": None}


def test_the_cli_line_names_rows_tables_rate_and_time_left():
    line = backfill_line({"status": "RUNNING", "tables": TABLES, "tables_done": ["public.items"],
                          "rows_copied": 120_000, "rows_estimated": 1_000_000, "rows_per_second": 10_500,
                          "eta_seconds": 84})
    assert line == ("RUNNING: 120,000 of about 1,000,000 rows (12%), 1 of 2 tables read, 10,500 rows/s, "
                    "about 1m 24s left")
    failed = backfill_line({"status": "FAILED", "tables": TABLES, "rows_copied": 5, "rows_estimated": 0,
                            "error": "BackfillStalled", "eta_seconds": 3})
    assert failed == "FAILED: 5 of about 0 rows, 0 of 2 tables read, BackfillStalled"


# --- The registry's hold ------------------------------------------------------------------------------------


@pytest.fixture
def provisioning(registry_table):
    return registry.register(pipeline_spec(), EXECUTION)


def test_the_hold_makes_the_pipeline_active_and_held_by_its_own_provisioning(provisioning):
    entry = registry.hold_for_backfill("orders", EXECUTION, {"status": "RUNNING"}, current_step="MarkActiveBackfilling")
    assert (entry.status, entry.lifecycle_execution_arn, entry.lifecycle_action) == (
        PipelineStatus.ACTIVE, EXECUTION, "backfill")
    assert entry.backfill == {"status": "RUNNING"} and entry.to_dict()["backfill"] == {"status": "RUNNING"}


def test_only_the_provisioning_that_holds_the_entry_may_hold_it_for_a_backfill(provisioning):
    with pytest.raises(PipelineAlreadyOwned):
        registry.hold_for_backfill("orders", OTHER_EXECUTION, {"status": "RUNNING"})
    assert registry.get("orders").status is PipelineStatus.PROVISIONING


def test_progress_is_written_only_while_the_hold_lasts(provisioning):
    registry.hold_for_backfill("orders", EXECUTION, {"status": "RUNNING"})
    assert registry.record_backfill("orders", EXECUTION, {"status": "RUNNING", "rows_copied": 7}).backfill == {
        "status": "RUNNING", "rows_copied": 7}
    with pytest.raises(LifecycleConflict):
        registry.record_backfill("orders", OTHER_EXECUTION, {"status": "RUNNING", "rows_copied": 8})

    released = registry.finish_lifecycle("orders", EXECUTION, PipelineStatus.ACTIVE)
    assert released.lifecycle_execution_arn is None and released.backfill == {"status": "RUNNING", "rows_copied": 7}
    with pytest.raises(LifecycleConflict):
        registry.record_backfill("orders", EXECUTION, {"status": "RUNNING", "rows_copied": 9})


def test_progress_of_a_deleted_pipeline_does_not_bring_its_entry_back(provisioning):
    registry.hold_for_backfill("orders", EXECUTION, {"status": "RUNNING"})
    registry.delete("orders")
    with pytest.raises(LifecycleConflict):
        registry.record_backfill("orders", EXECUTION, {"status": "RUNNING"})
    assert registry.get("orders") is None


# --- The BackfillCopied check ---------------------------------------------------------------------------------

FOLLOW = Schedule(first=0, base=1, growth=1, cap=1, attempts=2, most_checks=4)


def _event_of() -> dict:
    return {"spec": raw_spec("orders", tables=TABLES), "execution_id": EXECUTION, "state_name": "CheckBackfillCopied",
            "signal_id": "s-1", "tables": TABLES, "estimates": {table: 10 for table in TABLES},
            "started_at": STARTED, "schedule": FOLLOW.as_payload()}


def run_backfill_check(monkeypatch, at_sink: dict, loop: dict | None = None, *, scanned: dict | None = None) -> dict:
    """One CheckBackfillCopied of the orders pipeline over TABLES, the sink holding `at_sink` rows."""
    monkeypatch.setattr(backfill_steps, "read_notifications", lambda spec: [])
    monkeypatch.setattr(backfill_steps, "snapshot_progress",
                        lambda notes, signal_id, tables: SnapshotProgress(signal_id, tables, scanned=scanned or {},
                                                                          started=True))
    monkeypatch.setattr(backfill_steps, "sink_counts", lambda spec, tables: at_sink)
    monkeypatch.setattr(backfill_steps, "source_counts", lambda spec, tables: {table: 10 for table in tables})
    monkeypatch.setattr(backfill_steps.registry, "record_backfill", lambda *args: None)
    return backfill_steps.check_handler({**_event_of(), "loop": loop or {}}, None)


def test_checks_that_see_rows_arrive_never_run_out_of_attempts(monkeypatch):
    loop = {}
    for rows in (1, 2, 3):  # more checks than the schedule's attempts, each with a row more
        loop = run_backfill_check(monkeypatch, {"public.orders": rows, "public.items": 0}, loop)
    assert loop["attempt"] == 3 and loop["stalled"] == 0 and loop["ready"] is False


def test_checks_without_progress_give_up_naming_what_was_copied(monkeypatch):
    first = run_backfill_check(monkeypatch, {"public.orders": 4, "public.items": 0})
    second = run_backfill_check(monkeypatch, {"public.orders": 4, "public.items": 0}, first)
    with pytest.raises(BackfillStalled, match=r"no row more in its last 2 checks \(4 of about 20 rows"):
        run_backfill_check(monkeypatch, {"public.orders": 4, "public.items": 0}, second)


def test_a_dependency_that_does_not_answer_is_a_check_without_progress(monkeypatch):
    def unreachable(spec, tables):
        raise DatabaseUnavailable("the sink database at sink.internal:5432")

    first = run_backfill_check(monkeypatch, {"public.orders": 4, "public.items": 0})
    monkeypatch.setattr(backfill_steps, "sink_counts", unreachable)
    waiting = backfill_steps.check_handler({**_event_of(), "loop": first}, None)

    assert waiting["ready"] is False and waiting["stalled"] == 1 and waiting["progress"] == first["progress"]
    assert "sink.internal:5432" in waiting["waiting_on"]
    with pytest.raises(BackfillStalled, match="could not reach the sink database at sink.internal:5432"):
        backfill_steps.check_handler({**_event_of(), "loop": waiting}, None)


def test_a_backfill_that_moves_stops_being_followed_at_the_most_checks(monkeypatch):
    loop = {}
    for rows in (1, 2, 3):
        loop = run_backfill_check(monkeypatch, {"public.orders": rows, "public.items": 0}, loop)
    with pytest.raises(BackfillUnfollowed, match=r"still copies after 4 checks.*Debezium goes on copying"):
        run_backfill_check(monkeypatch, {"public.orders": 4, "public.items": 0}, loop)


def test_the_check_is_ready_once_every_table_was_read_and_is_at_the_sink(monkeypatch):
    scanned = {table: {"status": "SUCCEEDED", "rows": 10} for table in TABLES}
    done = run_backfill_check(monkeypatch, {"public.orders": 10, "public.items": 10}, scanned=scanned)
    short = run_backfill_check(monkeypatch, {"public.orders": 10, "public.items": 9}, scanned=scanned)
    assert done["ready"] is True and done["progress"]["tables_done"] == TABLES
    assert short["ready"] is False

