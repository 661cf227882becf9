"""The local stack's own connections, registered as a platform team registers its databases and clusters.

`cdcflow local up` registers these once the engine has created the tables,
so the examples and the demo name `local-postgres`, `local-kafka`,
`local-warehouse` and `local-opensearch` as a team's spec names its
platform's connections. Every team may use them; a test that needs a
connection reserved to one team registers its own.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from cdcflow.local import postgres
from cdcflow.local.config import StackConfig, endpoints_for
from lambdas import connections

SOURCE = "local-postgres"
CLUSTER = "local-kafka"
WAREHOUSE = "local-warehouse"
OPENSEARCH = "local-opensearch"


def local_connections(config: StackConfig) -> list[dict[str, Any]]:
    endpoints = endpoints_for(config, postgres.ADMIN_USER, "")
    pg = endpoints.postgres
    return [
        {"name": SOURCE, "kind": "source", "description": "The local stack's PostgreSQL, database 'source'",
         "host": pg.host, "port": pg.port, "database": pg.source_database,
         "admin_secret": endpoints.aws.source_admin_secret, "teams": [connections.EVERY_TEAM]},
        {"name": CLUSTER, "kind": "cluster", "description": "The local stack's Kafka and Kafka Connect",
         "bootstrap_servers": endpoints.kafka.bootstrap_servers, "connect_url": endpoints.connect.url,
         "teams": [connections.EVERY_TEAM]},
        {"name": WAREHOUSE, "kind": "sink", "type": "jdbc",
         "description": "The local stack's PostgreSQL, database 'sink'",
         "host": pg.host, "port": pg.port, "database": pg.sink_database,
         "secret": endpoints.aws.sink_admin_secret, "teams": [connections.EVERY_TEAM]},
        {"name": OPENSEARCH, "kind": "sink", "type": "opensearch",
         "description": "The local OpenSearch (cdcflow local up --with opensearch)",
         "url": endpoints.opensearch.url, "teams": [connections.EVERY_TEAM]},
    ]


def ensure_connections_table(dynamodb_client: Any, table: str) -> None:
    """Create the connections table (keyed by `name`) if absent and wait until it is active."""
    try:
        dynamodb_client.create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    dynamodb_client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def register_local_connections(config: StackConfig, dynamodb_client: Any) -> list[str]:
    """Create the table and (re-)register the local connections; return their names."""
    ensure_connections_table(dynamodb_client, connections.table_name())
    return [connections.put_connection(document).name for document in local_connections(config)]
