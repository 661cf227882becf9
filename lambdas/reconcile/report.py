"""The report of one reconciliation sweep, and the CloudWatch metrics drawn from it.

The report is plain data (`to_dict()` is JSON-ready); it carries names,
states, counts and redacted error messages, never a credential. Metrics are
written as CloudWatch Embedded Metric Format records on stdout, as for the
steps (`lambdas.common.observability`):

| metric | unit | dimensions |
| --- | --- | --- |
| `Pipelines` | Count | `status` (one record per status, ACTIVE and DEGRADED always present) |
| `SlotLagBytes`, `SlotInactiveMinutes`, `SlotWalAtRisk`, `ConnectorFailedSweeps`, `HeartbeatAgeSeconds`, `SlotBroken` | Bytes, Count, Seconds | `pipeline_id` (one record per reconciled pipeline, with the values the sweep observed; `lambdas.alarms` alarms on them) |
| `ConnectorRestarts`, `RepairsDone`, `OrphansFound`, `StuckExecutions`, `InactiveSlots`, `ReconcileErrors` | Count | `service` |
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from lambdas.common.observability import METRICS_NAMESPACE, SERVICE
from lambdas.reconcile.orphans import Orphan
from lambdas.registry import PipelineStatus

TargetKind = Literal["registry", "source", "connect", "kafka", "secrets", "sink"]
# A pipeline's own dependencies: one that cannot be reached says something about those pipelines, not the sweep.
PIPELINE_DEPENDENCIES = frozenset({"source", "connect", "kafka", "sink"})


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
    wal_status: str | None = None
    slot_inactive_minutes: int | None = None  # since a sweep first found the slot without a reader
    heartbeat_age_seconds: float | None = None  # since Debezium's heartbeat row last moved
    broken: str | None = None  # why the pipeline is BROKEN
    alarms: dict[str, str] = field(default_factory=dict)  # alarm -> state, where the sweep evaluates them
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
            "wal_status": self.wal_status,
            "slot_inactive_minutes": self.slot_inactive_minutes,
            "heartbeat_age_seconds": self.heartbeat_age_seconds,
            "broken": self.broken,
            "alarms": dict(self.alarms),
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

    @property
    def scope(self) -> Literal["pipelines", "sweep"]:
        """"pipelines" when the failure is a dependency of the named pipelines (they are unreachable as
        recorded); "sweep" when the sweep itself could not check (the registry, an AWS API, or a dependency
        no pipeline names, such as an orphan scan)."""
        return "pipelines" if self.target in PIPELINE_DEPENDENCIES and self.pipelines else "sweep"

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "location": self.location, "error": self.error,
                "pipelines": list(self.pipelines), "scope": self.scope}


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

    @property
    def sweep_errors(self) -> int:
        """What the sweep itself could not check; what only affects the pipelines it names is not counted."""
        return sum(1 for error in self.errors if error.scope == "sweep")

    @property
    def broken_pipelines(self) -> list[str]:
        return sorted(pipeline.pipeline_id for pipeline in self.pipelines if pipeline.status is PipelineStatus.BROKEN)

    @property
    def alarms_in_alarm(self) -> list[str]:
        """`<pipeline>:<alarm>` for each alarm this sweep found breaching (where it evaluates them)."""
        return sorted(f"{pipeline.pipeline_id}:{alarm}" for pipeline in self.pipelines
                      for alarm, state in pipeline.alarms.items() if state == "ALARM")

    @property
    def unreachable_pipelines(self) -> list[str]:
        """Pipelines with a dependency the sweep could not reach."""
        names = {name for error in self.errors if error.scope == "pipelines" for name in error.pipelines}
        return sorted(names | {pipeline.pipeline_id for pipeline in self.pipelines if pipeline.errors})

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
            "sweep_errors": self.sweep_errors,
            "unreachable_pipelines": self.unreachable_pipelines,
            "broken_pipelines": self.broken_pipelines,
            "alarms_in_alarm": self.alarms_in_alarm,
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


METRIC_UNITS = {
    "SlotLagBytes": MetricUnit.Bytes, "SlotInactiveMinutes": MetricUnit.Count, "SlotWalAtRisk": MetricUnit.Count,
    "ConnectorFailedSweeps": MetricUnit.Count, "HeartbeatAgeSeconds": MetricUnit.Seconds,
    "SlotBroken": MetricUnit.Count,
}
# wal_status as a number an alarm compares: reserved and extended are safe, unreserved is at risk, lost is gone.
WAL_AT_RISK = {"reserved": 0, "extended": 0, "unreserved": 1, "lost": 2}


def alarm_metrics(pipeline: PipelineReport) -> dict[str, float | None]:
    """The per-pipeline values the alarms watch (`lambdas.alarms.KINDS`), None for what this sweep did not see.

    The same values are emitted as metrics and, where nothing evaluates
    CloudWatch alarms, evaluated by the sweep. A PAUSED pipeline reports no
    inactivity or heartbeat age: its reader is stopped as its team asked.
    """
    paused = pipeline.status is PipelineStatus.PAUSED
    observed_slot = pipeline.slot_active is not None or pipeline.broken is not None
    return {
        "SlotLagBytes": pipeline.slot_lag_bytes,
        "SlotInactiveMinutes": None if paused or pipeline.slot_active is None else (
            pipeline.slot_inactive_minutes or 0),
        "SlotWalAtRisk": None if pipeline.wal_status is None else WAL_AT_RISK.get(pipeline.wal_status, 0),
        "ConnectorFailedSweeps": None if paused or pipeline.source_connector is None else pipeline.failed_sweeps,
        "HeartbeatAgeSeconds": None if paused else pipeline.heartbeat_age_seconds,
        "SlotBroken": (1 if pipeline.status is PipelineStatus.BROKEN else 0) if observed_slot
        or pipeline.status is PipelineStatus.BROKEN else None,
    }


def emit_metrics(report: ReconcileReport) -> None:
    """Write the sweep's metrics (see the module docstring) as EMF records on stdout. Never raises for lack of CloudWatch."""
    for status, count in sorted(report.status_counts.items()):
        _emit({"Pipelines": (count, MetricUnit.Count)}, status=status)
    for pipeline in report.pipelines:
        values = {name: (value, METRIC_UNITS[name]) for name, value in alarm_metrics(pipeline).items()
                  if value is not None}
        if values:
            _emit(values, pipeline_id=pipeline.pipeline_id)
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
