"""Reconciliation's memory between sweeps, kept on the pipelines' registry entries.

Each entry carries a `reconcile` map (the `HealthRecord`: failed sweeps in a
row, recent restarts, slot lag, when it was checked) and a top-level
`slot_lag_bytes`, which the API shows. Writes follow the registry's rules
(conditional, `version` bumped), and a status change also sets `updated_at`
and `last_error`; observations alone leave `updated_at` alone, so it keeps
meaning "when the pipeline's state last changed".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from lambdas import aws, registry
from lambdas.reconcile.policy import RECONCILED_STATUSES, HealthRecord
from lambdas.registry import PipelineStatus

HEALTH_ATTRIBUTE = "reconcile"
SLOT_LAG_ATTRIBUTE = "slot_lag_bytes"
DEGRADED_ERROR = "PipelineDegraded"
BROKEN_ERROR = "PipelineBroken"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def read_health_records() -> dict[str, HealthRecord]:
    """Every pipeline's `HealthRecord`, by pipeline id (entries never reconciled are absent).

    One paged scan that reads only the pipeline id and the `reconcile` map.
    """
    paginator = aws.client("dynamodb").get_paginator("scan")
    records: dict[str, HealthRecord] = {}
    pages = paginator.paginate(
        TableName=registry.table_name(),
        ProjectionExpression="#id, #health",
        ExpressionAttributeNames={"#id": registry.PARTITION_KEY, "#health": HEALTH_ATTRIBUTE},
    )
    for page in pages:
        for item in page.get("Items", []):
            if HEALTH_ATTRIBUTE in item:
                document = _deserializer.deserialize(item[HEALTH_ATTRIBUTE])
                records[item[registry.PARTITION_KEY]["S"]] = HealthRecord.from_dict(document)
    return records


def allowed_transition(previous_status: PipelineStatus, status: PipelineStatus) -> bool:
    """Reconciliation moves ACTIVE <-> DEGRADED, leaves PAUSED as it is, and makes any of them BROKEN, for good."""
    if previous_status not in RECONCILED_STATUSES or status not in RECONCILED_STATUSES:
        return False
    if status is PipelineStatus.BROKEN or status is previous_status:
        return True
    return PipelineStatus.PAUSED not in (previous_status, status) and previous_status is not PipelineStatus.BROKEN


def save_assessment(
    pipeline_id: str,
    execution_arn: str,
    health: HealthRecord,
    status: PipelineStatus,
    previous_status: PipelineStatus,
    now: datetime,
    problems: tuple[str, ...] = (),
) -> bool:
    """Store `health` and, when it differs from `previous_status`, the new `status`; True if written.

    The write only happens while the entry still belongs to `execution_arn`
    and is still `previous_status`, so a teardown or a re-provision that
    started during the sweep is never overwritten (False then). Entering
    DEGRADED records the problems as the entry's last error; recovering to
    ACTIVE clears it. Idempotent for equal arguments apart from `version`.
    """
    if not allowed_transition(previous_status, status):
        raise ValueError(f"reconciliation only moves pipelines between ACTIVE and DEGRADED (a PAUSED one stays "
                         f"PAUSED), or to BROKEN (which stays BROKEN), not {previous_status} -> {status}")
    values: dict[str, Any] = {
        "health": health.to_dict(),
        "lag": health.slot_lag_bytes,
        "execution_arn": execution_arn,
        "previous_status": previous_status.value,
        "one": 1,
    }
    names = {
        "#health": HEALTH_ATTRIBUTE,
        "#lag": SLOT_LAG_ATTRIBUTE,
        "#status": registry.STATUS_ATTRIBUTE,
        "#version": "version",
    }
    sets = ["#health = :health", "#lag = :lag", "#version = #version + :one"]
    removes: list[str] = []
    if status is not previous_status:
        sets += ["#status = :status", "updated_at = :now"]
        values |= {"status": status.value, "now": now.isoformat(timespec="milliseconds")}
        if status in (PipelineStatus.DEGRADED, PipelineStatus.BROKEN):
            sets.append("last_error = :last_error")
            cause = "; ".join(problems)[: registry.MAX_CAUSE_CHARS]
            error = BROKEN_ERROR if status is PipelineStatus.BROKEN else DEGRADED_ERROR
            values["last_error"] = {"error": error, "cause": cause}
        else:
            removes.append("last_error")
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    try:
        aws.client("dynamodb").update_item(
            TableName=registry.table_name(),
            Key={registry.PARTITION_KEY: {"S": pipeline_id}},
            UpdateExpression=expression,
            ConditionExpression="execution_arn = :execution_arn AND #status = :previous_status",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":{name}": _serializer.serialize(value) for name, value in values.items()},
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True
