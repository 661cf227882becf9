"""Run a step at most once per execution, state and pipeline, with Powertools idempotency.

The key is `[execution_id, state_name, spec.pipeline_id]` from the task
payload. Retry counts and timestamps are left out on purpose: they change on
every retry, and a retry of a step that already succeeded must get the stored
result, not a second set of side effects. A failed run leaves no record, so a
retry after a failure runs the step again.

Records live in the DynamoDB table named by `IDEMPOTENCY_TABLE` (partition
key `id`, TTL attribute `expiration`: Powertools' defaults, named here once
for the CDK stack and the local tables). The
persistence layer is built on first use, so tests can point it at moto or at
DynamoDB Local (`AWS_ENDPOINT_URL_DYNAMODB`) before any step runs.

A concurrent duplicate (same key, first run still in progress) raises
Powertools' `IdempotencyAlreadyInProgressError`; the state machines retry it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.shared.functions import strtobool
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from lambdas import aws
from lambdas.errors import StepError

TABLE_ENV = "IDEMPOTENCY_TABLE"
DISABLED_ENV = "POWERTOOLS_IDEMPOTENCY_DISABLED"
IDEMPOTENCY_KEY = "[execution_id, state_name, spec.pipeline_id]"
# The table's key and TTL attributes: infra/tables.py and cdcflow/local/tables.py create them with these names.
IDEMPOTENCY_PARTITION_KEY = "id"
IDEMPOTENCY_TTL_ATTRIBUTE = "expiration"
# Longer than any execution can last (ProvisionPipeline times out after 48 hours),
# so a task re-delivered late in an execution still finds its record.
RECORD_TTL_SECONDS = 3 * 24 * 3600


class IdempotencyNotConfigured(StepError):
    """`IDEMPOTENCY_TABLE` is unset and idempotency was not explicitly disabled."""


_lock = threading.Lock()
_persistence_layers: dict[tuple[str, str], DynamoDBPersistenceLayer] = {}


def idempotency_disabled() -> bool:
    """Whether `POWERTOOLS_IDEMPOTENCY_DISABLED` is set to a true value (tests of other modules only)."""
    return strtobool(os.environ.get(DISABLED_ENV, "false"))


def _persistence_layer(key_prefix: str) -> DynamoDBPersistenceLayer:
    """The persistence layer of one step function, built on first use.

    One per step, because Powertools stores the key prefix on the layer at
    each call; steps sharing a layer across threads would swap prefixes.
    """
    table_name = os.environ.get(TABLE_ENV)
    if not table_name:
        raise IdempotencyNotConfigured(
            f"{TABLE_ENV} is not set: set it to the idempotency table's name, "
            f"or set {DISABLED_ENV}=1 to run steps without idempotency (tests only)"
        )
    cache_key = (key_prefix, table_name)
    with _lock:
        layer = _persistence_layers.get(cache_key)
        if layer is None:
            layer = DynamoDBPersistenceLayer(
                table_name=table_name,
                key_attr=IDEMPOTENCY_PARTITION_KEY,
                expiry_attr=IDEMPOTENCY_TTL_ATTRIBUTE,
                boto3_client=aws.client("dynamodb"),
            )
            _persistence_layers[cache_key] = layer
        return layer


def reset_persistence_layers() -> None:
    """Forget the built persistence layers (tests that switch tables or mocks call this)."""
    with _lock:
        _persistence_layers.clear()


def run_once(step: Callable[[], dict[str, Any]], task: dict[str, Any], context: Any, key_prefix: str) -> dict[str, Any]:
    """Run `step` unless a run with the same key as `task` already succeeded; then return its stored result.

    Raises `IdempotencyAlreadyInProgressError` while another run with the same
    key is in progress, `IdempotencyNotConfigured` when no table is set.
    The result must be JSON-serializable (it is stored as JSON).
    """
    if idempotency_disabled():
        return step()
    # A fresh config per call: Powertools keeps the Lambda context on it, and
    # concurrent invocations of one step must not share their deadlines.
    config = IdempotencyConfig(
        event_key_jmespath=IDEMPOTENCY_KEY,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=RECORD_TTL_SECONDS,
    )
    if context is not None:
        config.register_lambda_context(context)

    @idempotent_function(
        data_keyword_argument="task",
        persistence_store=_persistence_layer(key_prefix),
        config=config,
        key_prefix=key_prefix,
    )
    def run(task: dict[str, Any]) -> dict[str, Any]:
        return step()

    return run(task=task)


def in_progress_until(key_prefix: str, task: dict[str, Any]) -> float | None:
    """When the in-progress record of `task`'s run of the step with `key_prefix` expires (epoch seconds).

    None when no run of that key is in progress: it finished (a stored
    result), failed (no record) or never began, or its in-progress record has
    expired (the function's deadline passed). Reads one item; never writes.
    """
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyItemNotFoundError

    layer = DynamoDBPersistenceLayer(
        table_name=os.environ.get(TABLE_ENV) or "", key_attr=IDEMPOTENCY_PARTITION_KEY,
        expiry_attr=IDEMPOTENCY_TTL_ATTRIBUTE, boto3_client=aws.client("dynamodb"),
    )
    layer.configure(IdempotencyConfig(event_key_jmespath=IDEMPOTENCY_KEY, use_local_cache=False), key_prefix=key_prefix)
    try:
        record = layer.get_record(task)
    except IdempotencyItemNotFoundError:
        return None
    if record is None or record.status != "INPROGRESS" or record.in_progress_expiry_timestamp is None:
        return None
    expires = record.in_progress_expiry_timestamp / 1000
    return expires if expires > time.time() else None


def forget_in_progress_records() -> list[str]:
    """Delete every in-progress record of the idempotency table; return their ids.

    Only for a runtime that knows every run it started has died (the local
    engine, starting again after a crash: it runs the steps in its own
    process). A retry of such a step then runs at once instead of waiting
    until the dead run's in-progress record expires (the function's timeout,
    which on AWS is the Lambda timeout after which the run cannot be alive).
    Records of finished runs are kept. Conditional on the status, so a run
    that completes meanwhile keeps its record.
    """
    client = aws.client("dynamodb")
    table = os.environ.get(TABLE_ENV)
    if not table:
        raise IdempotencyNotConfigured(f"{TABLE_ENV} is not set: it names the idempotency table")
    forgotten: list[str] = []
    paginator = client.get_paginator("scan")
    pages = paginator.paginate(
        TableName=table, FilterExpression="#status = :in_progress",
        ExpressionAttributeNames={"#status": "status", "#id": IDEMPOTENCY_PARTITION_KEY},
        ExpressionAttributeValues={":in_progress": {"S": "INPROGRESS"}}, ProjectionExpression="#id",
    )
    for page in pages:
        for item in page.get("Items", []):
            try:
                client.delete_item(
                    TableName=table, Key={IDEMPOTENCY_PARTITION_KEY: item[IDEMPOTENCY_PARTITION_KEY]},
                    ConditionExpression="#status = :in_progress",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={":in_progress": {"S": "INPROGRESS"}},
                )
            except client.exceptions.ConditionalCheckFailedException:
                continue
            forgotten.append(item[IDEMPOTENCY_PARTITION_KEY]["S"])
    return forgotten
