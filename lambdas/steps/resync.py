"""The steps of ResyncPipeline: snapshot some of a running pipeline's tables again, optionally only matching rows.

The execution input carries the tables and their conditions, already
checked by the API (`lambdas.resync`). StartResync checks them once more
against the registered spec (the pipeline may have changed since) and sends
Debezium an `execute-snapshot` signal with the conditions; the update's
CheckSnapshot loop follows the notifications until every table was read,
then counts the rows the conditions match at the source; MarkResynced
reports, per table, the rows matched and the rows Debezium re-delivered, and
releases the pipeline ACTIVE. StopResync, the compensation, signals
Debezium to stop the snapshot (rows already sent stay sent: re-delivered
rows are upserts at the sink, so nothing is lost or doubled).
"""

from __future__ import annotations

from typing import Any

from lambdas import registry
from lambdas.common import step_handler
from lambdas.registry import PipelineStatus
from lambdas.resync import ResyncRequest, conditions_for_debezium, parse_request
from lambdas.source.connection import connect_admin
from lambdas.source.signals import send_execute_snapshot, send_stop_snapshot, signal_id_for
from lambdas.spec import PipelineSpec


def request_of(spec: PipelineSpec, event: dict[str, Any]) -> ResyncRequest:
    """The execution's resync request, checked against the spec (raises `ResyncRefused`)."""
    return parse_request(spec, {"tables": event.get("tables"), "where": event.get("conditions") or {}})


@step_handler
def start_resync_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """StartResync: an `execute-snapshot` signal for the tables, each limited by its condition.

    The signal id comes from the execution and state, so a retry sends nothing more.
    """
    request = request_of(spec, event)
    with connect_admin(spec.source) as conn:
        sent = send_execute_snapshot(conn, spec, signal_id_for(event["execution_id"], event["state_name"]),
                                     request.tables, conditions_for_debezium(request.conditions))
    return {**sent, "conditions": dict(request.conditions)}


@step_handler
def stop_resync_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """StopResync (compensation): a `stop-snapshot` signal for the tables, so Debezium reads no further."""
    request = request_of(spec, event)
    with connect_admin(spec.source) as conn:
        return send_stop_snapshot(conn, spec, signal_id_for(event["execution_id"], event["state_name"]),
                                  request.tables)


def resync_counts(scanned: dict[str, Any], matched: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per table: the rows its condition matched at the source when the snapshot ended, and the rows Debezium read."""
    return {table: {"matched": int(matched.get(table, 0)), "delivered": int((scanned.get(table) or {}).get("rows", 0))}
            for table in sorted(set(scanned) | set(matched))}


@step_handler
def mark_resynced_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """MarkResynced: release the pipeline, ACTIVE, and report the rows matched and re-delivered per table."""
    entry = registry.finish_lifecycle(spec.pipeline_id, event["execution_id"], PipelineStatus.ACTIVE,
                                      current_step=event["state_name"])
    return {"pipeline_id": entry.pipeline_id, "status": entry.status.value,
            "tables": resync_counts(event.get("scanned") or {}, event.get("matched") or {})}
