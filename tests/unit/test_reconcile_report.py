"""The sweep report as JSON, and the EMF metrics drawn from it."""

from __future__ import annotations

import json

from lambdas.reconcile.orphans import Orphan
from lambdas.reconcile.report import (
    PipelineReport,
    ReconcileReport,
    StuckExecution,
    TargetError,
    count_statuses,
    emit_metrics,
)
from lambdas.registry import PipelineStatus


def sample_report() -> ReconcileReport:
    restarted = PipelineReport(
        "orders", PipelineStatus.ACTIVE, PipelineStatus.ACTIVE, source_connector="FAILED", sink_connector="RUNNING",
        slot_active=True, slot_lag_bytes=2048, failed_sweeps=1, restarts_in_window=1,
        restarted=["cdcflow-orders-source"],
    )
    realigned = PipelineReport(
        "payments", PipelineStatus.ACTIVE, PipelineStatus.DEGRADED, slot_active=False, slot_lag_bytes=9_000_000,
        publication_added=["public.payments"], problems=["replication slot cdcflow_payments is 9000000 bytes behind"],
    )
    unobserved = PipelineReport("refunds", PipelineStatus.ACTIVE, PipelineStatus.ACTIVE, errors=["source down"])
    return ReconcileReport(
        started_at="2026-11-22T12:00:00+00:00",
        finished_at="2026-11-22T12:00:03+00:00",
        repair=True,
        registered=5,
        pipelines=[restarted, realigned, unobserved],
        orphans=[
            Orphan("slot", "cdcflow_gone", "db:5432/shop", "gone", "pipeline 'gone' is DELETED", deleted=True),
            Orphan("topic", "cdcflow.gone.public.t", "kafka:9092", "gone", "pipeline 'gone' is DELETED", error="boom"),
        ],
        stuck=[StuckExecution("slow", PipelineStatus.PROVISIONING, "arn:x", "CreateSlot", "2026-11-22T10:00:00+00:00", 120)],
        errors=[TargetError("source", "db:5433/other", "DatabaseUnavailable: refused", ("refunds",))],
        status_counts=count_statuses([PipelineStatus.ACTIVE, PipelineStatus.ACTIVE, PipelineStatus.DEGRADED,
                                      PipelineStatus.PROVISIONING, PipelineStatus.DELETED]),
    )


def test_the_report_is_json_with_a_summary():
    document = json.loads(json.dumps(sample_report().to_dict()))
    assert document["summary"] == {
        "registered": 5,
        "reconciled": 3,
        "by_status": {"ACTIVE": 2, "DEGRADED": 1, "DELETED": 1, "PROVISIONING": 1},
        "connector_restarts": 1,
        "repairs_done": 2,  # one publication re-aligned, one orphan deleted
        "orphans_found": 2,
        "stuck_executions": 1,
        "inactive_slots": 1,
        "errors": 1,
        "sweep_errors": 0,  # the one error is a source that only pipeline refunds uses
        "unreachable_pipelines": ["refunds"],
        "broken_pipelines": [],
        "alarms_in_alarm": [],
    }
    assert document["pipelines"][1]["status"] == "DEGRADED"
    assert document["pipelines"][1]["previous_status"] == "ACTIVE"
    assert document["orphans"][1] == {
        "kind": "topic", "name": "cdcflow.gone.public.t", "location": "kafka:9092", "pipeline_id": "gone",
        "reason": "pipeline 'gone' is DELETED", "deleted": False, "error": "boom",
    }
    assert document["stuck"][0]["minutes_since_update"] == 120
    assert document["errors"][0]["pipelines"] == ["refunds"]
    assert document["errors"][0]["scope"] == "pipelines"


def test_status_counts_always_carry_active_and_degraded():
    assert count_statuses([]) == {"ACTIVE": 0, "DEGRADED": 0}
    assert count_statuses([PipelineStatus.FAILED, PipelineStatus.FAILED]) == {"FAILED": 2, "ACTIVE": 0, "DEGRADED": 0}


def test_metrics_are_emitted_as_emf_records(capsys, monkeypatch):
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    emit_metrics(sample_report())
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    # Powertools writes each value as a list of data points.
    records = [{k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in r.items()} for r in records]
    by_status = {r["status"]: r["Pipelines"] for r in records if "Pipelines" in r}
    assert by_status == {"ACTIVE": 2, "DEGRADED": 1, "DELETED": 1, "PROVISIONING": 1}
    lag = {r["pipeline_id"]: r["SlotLagBytes"] for r in records if "SlotLagBytes" in r}
    assert lag == {"orders": 2048, "payments": 9_000_000}  # refunds was not measured
    [totals] = [r for r in records if "ConnectorRestarts" in r]
    assert {name: totals[name] for name in (
        "ConnectorRestarts", "RepairsDone", "OrphansFound", "StuckExecutions", "InactiveSlots", "ReconcileErrors"
    )} == {"ConnectorRestarts": 1, "RepairsDone": 2, "OrphansFound": 2, "StuckExecutions": 1, "InactiveSlots": 1,
           "ReconcileErrors": 1}
    for record in records:
        [directive] = record["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "cdcflow"
    lag_units = {m["Name"]: m["Unit"] for r in records for m in r["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert lag_units["SlotLagBytes"] == "Bytes"
