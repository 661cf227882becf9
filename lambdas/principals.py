"""The principals table: which teams each IAM principal acts for, and in which roles.

The platform team manages it (locally, `cdcflow local up` registers the
local credentials' principals); the API reads it to authorize every route.
One item per principal, keyed by its normalised ARN (`lambdas.identity`):

    {"principal": "arn:aws:iam::123456789012:role/orders-ci",
     "teams": ["team-orders"], "roles": ["requester"]}

The table is named by `PRINCIPALS_TABLE` (default `cdcflow-principals`);
its partition key is `principal` (S). A principal with no item has no team
and no role.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lambdas import aws
from lambdas.identity import normalise_principal

TABLE_ENV = "PRINCIPALS_TABLE"
DEFAULT_TABLE = "cdcflow-principals"
PARTITION_KEY = "principal"
ROLES = ("requester", "approver", "admin")
# The pipeline spec's owner pattern: a team is what a pipeline's owner names.
TEAM_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Principal:
    """A principal's teams and roles. `arn` is normalised (`lambdas.identity.normalise_principal`)."""

    arn: str
    teams: frozenset[str]
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def to_dict(self) -> dict[str, Any]:
        return {"principal": self.arn, "teams": sorted(self.teams), "roles": sorted(self.roles)}


def table_name() -> str:
    return os.environ.get(TABLE_ENV) or DEFAULT_TABLE


def _names(values: Iterable[str], what: str) -> frozenset[str]:
    if isinstance(values, str):
        raise ValueError(f"{what} must be a list of names, not the string {values!r}")
    return frozenset(values)


def _checked(arn: str, teams: Iterable[str], roles: Iterable[str]) -> Principal:
    team_set, role_set = _names(teams, "teams"), _names(roles, "roles")
    for role in sorted(role_set, key=str):
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} for {arn}: roles are {', '.join(ROLES)}")
    for team in sorted(team_set, key=str):
        if not isinstance(team, str) or not TEAM_PATTERN.fullmatch(team):
            raise ValueError(f"team {team!r} of {arn} must match {TEAM_PATTERN.pattern}")
    return Principal(normalise_principal(arn), team_set, role_set)


def _item(principal: Principal) -> dict[str, Any]:
    return {
        PARTITION_KEY: {"S": principal.arn},
        "teams": {"L": [{"S": team} for team in sorted(principal.teams)]},
        "roles": {"L": [{"S": role} for role in sorted(principal.roles)]},
    }


def _principal(item: Mapping[str, Any]) -> Principal:
    return Principal(
        arn=item[PARTITION_KEY]["S"],
        teams=frozenset(value["S"] for value in item.get("teams", {}).get("L", [])),
        roles=frozenset(value["S"] for value in item.get("roles", {}).get("L", [])),
    )


def put_principal(arn: str, *, teams: Iterable[str], roles: Iterable[str]) -> Principal:
    """Record (or replace) the principal's teams and roles; idempotent.

    Raises ValueError, writing nothing, when `arn` is not an IAM or STS ARN, a
    role is not one of `ROLES` or a team is not a valid owner name.
    """
    principal = _checked(arn, teams, roles)
    aws.client("dynamodb").put_item(TableName=table_name(), Item=_item(principal))
    return principal


def get_principal(arn: str) -> Principal | None:
    """The principal's entry (looked up by its normalised ARN), or None when it has none."""
    response = aws.client("dynamodb").get_item(
        TableName=table_name(), Key={PARTITION_KEY: {"S": normalise_principal(arn)}}, ConsistentRead=True,
    )
    item = response.get("Item")
    return _principal(item) if item else None


def list_principals() -> list[Principal]:
    """Every registered principal, ordered by ARN (a full scan: the table holds one item per principal)."""
    client = aws.client("dynamodb")
    principals: list[Principal] = []
    request: dict[str, Any] = {"TableName": table_name(), "ConsistentRead": True}
    while True:
        response = client.scan(**request)
        principals += [_principal(item) for item in response.get("Items", [])]
        if "LastEvaluatedKey" not in response:
            return sorted(principals, key=lambda principal: principal.arn)
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def delete_principal(arn: str) -> None:
    """Remove the principal's entry; a principal without one is left as it is."""
    aws.client("dynamodb").delete_item(TableName=table_name(), Key={PARTITION_KEY: {"S": normalise_principal(arn)}})
