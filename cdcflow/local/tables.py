"""Create the registry, idempotency and principals tables where no CDK stack does: DynamoDB Local and moto.

The key schemas are the ones `infra/tables.py` deploys: the registry keyed
by `pipeline_id` with the `by-status` index, the idempotency table keyed by
`id` with TTL on `expiration`, the principals table keyed by `principal`.
The names come from the modules that read the tables (`lambdas.registry`,
`lambdas.common.idempotency`, `lambdas.principals`), so the two cannot
drift. Local only: no Lambda function imports this.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from lambdas import principals, registry
from lambdas.common.idempotency import IDEMPOTENCY_PARTITION_KEY, IDEMPOTENCY_TTL_ATTRIBUTE


def _create_table(dynamodb_client: Any, **definition: Any) -> bool:
    try:
        dynamodb_client.create_table(BillingMode="PAY_PER_REQUEST", **definition)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
        return False
    return True


def ensure_tables(dynamodb_client: Any, registry_table: str, idempotency_table: str) -> list[str]:
    """Create both tables if absent and wait until they are active; return the names created.

    Idempotent: existing tables are left as they are (TTL is enabled if it is not yet).
    May block for as long as DynamoDB takes to create a table.
    """
    created = []
    if _create_table(
        dynamodb_client,
        TableName=registry_table,
        AttributeDefinitions=[
            {"AttributeName": registry.PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": registry.STATUS_ATTRIBUTE, "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": registry.PARTITION_KEY, "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{
            "IndexName": registry.STATUS_INDEX,
            "KeySchema": [
                {"AttributeName": registry.STATUS_ATTRIBUTE, "KeyType": "HASH"},
                {"AttributeName": registry.PARTITION_KEY, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }],
    ):
        created.append(registry_table)
    if _create_table(
        dynamodb_client,
        TableName=idempotency_table,
        AttributeDefinitions=[{"AttributeName": IDEMPOTENCY_PARTITION_KEY, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": IDEMPOTENCY_PARTITION_KEY, "KeyType": "HASH"}],
    ):
        created.append(idempotency_table)

    waiter = dynamodb_client.get_waiter("table_exists")
    for table in (registry_table, idempotency_table):
        waiter.wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})

    ttl = dynamodb_client.describe_time_to_live(TableName=idempotency_table)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        dynamodb_client.update_time_to_live(
            TableName=idempotency_table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": IDEMPOTENCY_TTL_ATTRIBUTE},
        )
    return created


def ensure_principals_table(dynamodb_client: Any, table: str = principals.DEFAULT_TABLE) -> bool:
    """Create the principals table if absent and wait until it is active; True when this call created it.

    Idempotent; may block for as long as DynamoDB takes to create a table.
    """
    created = _create_table(
        dynamodb_client,
        TableName=table,
        AttributeDefinitions=[{"AttributeName": principals.PARTITION_KEY, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": principals.PARTITION_KEY, "KeyType": "HASH"}],
    )
    dynamodb_client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    return created
