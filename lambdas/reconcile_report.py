"""The report of one reconciliation sweep, and the CloudWatch metrics drawn from it.

The report is plain data (`to_dict()` is JSON-ready); it carries names,
states, counts and redacted error messages, never a credential. Metrics are
written as CloudWatch Embedded Metric Format records on stdout, as for the
steps (`lambdas.common.observability`):

| metric | unit | dimensions |
| --- | --- | --- |
| `Pipelines` | Count | `status` (one record per status, ACTIVE and DEGRADED always present) |
| `SlotLagBytes` | Bytes | `pipeline_id` (one record per pipeline whose slot was measured) |
| `ConnectorRestarts`, `RepairsDone`, `OrphansFound`, `StuckExecutions`, `InactiveSlots`, `ReconcileErrors` | Count | `service` |
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from lambdas.common.observability import METRICS_NAMESPACE, SERVICE
from lambdas.reconcile_orphans import Orphan
from lambdas.registry import PipelineStatus

TargetKind = Literal["registry", "source", "connect", "kafka", "secrets"]


@dataclass
class PipelineReport:
    """One reconciled pipeline: what was found, what was done, what is wrong."""

    pipeline_id: str
    previous_status: PipelineStatus
    status: PipelineStatus
    source_connector: str | None = None  # RUNNING, FAILED, PAUSED, PENDING, MISSING; None when not observed
    sink_connector: str | None = None
    slot_active: bool | None = None
    slot_lag_bytes: int | None = None
    failed_sweeps: int = 0
    restarts_in_window: int = 0
    restarted: list[str] = field(default_factory=list)  # connectors restarted by this sweep
    publication_added: list[str] = field(default_factory=list)
    publication_removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why it is DEGRADED
    notes: list[str] = field(default_factory=list)  # drift worth knowing that is not a problem (paused, inactive slot)
    errors: list[str] = field(default_factory=list)  # what could not be checked or repaired

    @property
    def publication_realigned(self) -> bool:
        return bool(self.publication_added or self.publication_removed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline_id": self.pipeline_id,
            "previous_status": self.previous_status.value,
            "status": self.status.value,
            "source_connector": self.source_connector,
            "sink_connector": self.sink_connector,
            "slot_active": self.slot_active,
            "slot_lag_bytes": self.slot_lag_bytes,
            "failed_sweeps": self.failed_sweeps,
            "restarts_in_window": self.restarts_in_window,
            "restarted": list(self.restarted),
            "publication_added": list(self.publication_added),
            "publication_removed": list(self.publication_removed),
            "problems": list(self.problems),
            "notes": list(self.notes),
            "errors": list(self.errors),
        }


@dataclass(frozen=True)
class StuckExecution:
    """A pipeline whose workflow has not moved its registry entry for longer than allowed."""

    pipeline_id: str
    status: PipelineStatus
    execution_arn: str
    current_step: str | None
    updated_at: str
    minutes_since_update: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline_id": self.pipeline_id,
            "status": self.status.value,
            "execution_arn": self.execution_arn,
            "current_step": self.current_step,
            "updated_at": self.updated_at,
            "minutes_since_update": self.minutes_since_update,
        }


@dataclass(frozen=True)
class TargetError:
    """A source database, Connect or Kafka cluster, or AWS API that could not be used, and whom it affects."""

    target: TargetKind
    location: str
    error: str  # the exception's class name and redacted message
    pipelines: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "location": self.location, "error": self.error, "pipelines": list(self.pipelines)}


@dataclass
class ReconcileReport:
    """Everything one sweep found and did."""

    started_at: str
    repair: bool
    finished_at: str | None = None
    registered: int = 0
    pipelines: list[PipelineReport] = field(default_factory=list)
    orphans: list[Orphan] = field(default_factory=list)
    stuck: list[StuckExecution] = field(default_factory=list)
    errors: list[TargetError] = field(default_factory=list)
    status_counts: dict[str, int] = field(default_factory=dict)  # every registered pipeline, after the sweep

    @property
    def connector_restarts(self) -> int:
        return sum(len(pipeline.restarted) for pipeline in self.pipelines)

    @property
    def repairs_done(self) -> int:
        """Publications re-aligned plus orphans deleted."""
        realigned = sum(1 for pipeline in self.pipelines if pipeline.publication_realigned)
        return realigned + sum(1 for orphan in self.orphans if orphan.deleted)

    @property
    def inactive_slots(self) -> int:
        return sum(1 for pipeline in self.pipelines if pipeline.slot_active is False)

    def summary(self) -> dict[str, Any]:
        return {
            "registered": self.registered,
            "reconciled": len(self.pipelines),
            "by_status": dict(sorted(self.status_counts.items())),
            "connector_restarts": self.connector_restarts,
            "repairs_done": self.repairs_done,
            "orphans_found": len(self.orphans),
            "stuck_executions": len(self.stuck),
            "inactive_slots": self.inactive_slots,
            "errors": len(self.errors),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "repair": self.repair,
            "summary": self.summary(),
            "pipelines": [pipeline.to_dict() for pipeline in self.pipelines],
            "orphans": [orphan.to_dict() for orphan in self.orphans],
            "stuck": [stuck.to_dict() for stuck in self.stuck],
            "errors": [error.to_dict() for error in self.errors],
        }


def count_statuses(statuses: list[PipelineStatus]) -> dict[str, int]:
    """Pipelines per status, ACTIVE and DEGRADED always present (so alarms on them never lack data)."""
    counts = Counter(status.value for status in statuses)
    for always in (PipelineStatus.ACTIVE, PipelineStatus.DEGRADED):
        counts.setdefault(always.value, 0)
    return dict(counts)


def emit_metrics(report: ReconcileReport) -> None:
    """Write the sweep's metrics (see the module docstring) as EMF records on stdout. Never raises for lack of CloudWatch."""
    for status, count in sorted(report.status_counts.items()):
        _emit({"Pipelines": (count, MetricUnit.Count)}, status=status)
    for pipeline in report.pipelines:
        if pipeline.slot_lag_bytes is not None:
            _emit({"SlotLagBytes": (pipeline.slot_lag_bytes, MetricUnit.Bytes)}, pipeline_id=pipeline.pipeline_id)
    _emit({
        "ConnectorRestarts": (report.connector_restarts, MetricUnit.Count),
        "RepairsDone": (report.repairs_done, MetricUnit.Count),
        "OrphansFound": (len(report.orphans), MetricUnit.Count),
        "StuckExecutions": (len(report.stuck), MetricUnit.Count),
        "InactiveSlots": (report.inactive_slots, MetricUnit.Count),
        "ReconcileErrors": (len(report.errors), MetricUnit.Count),
    })


def _emit(values: dict[str, tuple[float, MetricUnit]], **dimensions: str) -> None:
    # One record per dimension set: EMF gives every metric of a record the same dimensions.
    metrics = AmazonCloudWatchEMFProvider(namespace=METRICS_NAMESPACE, service=SERVICE)
    for name, value in dimensions.items():
        metrics.add_dimension(name=name, value=value)
    for name, (value, unit) in values.items():
        metrics.add_metric(name=name, unit=unit, value=value)
    metrics.flush_metrics()
