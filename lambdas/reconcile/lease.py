"""The reconcile lease: one item in the idempotency table that keeps two sweeps from running at once.

On AWS the Reconcile function's reserved concurrency of 1 already queues a
second scheduled invocation; the lease also covers what concurrency cannot
see: `cdcflow reconcile` run against the same tables, locally or by hand.
A sweep takes the lease with a conditional write and gives it back when it
ends; a lease whose holder died (a sweep killed by its timeout) expires
after `DEFAULT_LEASE_SECONDS` and may then be taken over.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from lambdas import aws
from lambdas.common.idempotency import TABLE_ENV

# infra/functions.py grants the Reconcile function this one key of the table (dynamodb:LeadingKeys).
LEASE_ID = "reconcile-lease"
# The function's 900 s timeout and a minute: a sweep that ran out of time has stopped by then.
DEFAULT_LEASE_SECONDS = 960
# DynamoDB's TTL removes the item a day after expiry; until then the condition below ignores it.
_TTL_AFTER_EXPIRY_SECONDS = 86400


class ReconcileAlreadyRunning(Exception):
    """Another sweep holds the reconcile lease."""


@dataclass(frozen=True)
class Lease:
    owner: str
    token: str
    expires_at: int  # epoch seconds


def _table() -> str:
    table = os.environ.get(TABLE_ENV)
    if not table:
        raise ValueError(f"{TABLE_ENV} is not set: the reconcile lease lives in the idempotency table")
    return table


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def acquire(owner: str, *, seconds: int = DEFAULT_LEASE_SECONDS, clock: Callable[[], float] = time.time) -> Lease:
    """Take the lease for `seconds`, or raise `ReconcileAlreadyRunning` naming its holder and when it expires.

    One conditional write: of concurrent callers exactly one gets the lease.
    An expired lease is taken over.
    """
    now = int(clock())
    lease = Lease(owner=owner, token=secrets.token_hex(16), expires_at=now + seconds)
    client = aws.client("dynamodb")
    try:
        client.put_item(
            TableName=_table(),
            Item={
                "id": {"S": LEASE_ID},
                "owner": {"S": owner},
                "token": {"S": lease.token},
                "acquired_at": {"N": str(now)},
                "expires_at": {"N": str(lease.expires_at)},
                "expiration": {"N": str(lease.expires_at + _TTL_AFTER_EXPIRY_SECONDS)},
            },
            ConditionExpression="attribute_not_exists(id) OR expires_at < :now",
            ExpressionAttributeValues={":now": {"N": str(now)}},
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        held = client.get_item(TableName=_table(), Key={"id": {"S": LEASE_ID}}, ConsistentRead=True).get("Item", {})
        holder = held.get("owner", {}).get("S", "another sweep")
        since = _utc(int(held.get("acquired_at", {}).get("N", now)))
        until = _utc(int(held.get("expires_at", {}).get("N", now)))
        raise ReconcileAlreadyRunning(
            f"another reconcile sweep is running ({holder}, since {since}); its lease ends by {until}"
        ) from None
    return lease


def release(lease: Lease) -> bool:
    """Give the lease back; True if it was still ours (an expired one may have been taken over meanwhile)."""
    try:
        aws.client("dynamodb").delete_item(
            TableName=_table(),
            Key={"id": {"S": LEASE_ID}},
            ConditionExpression="#token = :token",
            ExpressionAttributeNames={"#token": "token"},
            ExpressionAttributeValues={":token": {"S": lease.token}},
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


@contextmanager
def reconcile_lease(
    owner: str, *, seconds: int = DEFAULT_LEASE_SECONDS, clock: Callable[[], float] = time.time
) -> Iterator[Lease]:
    """Hold the lease for the block (see `acquire`); it is released however the block ends."""
    lease = acquire(owner, seconds=seconds, clock=clock)
    try:
        yield lease
    finally:
        release(lease)
