"""Connections: the source databases, Kafka clusters and sinks that platform admins register.

A connection holds everything a tenant must not choose — hosts, URLs, the
names of the secrets that hold credentials, an RDS instance and its reboot
policy — and the teams whose pipelines may use it. Tenant specs name
connections (`lambdas.pipeline_request`), so no spec can point a step at a
host or secret of its own choosing.

One DynamoDB item per connection name; `document` keeps the validated
registration as JSON. Only admins write here (the API's `/connections`
routes and `cdcflow connections add`); every pipeline request reads it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal


from lambdas import aws
from lambdas.spec import validator_for, violations

TABLE_ENV = "CONNECTIONS_TABLE"
DEFAULT_TABLE = "cdcflow-connections"
SCHEMA_PATH = Path(__file__).parent / "schemas" / "connection.schema.json"
EVERY_TEAM = "*"

Kind = Literal["source", "cluster", "sink"]
KINDS: tuple[Kind, ...] = ("source", "cluster", "sink")
# What a team that may use a connection sees of it: enough to choose, nothing to reach it with.
_TEAM_VISIBLE = ("name", "kind", "description", "type", "database", "rds_instance_id", "reboot_policy")


class ConnectionInvalid(ValueError):
    """A registration does not satisfy the connection schema; `problems` name each field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def schema() -> dict[str, Any]:
    return validator_for(SCHEMA_PATH).schema


@dataclass(frozen=True)
class Connection:
    name: str
    kind: Kind
    teams: frozenset[str]
    document: dict[str, Any]  # the whole registration, defaults filled

    def allows(self, team: str) -> bool:
        return EVERY_TEAM in self.teams or team in self.teams

    def setting(self, key: str, default: Any = None) -> Any:
        return self.document.get(key, default)

    def team_view(self) -> dict[str, Any]:
        """The connection as a team that may use it sees it: no host, URL or secret name."""
        return {key: self.document[key] for key in _TEAM_VISIBLE if key in self.document}


def parse_connection(document: Any) -> Connection:
    """Validate a registration and return it with defaults filled; `ConnectionInvalid` names every problem."""
    problems = violations(SCHEMA_PATH, document, whole="(connection)")
    if problems:
        raise ConnectionInvalid([f"{field}: {message}" for field, message in problems])
    filled = dict(document)
    if filled["kind"] == "source":
        filled.setdefault("reboot_policy", "approval")
    if filled["kind"] == "cluster":
        filled.setdefault("security_protocol", "PLAINTEXT")
    filled["teams"] = sorted(filled["teams"])
    return Connection(filled["name"], filled["kind"], frozenset(filled["teams"]), filled)


def table_name() -> str:
    return os.environ.get(TABLE_ENV) or DEFAULT_TABLE


def put_connection(document: Any, dynamodb: Any = None, table: str | None = None) -> Connection:
    """Register or replace a connection (admins only; the API checks).

    `dynamodb` and `table` default to the function's own client and table; the
    local stack and its tests register into a stack's table from outside it.
    """
    connection = parse_connection(document)
    (dynamodb or aws.client("dynamodb")).put_item(
        TableName=table or table_name(),
        Item={"name": {"S": connection.name}, "kind": {"S": connection.kind},
              "document": {"S": json.dumps(connection.document, sort_keys=True)}},
    )
    return connection


def _from_item(item: dict[str, Any]) -> Connection:
    return parse_connection(json.loads(item["document"]["S"]))


def get_connection(name: str) -> Connection | None:
    item = aws.client("dynamodb").get_item(TableName=table_name(), Key={"name": {"S": name}},
                                           ConsistentRead=True).get("Item")
    return _from_item(item) if item else None


def list_connections(kind: Kind | None = None) -> list[Connection]:
    """Every registered connection (of one kind), ordered by name; a platform registers tens, not thousands."""
    client = aws.client("dynamodb")
    request: dict[str, Any] = {"TableName": table_name()}
    if kind is not None:
        request.update(FilterExpression="#kind = :kind", ExpressionAttributeNames={"#kind": "kind"},
                       ExpressionAttributeValues={":kind": {"S": kind}})
    connections: list[Connection] = []
    while True:
        response = client.scan(**request)
        connections.extend(_from_item(item) for item in response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            return sorted(connections, key=lambda connection: connection.name)
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def delete_connection(name: str) -> bool:
    """Remove a connection; False when there was none."""
    response = aws.client("dynamodb").delete_item(
        TableName=table_name(), Key={"name": {"S": name}}, ReturnValues="ALL_OLD")
    return "Attributes" in response
