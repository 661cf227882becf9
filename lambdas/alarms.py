"""A pipeline's CloudWatch alarms: what they watch, their thresholds, and their state.

Reconciliation emits one EMF record per reconciled pipeline with the metrics
below, dimension `pipeline_id` (`lambdas.reconcile.report.emit_metrics`);
ProvisionPipeline's PutAlarms step creates one alarm per metric on that
dimension, notifying the platform's SNS topic (`ALARM_TOPIC_ARN`), and the
teardown and the rollback's DeleteAlarms remove them.

| alarm | metric | breaches when | threshold (spec `alarms.*`, else the platform default) |
| --- | --- | --- | --- |
| `slot-lag` | `SlotLagBytes` | value > threshold | `slot_lag_bytes`, 1 GiB |
| `slot-inactive` | `SlotInactiveMinutes` | value >= threshold | `slot_inactive_minutes`, 30 |
| `wal-status` | `SlotWalAtRisk` (0 reserved/extended, 1 unreserved, 2 lost) | value >= 1 | fixed |
| `connector-failed` | `ConnectorFailedSweeps` | value >= threshold | `connector_failed_sweeps`, 2 (FAILED again after the restart) |
| `heartbeat-stale` | `HeartbeatAgeSeconds` | value > threshold | `heartbeat_stale_minutes`, 15 (in seconds) |
| `slot-broken` | `SlotBroken` (1 when the slot vanished, was re-created or lost) | value >= 1 | fixed |

Names are `cdcflow-pipeline-<pipeline id>-<alarm>`: IAM holds the functions
to that prefix, and pipeline ids have no `-`, so one pipeline's prefix never
covers another's. Each description links the alarm's section of
docs/runbooks.md.

On AWS CloudWatch evaluates the alarms. Where nothing does (the local stack,
whose CloudWatch is moto), reconciliation evaluates the same thresholds with
`evaluate` and records the outcome with `record_states` (SetAlarmState), so
`describe_states` answers the same way in both places.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from lambdas import aws
from lambdas.common.observability import METRICS_NAMESPACE
from lambdas.spec import PipelineSpec

ALARM_NAME_PREFIX = "cdcflow-pipeline-"
TOPIC_ENV = "ALARM_TOPIC_ARN"
# Set where no service evaluates CloudWatch alarms (the local stack): reconciliation sets their states.
EVALUATE_ENV = "CDCFLOW_EVALUATE_ALARMS"
RUNBOOK_URL_ENV = "CDCFLOW_RUNBOOK_URL"
DEFAULT_RUNBOOK_URL = "https://github.com/cdcflow/cdcflow/blob/main/docs/runbooks.md"
DIMENSION = "pipeline_id"
# Reconciliation runs every few minutes; a period without data keeps the alarm's state.
PERIOD_SECONDS = 300

AlarmState = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]
Comparison = Literal["GreaterThanThreshold", "GreaterThanOrEqualToThreshold"]


@dataclass(frozen=True)
class AlarmKind:
    """One alarm every pipeline gets: the metric it watches and how its threshold is chosen."""

    key: str  # the alarm's suffix and its runbook anchor
    metric: str
    comparison: Comparison
    setting: str | None  # the spec's `alarms.<setting>`; None for a fixed threshold
    default: float
    scale: float  # threshold = setting * scale (minutes -> seconds)
    description: str

    def threshold(self, spec: PipelineSpec) -> float:
        chosen = getattr(spec.alarms, self.setting) if self.setting else None
        return float(self.default if chosen is None else chosen * self.scale)

    def breached(self, value: float, threshold: float) -> bool:
        return value > threshold if self.comparison == "GreaterThanThreshold" else value >= threshold


KINDS: tuple[AlarmKind, ...] = (
    AlarmKind("slot-lag", "SlotLagBytes", "GreaterThanThreshold", "slot_lag_bytes", 1024**3, 1,
              "The replication slot retains more WAL than the threshold: the source's disk fills behind it"),
    AlarmKind("slot-inactive", "SlotInactiveMinutes", "GreaterThanOrEqualToThreshold", "slot_inactive_minutes",
              30, 1, "No connector has read the replication slot for the threshold's minutes"),
    AlarmKind("wal-status", "SlotWalAtRisk", "GreaterThanOrEqualToThreshold", None, 1, 1,
              "The slot's wal_status is unreserved (WAL it needs is about to be removed) or lost"),
    AlarmKind("connector-failed", "ConnectorFailedSweeps", "GreaterThanOrEqualToThreshold", "connector_failed_sweeps",
              2, 1, "A connector or task is FAILED again after reconciliation restarted it"),
    AlarmKind("heartbeat-stale", "HeartbeatAgeSeconds", "GreaterThanThreshold", "heartbeat_stale_minutes",
              15 * 60, 60, "Debezium's heartbeat row has not moved for longer than the threshold"),
    AlarmKind("slot-broken", "SlotBroken", "GreaterThanOrEqualToThreshold", None, 1, 1,
              "The pipeline's replication slot vanished, was re-created or was invalidated: the pipeline is BROKEN"),
)
KINDS_BY_KEY = {kind.key: kind for kind in KINDS}


@dataclass(frozen=True)
class AlarmDefinition:
    """One alarm of one pipeline, as PutMetricAlarm takes it."""

    kind: AlarmKind
    pipeline_id: str
    threshold: float
    actions: tuple[str, ...]

    @property
    def name(self) -> str:
        return alarm_name(self.pipeline_id, self.kind.key)

    def request(self) -> dict[str, Any]:
        return {
            "AlarmName": self.name,
            "AlarmDescription": f"cdcflow pipeline {self.pipeline_id}: {self.kind.description}. "
                                f"Runbook: {runbook_url()}#{self.kind.key}",
            "Namespace": METRICS_NAMESPACE,
            "MetricName": self.kind.metric,
            "Dimensions": [{"Name": DIMENSION, "Value": self.pipeline_id}],
            "Statistic": "Maximum",
            "Period": PERIOD_SECONDS,
            "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1,
            "Threshold": self.threshold,
            "ComparisonOperator": self.kind.comparison,
            "TreatMissingData": "ignore",
            "ActionsEnabled": bool(self.actions),
            "AlarmActions": list(self.actions),
            "OKActions": list(self.actions),
            "Tags": [{"Key": "cdcflow:pipeline", "Value": self.pipeline_id}],
        }


def alarm_name(pipeline_id: str, key: str) -> str:
    return f"{ALARM_NAME_PREFIX}{pipeline_id}-{key}"


def runbook_url() -> str:
    return os.environ.get(RUNBOOK_URL_ENV) or DEFAULT_RUNBOOK_URL


def topic_arn() -> str | None:
    return os.environ.get(TOPIC_ENV) or None


def pipeline_alarms(spec: PipelineSpec, topic: str | None = None) -> list[AlarmDefinition]:
    """The alarms of `spec`'s pipeline, thresholds from its `alarms` settings or the platform defaults."""
    actions = (topic,) if topic else ()
    return [AlarmDefinition(kind, spec.pipeline_id, kind.threshold(spec), actions) for kind in KINDS]


def put_alarms(spec: PipelineSpec) -> list[str]:
    """Create (or update) the pipeline's alarms, notifying `ALARM_TOPIC_ARN`; returns their names. Idempotent."""
    client = aws.client("cloudwatch")
    alarms = pipeline_alarms(spec, topic_arn())
    for alarm in alarms:
        client.put_metric_alarm(**alarm.request())
    return [alarm.name for alarm in alarms]


def delete_alarms(pipeline_id: str) -> list[str]:
    """Delete the pipeline's alarms; returns the names that existed. Idempotent: none left is a no-op."""
    client = aws.client("cloudwatch")
    existing = [alarm["AlarmName"] for alarm in _describe(client, pipeline_id)]
    if existing:
        try:
            client.delete_alarms(AlarmNames=existing)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFound":
                raise
    return existing


def _describe(client: Any, pipeline_id: str) -> list[dict[str, Any]]:
    alarms: list[dict[str, Any]] = []
    for page in client.get_paginator("describe_alarms").paginate(
            AlarmNamePrefix=alarm_name(pipeline_id, ""), AlarmTypes=["MetricAlarm"]):
        alarms += page.get("MetricAlarms", [])
    return alarms


def describe_states(pipeline_id: str) -> list[dict[str, Any]]:
    """Each of the pipeline's alarms with its state (OK, ALARM, INSUFFICIENT_DATA), by alarm, read with DescribeAlarms.

    Raises botocore's errors when CloudWatch cannot be read.
    """
    found = {alarm["AlarmName"]: alarm for alarm in _describe(aws.client("cloudwatch"), pipeline_id)}
    states = []
    for kind in KINDS:
        alarm = found.get(alarm_name(pipeline_id, kind.key))
        if alarm is None:
            continue
        updated = alarm.get("StateUpdatedTimestamp")
        states.append({
            "alarm": kind.key,
            "name": alarm["AlarmName"],
            "state": alarm.get("StateValue", "INSUFFICIENT_DATA"),
            "reason": alarm.get("StateReason"),
            "metric": alarm.get("MetricName"),
            "threshold": alarm.get("Threshold"),
            "updated_at": updated.isoformat() if hasattr(updated, "isoformat") else updated,
        })
    return states


def alarm_view(pipeline_id: str) -> dict[str, Any]:
    """`{"alarms": describe_states(...)}` for the API and the CLI; a CloudWatch that cannot be read gives
    `{"alarms": None, "alarms_error": ...}`, so showing a pipeline never fails for it."""
    try:
        return {"alarms": describe_states(pipeline_id)}
    except (BotoCoreError, ClientError) as exc:
        return {"alarms": None, "alarms_error": f"CloudWatch alarms could not be read: {type(exc).__name__}"}


def firing_alarms() -> dict[str, list[str]]:
    """The alarms in ALARM of every pipeline, by pipeline id: one paged DescribeAlarms for a whole listing.

    Only ALARM states are read, so the call stays short however many pipelines
    exist. Raises botocore's errors when CloudWatch cannot be read.
    """
    firing: dict[str, list[str]] = {}
    pages = aws.client("cloudwatch").get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=ALARM_NAME_PREFIX, StateValue="ALARM", AlarmTypes=["MetricAlarm"])
    for page in pages:
        # Checked again here: moto answers a prefix with every state (AWS applies both filters).
        for alarm in (a for a in page.get("MetricAlarms", []) if a.get("StateValue") == "ALARM"):
            # `<pipeline id>-<key>`: a pipeline id holds no "-" (the spec's pattern), a key may.
            pipeline_id, _, key = alarm["AlarmName"].removeprefix(ALARM_NAME_PREFIX).partition("-")
            if key in KINDS_BY_KEY:
                firing.setdefault(pipeline_id, []).append(key)
    return {pipeline_id: sorted(keys) for pipeline_id, keys in firing.items()}


def evaluate(spec: PipelineSpec, values: Mapping[str, float | None]) -> dict[str, tuple[AlarmState, str]]:
    """Each alarm's state for the metric `values` of one sweep, as CloudWatch would decide it. Pure.

    A metric without a value (not observed in this sweep) leaves its alarm out:
    CloudWatch keeps the state of an alarm whose period has no data.
    """
    states: dict[str, tuple[AlarmState, str]] = {}
    for kind in KINDS:
        value = values.get(kind.metric)
        if value is None:
            continue
        threshold = kind.threshold(spec)
        sign = ">" if kind.comparison == "GreaterThanThreshold" else ">="
        if kind.breached(value, threshold):
            states[kind.key] = ("ALARM", f"{kind.metric} {value:g} {sign} threshold {threshold:g}")
        else:
            states[kind.key] = ("OK", f"{kind.metric} {value:g} within threshold {threshold:g}")
    return states


def evaluating_locally(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(EVALUATE_ENV, "").strip().lower() in ("1", "true", "yes")


def record_states(pipeline_id: str, states: Mapping[str, tuple[AlarmState, str]]) -> list[str]:
    """Set the alarms' states (SetAlarmState) where they changed; returns the alarms that could not be set.

    Only where no service evaluates the alarms (`evaluating_locally`):
    on AWS CloudWatch's own evaluation would overwrite them. An alarm that
    does not exist (a pipeline provisioned before alarms existed) is named.
    """
    client = aws.client("cloudwatch")
    current = {alarm["AlarmName"]: alarm for alarm in _describe(client, pipeline_id)}
    missing = []
    for key, (state, reason) in states.items():
        name = alarm_name(pipeline_id, key)
        alarm = current.get(name)
        if alarm is None:
            missing.append(name)
            continue
        if alarm.get("StateValue") == state and alarm.get("StateReason") == reason:
            continue
        client.set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason[:1023])
    return missing
