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
from collections.abc import Collection
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
RESOURCES_LEFT_ATTRIBUTE = "resources_left"
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
    PAUSED = "PAUSED"
    # The replication slot vanished, was re-created or was invalidated (reconciliation decides): changes may be
    # lost, so the pipeline stays BROKEN until a re-snapshot rebuilds it or a teardown removes it.
    BROKEN = "BROKEN"
    DELETING = "DELETING"
    DELETED = "DELETED"


# A pipeline in one of these states may be provisioned again by its owner.
REPROVISIONABLE = frozenset({PipelineStatus.DELETED, PipelineStatus.FAILED})
# The lifecycle workflows (PausePipeline, ResumePipeline) and the one status transition each may make.
LIFECYCLE_TRANSITIONS = {
    "pause": (PipelineStatus.ACTIVE, PipelineStatus.PAUSED),
    "resume": (PipelineStatus.PAUSED, PipelineStatus.ACTIVE),
    "update": (PipelineStatus.ACTIVE, PipelineStatus.ACTIVE),  # UpdatePipeline: a new spec, or the old one kept
    "resync": (PipelineStatus.ACTIVE, PipelineStatus.ACTIVE),  # ResyncPipeline: rows delivered again
    # RebuildPipeline: ACTIVE again, or still BROKEN (the first status is the one a request needs).
    "rebuild": (PipelineStatus.BROKEN, PipelineStatus.ACTIVE),
    # The provisioning itself, once ACTIVE, while its backfill copies the rows that existed (see `hold_for_backfill`).
    "backfill": (PipelineStatus.ACTIVE, PipelineStatus.ACTIVE),
}
# The statuses a lifecycle execution may find when it records its outcome (reconciliation may degrade an ACTIVE one).
LIFECYCLE_HOLDABLE = frozenset({PipelineStatus.ACTIVE, PipelineStatus.PAUSED, PipelineStatus.DEGRADED})
LIFECYCLE_EXECUTION_ATTRIBUTE = "lifecycle_execution_arn"
LIFECYCLE_ACTION_ATTRIBUTE = "lifecycle_action"
SPEC_HISTORY_ATTRIBUTE = "spec_history"
BACKFILL_ATTRIBUTE = "backfill"
# The spec history keeps the newest entries that fit in this many characters of JSON (an item holds 400 KB).
MAX_SPEC_HISTORY_CHARS = 160 * 1024


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
    # Written by a rollback: {"execution_arn": <the provisioning it undid>, "compensations": [<what may be left>]}.
    resources_left: dict[str, Any] | None = None
    requested_by: str | None = None  # the principal whose request started the provisioning
    # The lifecycle execution (pause, resume) that holds the pipeline, until it finishes; see `claim_lifecycle`.
    lifecycle_execution_arn: str | None = None
    lifecycle_action: str | None = None
    # The specs the pipeline ran on before its current one, oldest first: {"spec", "at", "by"}, where `at` is
    # when that spec was replaced and `by` the principal whose update replaced it (see `finish_lifecycle`).
    spec_history: tuple[dict[str, Any], ...] = ()
    # The copy of the rows that existed when the pipeline started streaming: {"status": RUNNING | DONE | FAILED,
    # "tables", "tables_done", "rows_copied", "rows_estimated", "started_at", "eta_seconds", ...}.
    backfill: dict[str, Any] | None = None

    def recorded_left(self) -> list[str] | None:
        """The compensations that may still have something to undo, as the current execution's rollback recorded.

        None when no rollback of the current execution left a record (an ACTIVE
        pipeline, a provisioning that was stopped): then everything may exist.
        """
        record = self.resources_left
        if not isinstance(record, dict) or record.get("execution_arn") != self.execution_arn:
            return None
        return [str(name) for name in record.get("compensations") or []]

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
            "requested_by": self.requested_by,
            "lifecycle_execution_arn": self.lifecycle_execution_arn,
            "spec_history": list(self.spec_history),
            "backfill": self.backfill,
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
        requested_by=document.get("requested_by"),
        resources_left=document.get(RESOURCES_LEFT_ATTRIBUTE),
        lifecycle_execution_arn=document.get(LIFECYCLE_EXECUTION_ATTRIBUTE),
        lifecycle_action=document.get(LIFECYCLE_ACTION_ATTRIBUTE),
        spec_history=tuple(json.loads(document[SPEC_HISTORY_ATTRIBUTE])) if document.get(SPEC_HISTORY_ATTRIBUTE)
        else (),
        backfill=json.loads(document[BACKFILL_ATTRIBUTE]) if document.get(BACKFILL_ATTRIBUTE) else None,
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


def register(spec: PipelineSpec, execution_arn: str, requested_by: str | None = None) -> RegistryEntry:
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
        if requested_by is not None:
            item["requested_by"] = requested_by
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
        reclaimed = _reclaim(existing, spec, fingerprint, execution_arn, now, requested_by)
        if reclaimed is not None:
            return reclaimed
    raise PipelineAlreadyOwned(f"pipeline {spec.pipeline_id!r} is being claimed concurrently by another request")


def _reclaim(
    existing: RegistryEntry, spec: PipelineSpec, fingerprint: str, execution_arn: str, now: str,
    requested_by: str | None,
) -> RegistryEntry | None:
    """Start a DELETED or FAILED entry over for a new execution; None if it changed meanwhile."""
    requester = (", requested_by = :requested_by", {"requested_by": requested_by}) if requested_by else ("", {})
    try:
        response = aws.client("dynamodb").update_item(
            TableName=table_name(),
            Key=_key(spec.pipeline_id),
            UpdateExpression=(
                "SET #spec = :spec, spec_fingerprint = :fingerprint, #status = :status, "
                "execution_arn = :execution_arn, updated_at = :now, #version = #version + :one" + requester[0] +
                " REMOVE current_step, last_error, " + TASK_TOKEN_ATTRIBUTE + ", " + RESOURCES_LEFT_ATTRIBUTE +
                ", " + LIFECYCLE_EXECUTION_ATTRIBUTE + ", " + LIFECYCLE_ACTION_ATTRIBUTE +
                ", " + SPEC_HISTORY_ATTRIBUTE
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
                **requester[1],
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
    resources_left: tuple[str, list[str]] | None = None,
) -> RegistryEntry:
    """Record `status` (and the current step and last error, when given); return the updated entry.

    `resources_left` is `(execution_arn, compensations)`: what a rollback of
    that execution could not undo (see `RegistryEntry.recorded_left`).

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
    if resources_left is not None:
        execution_arn, compensations = resources_left
        changes[RESOURCES_LEFT_ATTRIBUTE] = {"execution_arn": execution_arn, "compensations": list(compensations)}
    return _update(pipeline_id, changes, expected_execution_arn)


class LifecycleConflict(StepError):
    """The pipeline is not in the status a lifecycle workflow needs, or another lifecycle execution holds it."""


def claim_lifecycle(entry: RegistryEntry, action: str, execution_arn: str) -> RegistryEntry:
    """Record `execution_arn` as the lifecycle execution (`action`: pause or resume) that holds the pipeline.

    The write is conditional on the entry's `version`: it only happens while
    the entry is exactly `entry` (read by the caller, who checked its status
    and that no other lifecycle execution runs), so of two concurrent claims
    one wins and the other gets `LifecycleConflict`. Raises `ValueError` for
    an unknown action.
    """
    if action not in LIFECYCLE_TRANSITIONS:
        raise ValueError(f"no lifecycle action {action!r} (known: {', '.join(LIFECYCLE_TRANSITIONS)})")
    try:
        response = aws.client("dynamodb").update_item(
            TableName=table_name(),
            Key=_key(entry.pipeline_id),
            UpdateExpression="SET #arn = :arn, #action = :action, updated_at = :now, #version = #version + :one",
            ConditionExpression="#version = :version",
            ExpressionAttributeNames={"#arn": LIFECYCLE_EXECUTION_ATTRIBUTE, "#action": LIFECYCLE_ACTION_ATTRIBUTE,
                                      "#version": "version"},
            ExpressionAttributeValues=_values(arn=execution_arn, action=action, now=_now(), one=1,
                                              version=entry.version),
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if not _condition_failed(exc):
            raise
        raise LifecycleConflict(
            f"pipeline {entry.pipeline_id!r} changed while its {action} was being requested; try again"
        ) from None
    return _entry(response["Attributes"])


def hold_for_backfill(pipeline_id: str, execution_arn: str, backfill: dict[str, Any],
                      current_step: str | None = None) -> RegistryEntry:
    """Mark the pipeline ACTIVE and held by its own provisioning `execution_arn` while its backfill runs.

    One conditional write, only while that provisioning holds the entry
    (`PipelineAlreadyOwned` otherwise), so no pause, update or resync can
    start between ACTIVE and the hold: lifecycle requests meet the hold's 409
    until `finish_lifecycle` releases it. Idempotent for the same execution.
    """
    changes: dict[str, Any] = {
        STATUS_ATTRIBUTE: PipelineStatus.ACTIVE.value, LIFECYCLE_EXECUTION_ATTRIBUTE: execution_arn,
        LIFECYCLE_ACTION_ATTRIBUTE: "backfill", BACKFILL_ATTRIBUTE: json.dumps(backfill, sort_keys=True),
    }
    if current_step is not None:
        changes["current_step"] = current_step
    return _update(pipeline_id, changes, expected_execution_arn=execution_arn)


def record_backfill(pipeline_id: str, execution_arn: str, backfill: dict[str, Any]) -> RegistryEntry:
    """Record the backfill's progress while `execution_arn` holds the pipeline for it; return the entry.

    Raises `LifecycleConflict` once it does not (a teardown stopped the
    provisioning, or the hold was released): the progress is not the
    execution's to write any more.
    """
    values = {"backfill": json.dumps(backfill, sort_keys=True), "now": _now(), "one": 1, "arn": execution_arn,
              "action": "backfill"}
    try:
        response = aws.client("dynamodb").update_item(
            TableName=table_name(),
            Key=_key(pipeline_id),
            UpdateExpression="SET #backfill = :backfill, updated_at = :now, #version = #version + :one",
            ConditionExpression="#arn = :arn AND #action = :action",
            ExpressionAttributeNames={"#backfill": BACKFILL_ATTRIBUTE, "#version": "version",
                                      "#arn": LIFECYCLE_EXECUTION_ATTRIBUTE, "#action": LIFECYCLE_ACTION_ATTRIBUTE},
            ExpressionAttributeValues=_values(**values),
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if not _condition_failed(exc):
            raise
        raise LifecycleConflict(f"pipeline {pipeline_id!r} is no longer held for the backfill of execution "
                                f"{execution_arn}") from None
    return _entry(response["Attributes"])


def bounded_history(history: list[dict[str, Any]], limit: int = MAX_SPEC_HISTORY_CHARS) -> list[dict[str, Any]]:
    """The newest entries of `history` (oldest first) whose JSON fits in `limit` characters."""
    kept: list[dict[str, Any]] = []
    size = 2
    for item in reversed(history):
        size += len(json.dumps(item, sort_keys=True)) + 1
        if size > limit:
            break
        kept.append(item)
    return list(reversed(kept))


def finish_lifecycle(
    pipeline_id: str, execution_arn: str, status: PipelineStatus | str, error: str | None = None,
    cause: str | None = None, current_step: str | None = None, new_spec: PipelineSpec | None = None,
    updated_by: str | None = None,
) -> RegistryEntry:
    """Record the outcome of lifecycle execution `execution_arn` and release the pipeline; return the entry.

    `status` must be one the execution's action may leave (its transition's
    start or end: a failed pause leaves the pipeline ACTIVE, a failed resume
    PAUSED); with `error`, the entry's last error is set, else cleared.
    Conditional on the execution still holding the pipeline, and idempotent:
    a re-run after the release finds the status recorded and returns the
    entry. Raises `LifecycleConflict` when another execution holds it, the
    status is not one of the action's, or the pipeline has left ACTIVE, PAUSED
    and DEGRADED meanwhile (a teardown began: its status stays).

    With `new_spec` (an update that succeeded), the entry's spec becomes it
    and the spec it replaces joins the spec history with `updated_by` and the
    time (`bounded_history`); a re-run finds the new spec recorded and
    changes nothing.
    """
    status = PipelineStatus(status)
    changes: dict[str, Any] = {STATUS_ATTRIBUTE: status.value, "updated_at": _now()}
    if current_step is not None:
        changes["current_step"] = current_step
    if error is not None:
        changes["last_error"] = {"error": error, "cause": redact(cause or "")[:MAX_CAUSE_CHARS]}
    names = {f"#{name}": name for name in changes} | {"#version": "version", "#arn": LIFECYCLE_EXECUTION_ATTRIBUTE,
                                                      "#action": LIFECYCLE_ACTION_ATTRIBUTE}
    removes = ["#arn", "#action"] + ([] if error is not None else ["last_error"])
    for _ in range(_WRITE_ATTEMPTS):
        current = get(pipeline_id)
        if current is None:
            raise PipelineNotRegistered(f"pipeline {pipeline_id!r} is not registered")
        if current.lifecycle_execution_arn != execution_arn:
            if current.lifecycle_execution_arn is None and current.status is status and (
                    new_spec is None or current.spec_fingerprint == new_spec.fingerprint()):
                return current  # released by an earlier run of this step
            raise LifecycleConflict(f"pipeline {pipeline_id!r} is held by execution "
                                    f"{current.lifecycle_execution_arn or current.execution_arn}, not {execution_arn}")
        holdable = LIFECYCLE_HOLDABLE | ({PipelineStatus.BROKEN} if current.lifecycle_action == "rebuild" else set())
        if current.status not in holdable:
            # A teardown started meanwhile (or, but for a rebuild, reconciliation found the pipeline BROKEN):
            # its status is not the lifecycle's to overwrite.
            raise LifecycleConflict(f"pipeline {pipeline_id!r} became {current.status.value} during execution "
                                    f"{execution_arn}; its outcome is not recorded")
        if status not in LIFECYCLE_TRANSITIONS.get(current.lifecycle_action or "", ()):
            raise LifecycleConflict(f"a {current.lifecycle_action} may not leave pipeline {pipeline_id!r} "
                                    f"{status.value}")
        if new_spec is not None:
            replaced = {"spec": current.spec, "at": changes["updated_at"], "by": updated_by}
            changes.update({
                "spec": json.dumps(new_spec.to_dict(), sort_keys=True),
                "spec_fingerprint": new_spec.fingerprint(),
                SPEC_HISTORY_ATTRIBUTE: json.dumps(bounded_history([*current.spec_history, replaced])),
            })
            names.update({"#spec": "spec", "#spec_fingerprint": "spec_fingerprint",
                          f"#{SPEC_HISTORY_ATTRIBUTE}": SPEC_HISTORY_ATTRIBUTE})
        try:
            response = aws.client("dynamodb").update_item(
                TableName=table_name(),
                Key=_key(pipeline_id),
                UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in changes) +
                                 ", #version = #version + :one REMOVE " + ", ".join(removes),
                ConditionExpression="#arn = :arn AND #version = :version",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_values(**changes, arn=execution_arn, one=1, version=current.version),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _condition_failed(exc):
                continue  # a concurrent write (reconciliation's observations): read again
            raise
        return _entry(response["Attributes"])
    raise LifecycleConflict(f"pipeline {pipeline_id!r} kept changing while execution {execution_arn} recorded its end")


def set_step(pipeline_id: str, step: str) -> RegistryEntry:
    """Record the step the pipeline's workflow is in; return the updated entry."""
    return _update(pipeline_id, {"current_step": step})


# A workflow step records itself only while the workflow holds the entry in one of these states.
STEP_TRACKED_STATUSES = (PipelineStatus.PROVISIONING, PipelineStatus.DELETING)
# The attributes `record_step` touches (status is only read, in its condition): IAM's `dynamodb:Attributes`
# condition holds a step function to exactly these.
STEP_ATTRIBUTES = ("pipeline_id", "status", "current_step", "updated_at", "version")


def record_step(pipeline_id: str, step: str) -> bool:
    """Record `step` as the pipeline's current step while it is PROVISIONING or DELETING; True if written.

    Best effort and cheap (one conditional write, no read, nothing returned): a
    pipeline that is not registered, has reached ACTIVE or FAILED, or a registry
    that cannot be written leaves the entry as it is and returns False. Never raises.
    """
    try:
        aws.client("dynamodb").update_item(
            TableName=table_name(),
            Key=_key(pipeline_id),
            UpdateExpression="SET current_step = :step, updated_at = :now, #version = #version + :one",
            ConditionExpression="#status IN (" + ", ".join(f":s{i}" for i in range(len(STEP_TRACKED_STATUSES))) + ")",
            ExpressionAttributeNames={"#status": STATUS_ATTRIBUTE, "#version": "version"},
            ExpressionAttributeValues=_values(
                step=step, now=_now(), one=1,
                **{f"s{i}": status.value for i, status in enumerate(STEP_TRACKED_STATUSES)},
            ),
            ReturnValues="NONE",
        )
    except Exception:  # noqa: BLE001 - the step's own work matters more than its progress record
        return False
    return True


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
    owners: Collection[str] | None = None,
) -> RegistryPage:
    """One page of at most `limit` entries, optionally only those with `status`, `owner` and/or one of `owners`.

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
    filters = []
    if owner is not None:
        filters.append("#owner = :owner")
        values["owner"] = owner
    if owners is not None:
        if not owners:
            return RegistryPage(entries=[], next_key=None)
        allowed = {f"owner{index}": team for index, team in enumerate(sorted(owners))}
        filters.append(f"#owner IN ({', '.join(':' + key for key in allowed)})")
        values.update(allowed)
    if filters:
        request["FilterExpression"] = " AND ".join(filters)
        names["#owner"] = "owner"
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
