"""The pipeline registry: one DynamoDB item per pipeline id, its owner and its state.

The table is named by `REGISTRY_TABLE`; its partition key is `pipeline_id`
and the `by-status` index (partition `status`, sort `pipeline_id`) serves
listings by status. Every write is conditional, so two requests can never
both own one pipeline id, and every write bumps the item's `version`.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from lambdas import aws
from lambdas.common.redaction import redact
from lambdas.errors import PipelineAlreadyOwned, StepError
from lambdas.spec import PipelineSpec

TABLE_ENV = "REGISTRY_TABLE"
PARTITION_KEY = "pipeline_id"
STATUS_INDEX = "by-status"
STATUS_ATTRIBUTE = "status"
TASK_TOKEN_ATTRIBUTE = "approval_task_token"
# Step Functions causes run to 32 KB; the registry keeps the start, which names the problem.
MAX_CAUSE_CHARS = 4096
DEFAULT_PAGE_SIZE = 50
# A conditional write that loses a race is re-read and re-decided this many times.
_WRITE_ATTEMPTS = 3

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class PipelineStatus(StrEnum):
    PROVISIONING = "PROVISIONING"
    ACTIVE = "ACTIVE"
    FAILED = "FAILED"
    DEGRADED = "DEGRADED"
    DELETING = "DELETING"
    DELETED = "DELETED"


# A pipeline in one of these states may be provisioned again by its owner.
REPROVISIONABLE = frozenset({PipelineStatus.DELETED, PipelineStatus.FAILED})


class PipelineNotRegistered(StepError):
    """The registry has no entry for the pipeline id."""


@dataclass(frozen=True)
class RegistryEntry:
    pipeline_id: str
    owner: str
    spec: dict[str, Any]
    spec_fingerprint: str
    status: PipelineStatus
    execution_arn: str
    created_at: str
    updated_at: str
    version: int
    current_step: str | None = None
    last_error: dict[str, str] | None = None
    slot_lag_bytes: int | None = None  # written by reconciliation; None until a sweep measured it

    def to_dict(self) -> dict[str, Any]:
        """The entry as a JSON object (for the API and the state machines)."""
        return {
            "pipeline_id": self.pipeline_id,
            "owner": self.owner,
            "spec": self.spec,
            "spec_fingerprint": self.spec_fingerprint,
            "status": self.status.value,
            "current_step": self.current_step,
            "last_error": self.last_error,
            "execution_arn": self.execution_arn,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "version": self.version,
            "slot_lag_bytes": self.slot_lag_bytes,
        }


@dataclass(frozen=True)
class RegistryPage:
    entries: list[RegistryEntry]
    next_key: str | None  # pass as `start_key` for the next page; None on the last page


def table_name() -> str:
    name = os.environ.get(TABLE_ENV)
    if not name:
        raise RuntimeError(f"{TABLE_ENV} is not set: it names the pipeline registry table")
    return name


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _key(pipeline_id: str) -> dict[str, Any]:
    return {PARTITION_KEY: {"S": pipeline_id}}


def _values(**values: Any) -> dict[str, Any]:
    return {f":{name}": _serializer.serialize(value) for name, value in values.items()}


def _entry(item: dict[str, Any]) -> RegistryEntry:
    document = {name: _deserializer.deserialize(value) for name, value in item.items()}
    return RegistryEntry(
        pipeline_id=document["pipeline_id"],
        owner=document["owner"],
        spec=json.loads(document["spec"]),
        spec_fingerprint=document["spec_fingerprint"],
        status=PipelineStatus(document["status"]),
        execution_arn=document["execution_arn"],
        created_at=document["created_at"],
        updated_at=document["updated_at"],
        version=int(document["version"]),
        current_step=document.get("current_step"),
        last_error=document.get("last_error"),
        slot_lag_bytes=None if document.get("slot_lag_bytes") is None else int(document["slot_lag_bytes"]),
    )


def _condition_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _ownership_conflict(existing: RegistryEntry, spec: PipelineSpec) -> PipelineAlreadyOwned:
    pipeline = spec.pipeline_id
    if existing.owner != spec.owner:
        return PipelineAlreadyOwned(f"pipeline {pipeline!r} is owned by {existing.owner}")
    if existing.status is PipelineStatus.PROVISIONING:
        return PipelineAlreadyOwned(
            f"pipeline {pipeline!r} is already being provisioned by execution {existing.execution_arn}"
        )
    return PipelineAlreadyOwned(
        f"pipeline {pipeline!r} is {existing.status.value} (execution {existing.execution_arn}); "
        "tear it down before provisioning it again"
    )


def register(spec: PipelineSpec, execution_arn: str) -> RegistryEntry:
    """Claim `spec.pipeline_id` for `spec.owner` and execution `execution_arn`; return the entry.

    Succeeds when the id is free; when the entry already records this spec and
    this execution (an idempotent re-run: the entry is returned unchanged);
    or when the entry is DELETED or FAILED and belongs to the same owner (a
    re-provision: the entry starts over as PROVISIONING). Otherwise raises
    `PipelineAlreadyOwned` naming the owner or the execution that holds it.
    Every write is conditional, so of two concurrent claims exactly one wins.
    """
    client = aws.client("dynamodb")
    fingerprint = spec.fingerprint()
    now = _now()
    for _ in range(_WRITE_ATTEMPTS):
        item = {
            "pipeline_id": spec.pipeline_id,
            "owner": spec.owner,
            "spec": json.dumps(spec.to_dict(), sort_keys=True),
            "spec_fingerprint": fingerprint,
            "status": PipelineStatus.PROVISIONING.value,
            "execution_arn": execution_arn,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        try:
            client.put_item(
                TableName=table_name(),
                Item={name: _serializer.serialize(value) for name, value in item.items()},
                ConditionExpression="attribute_not_exists(pipeline_id)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return _entry({name: _serializer.serialize(value) for name, value in item.items()})
        except ClientError as exc:
            if not _condition_failed(exc):
                raise
            old_item = exc.response.get("Item")
        existing = _entry(old_item) if old_item else get(spec.pipeline_id)
        if existing is None:
            continue  # deleted between our write and our read: try the claim again
        if existing.spec_fingerprint == fingerprint and existing.execution_arn == execution_arn:
            return existing
        if existing.status not in REPROVISIONABLE or existing.owner != spec.owner:
            raise _ownership_conflict(existing, spec)
        reclaimed = _reclaim(existing, spec, fingerprint, execution_arn, now)
        if reclaimed is not None:
            return reclaimed
    raise PipelineAlreadyOwned(f"pipeline {spec.pipeline_id!r} is being claimed concurrently by another request")


def _reclaim(
    existing: RegistryEntry, spec: PipelineSpec, fingerprint: str, execution_arn: str, now: str
) -> RegistryEntry | None:
    """Start a DELETED or FAILED entry over for a new execution; None if it changed meanwhile."""
    try:
        response = aws.client("dynamodb").update_item(
            TableName=table_name(),
            Key=_key(spec.pipeline_id),
            UpdateExpression=(
                "SET #spec = :spec, spec_fingerprint = :fingerprint, #status = :status, "
                "execution_arn = :execution_arn, updated_at = :now, #version = #version + :one "
                "REMOVE current_step, last_error, " + TASK_TOKEN_ATTRIBUTE
            ),
            ConditionExpression="#version = :version",
            ExpressionAttributeNames={"#spec": "spec", "#status": STATUS_ATTRIBUTE, "#version": "version"},
            ExpressionAttributeValues=_values(
                spec=json.dumps(spec.to_dict(), sort_keys=True),
                fingerprint=fingerprint,
                status=PipelineStatus.PROVISIONING.value,
                execution_arn=execution_arn,
                now=now,
                one=1,
                version=existing.version,
            ),
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if _condition_failed(exc):
            return None
        raise
    return _entry(response["Attributes"])


def _update(
    pipeline_id: str,
    set_clauses: dict[str, Any],
    expected_execution_arn: str | None = None,
) -> RegistryEntry:
    """SET `set_clauses` (plus updated_at and version) on an existing entry; return the new entry."""
    values = {**set_clauses, "updated_at": _now()}
    names = {f"#{name}": name for name in values} | {"#version": "version"}
    expression = "SET " + ", ".join(f"#{name} = :{name}" for name in values) + ", #version = #version + :one"
    condition = "attribute_exists(pipeline_id)"
    expression_values = {**values, "one": 1}
    if expected_execution_arn is not None:
        condition += " AND execution_arn = :expected_execution_arn"
        expression_values["expected_execution_arn"] = expected_execution_arn
    try:
        response = aws.client("dynamodb").update_item(
            TableName=table_name(),
            Key=_key(pipeline_id),
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=_values(**expression_values),
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if not _condition_failed(exc):
            raise
        existing = get(pipeline_id)
        if existing is None:
            raise PipelineNotRegistered(f"pipeline {pipeline_id!r} is not registered") from None
        raise PipelineAlreadyOwned(
            f"pipeline {pipeline_id!r} is held by execution {existing.execution_arn}, not {expected_execution_arn}"
        ) from None
    return _entry(response["Attributes"])


def mark(
    pipeline_id: str,
    status: PipelineStatus | str,
    current_step: str | None = None,
    error: str | None = None,
    cause: str | None = None,
    expected_execution_arn: str | None = None,
) -> RegistryEntry:
    """Record `status` (and the current step and last error, when given); return the updated entry.

    With `expected_execution_arn`, the write only happens while that execution
    holds the entry (`PipelineAlreadyOwned` otherwise), so a stale execution
    cannot overwrite a newer one's state. Raises `PipelineNotRegistered` for
    an unknown id. The cause is redacted and cut to `MAX_CAUSE_CHARS`.
    """
    changes: dict[str, Any] = {STATUS_ATTRIBUTE: PipelineStatus(status).value}
    if current_step is not None:
        changes["current_step"] = current_step
    if error is not None or cause is not None:
        changes["last_error"] = {"error": error or "", "cause": redact(cause or "")[:MAX_CAUSE_CHARS]}
    return _update(pipeline_id, changes, expected_execution_arn)


def set_step(pipeline_id: str, step: str) -> RegistryEntry:
    """Record the step the pipeline's workflow is in; return the updated entry."""
    return _update(pipeline_id, {"current_step": step})


def get(pipeline_id: str) -> RegistryEntry | None:
    """The entry of `pipeline_id` (strongly consistent read), or None."""
    response = aws.client("dynamodb").get_item(TableName=table_name(), Key=_key(pipeline_id), ConsistentRead=True)
    item = response.get("Item")
    return _entry(item) if item else None


def _encode_start_key(key: dict[str, Any]) -> str:
    document = {name: _deserializer.deserialize(value) for name, value in key.items()}
    return base64.urlsafe_b64encode(json.dumps(document, sort_keys=True).encode()).decode()


def _decode_start_key(token: str) -> dict[str, Any]:
    try:
        document = json.loads(base64.urlsafe_b64decode(token.encode()))
        if not isinstance(document, dict) or not all(isinstance(v, str) for v in document.values()):
            raise ValueError
    except ValueError:
        raise ValueError(f"start_key {token!r} is not a key returned by list_entries") from None
    return {name: _serializer.serialize(value) for name, value in document.items()}


def list_entries(
    status: PipelineStatus | str | None = None,
    owner: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    start_key: str | None = None,
) -> RegistryPage:
    """One page of at most `limit` entries, optionally only those with `status` and/or `owner`.

    By status, the `by-status` index is queried (ordered by pipeline id);
    otherwise the table is scanned. Pass the page's `next_key` as `start_key`
    to continue. Raises ValueError for a bad limit or a foreign start key.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    client = aws.client("dynamodb")
    request: dict[str, Any] = {"TableName": table_name()}
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    if status is not None:
        request["IndexName"] = STATUS_INDEX
        request["KeyConditionExpression"] = "#status = :status"
        names["#status"] = STATUS_ATTRIBUTE
        values["status"] = PipelineStatus(status).value
    if owner is not None:
        request["FilterExpression"] = "#owner = :owner"
        names["#owner"] = "owner"
        values["owner"] = owner
    if names:
        request["ExpressionAttributeNames"] = names
        request["ExpressionAttributeValues"] = _values(**values)
    exclusive_start = _decode_start_key(start_key) if start_key else None

    entries: list[RegistryEntry] = []
    while True:
        page_request = {**request, "Limit": limit - len(entries)}
        if exclusive_start:
            page_request["ExclusiveStartKey"] = exclusive_start
        response = client.query(**page_request) if status is not None else client.scan(**page_request)
        entries.extend(_entry(item) for item in response.get("Items", []))
        exclusive_start = response.get("LastEvaluatedKey")
        # `Limit` counts items read before the owner filter, so a page may come back short.
        if not exclusive_start or len(entries) >= limit:
            break
    return RegistryPage(entries=entries, next_key=_encode_start_key(exclusive_start) if exclusive_start else None)


def delete(pipeline_id: str) -> bool:
    """Remove the entry of `pipeline_id`. True if there was one. Idempotent."""
    response = aws.client("dynamodb").delete_item(TableName=table_name(), Key=_key(pipeline_id), ReturnValues="ALL_OLD")
    return "Attributes" in response


def store_task_token(pipeline_id: str, token: str) -> None:
    """Keep the task token of the pipeline's pending approval (replacing any earlier one).

    Raises `PipelineNotRegistered` for an unknown id.
    """
    _update(pipeline_id, {TASK_TOKEN_ATTRIBUTE: token})


def pop_task_token(pipeline_id: str) -> str | None:
    """Remove and return the pending approval's task token; None if there is none.

    Atomic: of two concurrent callers (two approvals), only one gets the token.
    """
    try:
        response = aws.client("dynamodb").update_item(
            TableName=table_name(),
            Key=_key(pipeline_id),
            UpdateExpression=f"REMOVE {TASK_TOKEN_ATTRIBUTE} SET updated_at = :now, #version = #version + :one",
            ConditionExpression=f"attribute_exists({TASK_TOKEN_ATTRIBUTE})",
            ExpressionAttributeNames={"#version": "version"},
            ExpressionAttributeValues=_values(now=_now(), one=1),
            ReturnValues="UPDATED_OLD",
        )
    except ClientError as exc:
        if _condition_failed(exc):
            return None
        raise
    return response["Attributes"][TASK_TOKEN_ATTRIBUTE]["S"]
