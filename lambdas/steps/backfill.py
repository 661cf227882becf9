"""The steps of a provisioning's backfill (`lambdas.backfill`): once ACTIVE, copy the rows that were there.

MarkActiveBackfilling makes the pipeline ACTIVE and holds it for the
backfill; StartBackfill signals Debezium's incremental snapshot of every
table; the BackfillCopied loop follows it, recording progress in the
registry on each check, until the sink holds every row; MarkBackfilled
releases the pipeline. Nothing here rolls the pipeline back: it streams
already. A failure ends in MarkBackfillFailed, which releases it ACTIVE with
the error and the advice to resync.

The loop has no fixed wait budget: it gives up (`BackfillStalled`) only
after its schedule's attempts pass without a row more at the sink or a table
more read, so a copy ends as long as it moves. A dependency that does not
answer makes a check without progress, not a failure. The one other limit is
the schedule's `most_checks` (`BackfillUnfollowed`), which keeps an
execution's history inside AWS's: about 4.7 hours of copying.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lambdas import registry
from lambdas.backfill import BackfillStalled, BackfillUnfollowed, estimated_rows, progress_of
from lambdas.common import step_handler
from lambdas.errors import AwsApiThrottled, DatabaseUnavailable, KafkaUnavailable
from lambdas.opensearch import SinkUnavailable
from lambdas.registry import PipelineStatus
from lambdas.source.connection import connect_admin
from lambdas.source.signals import (
    SnapshotFailed, read_notifications, send_execute_snapshot, signal_id_for, snapshot_progress,
)
from lambdas.spec import PipelineSpec
from lambdas.steps.registry import error_message
from lambdas.steps.update import sink_counts, source_counts
from lambdas.wait_loop import Schedule, schedule_of

__all__ = ["BackfillStalled", "BackfillUnfollowed"]


def _now() -> datetime:
    return datetime.now(UTC)


@step_handler
def mark_active_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """MarkActiveBackfilling: ACTIVE, and held by this provisioning until its backfill ends."""
    backfill = {"status": "RUNNING", "tables": list(spec.source.tables), "tables_done": [], "rows_copied": 0,
                "started_at": _now().isoformat()}
    entry = registry.hold_for_backfill(spec.pipeline_id, event["execution_id"], backfill,
                                       current_step=event["state_name"])
    return {"pipeline_id": entry.pipeline_id, "status": entry.status.value}


@step_handler
def start_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """StartBackfill: estimate each table's rows, then signal an incremental snapshot of all of them.

    The signal id comes from the execution and state, so a retry sends nothing more.
    """
    tables = list(spec.source.tables)
    with connect_admin(spec.source) as conn:
        estimates = estimated_rows(conn, tables)
        sent = send_execute_snapshot(conn, spec, signal_id_for(event["execution_id"], event["state_name"]), tables)
    started_at = _now().isoformat()
    registry.record_backfill(spec.pipeline_id, event["execution_id"], {
        "status": "RUNNING", "tables": tables, "tables_done": [], "rows_copied": 0,
        "rows_estimated": sum(estimates.values()), "started_at": started_at, "eta_seconds": None})
    return {"signal_id": sent["signal_id"], "tables": tables, "estimates": estimates, "started_at": started_at}


@step_handler(idempotent=False)  # polled by a wait-loop: each call must look again
def check_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """One check of the BackfillCopied loop: fold the notifications and the sink's counts into progress.

    Ready once Debezium read every table and the sink holds, for each, the
    rows the source holds (or Debezium read, if rows were deleted since).
    A table Debezium could not read ends the loop at once (`SnapshotFailed`).
    """
    signal_id, tables, schedule = event["signal_id"], list(event["tables"]), schedule_of(event)
    previous = event.get("loop") or {}
    checks = int(previous.get("attempt", 0)) + 1
    try:
        return _check(spec, event, signal_id, tables, schedule, previous, checks)
    except (DatabaseUnavailable, KafkaUnavailable, SinkUnavailable, AwsApiThrottled) as exc:
        # Debezium copies on its own; a dependency that does not answer now is a check without progress.
        stalled = int(previous.get("stalled", 0)) + 1
        _give_up_if_out_of_checks(spec, schedule, checks, stalled, previous.get("progress") or {}, str(exc))
        return {**previous, "ready": False, "attempt": checks, "wait_seconds": schedule.wait_seconds(checks),
                "stalled": stalled, "waiting_on": str(exc)}


def _check(spec: PipelineSpec, event: dict[str, Any], signal_id: str, tables: list[str], schedule: Schedule,
           previous: dict[str, Any], checks: int) -> dict[str, Any]:
    snapshot = snapshot_progress(read_notifications(spec), signal_id, tables)
    # A table Debezium skipped (one it could not name, say) never reports a scan: the snapshot completes without it.
    skipped = [table for table in tables if table not in snapshot.scanned] if snapshot.completed else []
    if snapshot.failed or snapshot.aborted or skipped:
        reasons = ", ".join([*(f"{table}: {status}" for table, status in snapshot.failed.items()),
                             *(f"{table}: not read" for table in skipped)]) or "aborted"
        raise SnapshotFailed(f"Debezium did not copy the tables of pipeline {spec.pipeline_id!r} "
                             f"(signal {signal_id}): {reasons}")
    at_sink = sink_counts(spec, tables)
    progress = progress_of(snapshot, event.get("estimates") or {}, at_sink, event["started_at"], _now())
    ready = False
    if snapshot.done:
        at_source = source_counts(spec, tables)
        ready = all(at_sink[table] >= min(at_source[table], int(snapshot.scanned.get(table, {}).get("rows") or 0))
                    for table in tables)
    marker = [progress.rows_copied, len(progress.tables_done)]
    stalled = 0 if marker != previous.get("marker") else int(previous.get("stalled", 0)) + 1
    if not ready:
        _give_up_if_out_of_checks(spec, schedule, checks, stalled, progress.to_dict())
    registry.record_backfill(spec.pipeline_id, event["execution_id"], {
        "status": "RUNNING", "started_at": event["started_at"], **progress.to_dict()})
    return {"ready": ready, "attempt": checks, "wait_seconds": schedule.wait_seconds(checks), "stalled": stalled,
            "marker": marker, "progress": progress.to_dict()}


def _give_up_if_out_of_checks(spec: PipelineSpec, schedule: Schedule, checks: int, stalled: int,
                              progress: dict[str, Any], waiting_on: str | None = None) -> None:
    """Raise BackfillStalled after `attempts` checks without progress, BackfillUnfollowed after `most_checks`."""
    so_far = (f"{progress.get('rows_copied', 0)} of about {progress.get('rows_estimated', '?')} rows; tables read: "
              f"{', '.join(progress.get('tables_done') or []) or 'none'}")
    if stalled >= schedule.attempts:
        why = f"; the last check could not reach {waiting_on}" if waiting_on else ""
        raise BackfillStalled(
            f"the backfill of pipeline {spec.pipeline_id!r} copied no row more in its last {stalled} checks "
            f"({so_far}){why}; look at the connectors {spec.names.source_connector} and {spec.names.sink_connector}")
    if checks >= schedule.checks_at_most:
        raise BackfillUnfollowed(
            f"the backfill of pipeline {spec.pipeline_id!r} still copies after {checks} checks, the most one "
            f"provisioning follows ({so_far}); Debezium goes on copying: compare the tables' row counts at the sink, "
            f"and resync any that stays short")


@step_handler
def mark_done_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """MarkBackfilled: the backfill DONE with its figures, and the pipeline released, ACTIVE. Idempotent."""
    progress = event.get("progress") or {}
    done = {**progress, "status": "DONE", "started_at": event.get("started_at"), "eta_seconds": 0,
            "finished_at": _now().isoformat()}
    try:
        registry.record_backfill(spec.pipeline_id, event["execution_id"], done)
    except registry.LifecycleConflict:
        pass  # released by an earlier run of this step: finish_lifecycle below answers
    entry = registry.finish_lifecycle(spec.pipeline_id, event["execution_id"], PipelineStatus.ACTIVE,
                                      current_step=event["state_name"])
    return {"pipeline_id": entry.pipeline_id, "status": entry.status.value, "backfill": entry.backfill}


@step_handler
def mark_failed_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """MarkBackfillFailed: the backfill FAILED with its error; the pipeline, which streams, released ACTIVE.

    Returns `Error` and `Cause` for the final Fail state. A pipeline that a
    teardown took over meanwhile is left to it.
    """
    errors = event.get("errors") or {}
    step, caught = next(iter(errors.items()), ("Backfill", {}))
    error = caught.get("Error") or "BackfillFailed"
    cause = (f"{step}: {error_message(caught.get('Cause', ''))}; the pipeline streams, but rows that existed "
             f"before it may be missing at the sink: resync its tables (POST /pipelines/{spec.pipeline_id}/resync)")
    entry = registry.get(spec.pipeline_id)
    backfill = {**((entry.backfill if entry else None) or {}), "status": "FAILED", "error": error,
                "finished_at": _now().isoformat()}
    try:
        registry.record_backfill(spec.pipeline_id, event["execution_id"], backfill)
        registry.finish_lifecycle(spec.pipeline_id, event["execution_id"], PipelineStatus.ACTIVE,
                                  error=error, cause=cause, current_step=step)
    except (registry.LifecycleConflict, registry.PipelineNotRegistered):
        pass  # a teardown holds the pipeline now
    return {"Error": error, "Cause": cause}
