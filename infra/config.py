"""Deployment settings of the cdcflow stack, read from CDK context.

Every setting has a default in `cdk.json`; override one with
`cdk synth -c key=value` (or `python app.py` after editing `cdk.json`).

| context key | default | meaning |
| --- | --- | --- |
| `vpcId` | `""` | existing VPC whose network reaches PostgreSQL, Kafka and Kafka Connect; empty: the stack creates a VPC |
| `subnetIds` | `[]` | private subnets of `vpcId` for the functions that reach the sources (required with `vpcId`) |
| `securityGroupIds` | `[]` | security groups for those functions; empty: the stack creates one (all outbound, no inbound) |
| `adminSecretPrefix` | `cdcflow-admin/` | name prefix of the admin secrets that pipeline specs may name; functions may read only those |
| `reconcileSchedule` | `rate(15 minutes)` | EventBridge schedule expression of the reconcile run |
| `logLevel` | `INFO` | LOG_LEVEL of every function |

Bad values fail the synth with a message naming the key; nothing is deployed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from constructs import Node

DEFAULT_ADMIN_SECRET_PREFIX = "cdcflow-admin/"
DEFAULT_RECONCILE_SCHEDULE = "rate(15 minutes)"
DEFAULT_LOG_LEVEL = "INFO"

_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")
# A secret name prefix ending in "/": secret names allow letters, digits and /_+=.@-
_SECRET_PREFIX = re.compile(r"^[A-Za-z0-9_+=.@-][A-Za-z0-9/_+=.@-]{0,254}/$")
_SCHEDULE = re.compile(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class InvalidSetting(ValueError):
    """A context value the stack cannot use; the message names the key."""


@dataclass(frozen=True)
class NetworkSettings:
    """Where the functions that reach PostgreSQL, Kafka and Connect run.

    `vpc_id` None means the stack creates its own VPC.
    """

    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    network: NetworkSettings = NetworkSettings()
    admin_secret_prefix: str = DEFAULT_ADMIN_SECRET_PREFIX
    reconcile_schedule: str = DEFAULT_RECONCILE_SCHEDULE
    log_level: str = DEFAULT_LOG_LEVEL

    @classmethod
    def from_context(cls, node: Node) -> Settings:
        """Read and validate the settings; raises InvalidSetting on the first bad value."""
        return settings_from_values({key: node.try_get_context(key) for key in _KEYS})


_KEYS = ("vpcId", "subnetIds", "securityGroupIds", "adminSecretPrefix", "reconcileSchedule", "logLevel")


def settings_from_values(values: dict[str, Any]) -> Settings:
    """Validate raw context values (None or "" means the default)."""
    vpc_id = _optional_string(values, "vpcId")
    subnet_ids = _id_list(values, "subnetIds", _SUBNET_ID)
    security_group_ids = _id_list(values, "securityGroupIds", _SECURITY_GROUP_ID)
    if vpc_id is None:
        if subnet_ids or security_group_ids:
            raise InvalidSetting("subnetIds and securityGroupIds need vpcId: they belong to an existing VPC")
    else:
        if not _VPC_ID.match(vpc_id):
            raise InvalidSetting(f"vpcId must look like vpc-0123456789abcdef0, got {vpc_id!r}")
        if not subnet_ids:
            raise InvalidSetting("subnetIds must list at least one private subnet of vpcId")

    admin_secret_prefix = _optional_string(values, "adminSecretPrefix") or DEFAULT_ADMIN_SECRET_PREFIX
    if not _SECRET_PREFIX.match(admin_secret_prefix) or admin_secret_prefix.startswith("cdcflow/"):
        raise InvalidSetting(
            "adminSecretPrefix must be a secret name prefix ending in '/' and outside cdcflow/ "
            f"(the replication secrets cdcflow writes), got {admin_secret_prefix!r}"
        )

    reconcile_schedule = _optional_string(values, "reconcileSchedule") or DEFAULT_RECONCILE_SCHEDULE
    if not _SCHEDULE.match(reconcile_schedule):
        raise InvalidSetting(
            "reconcileSchedule must be an EventBridge schedule expression such as "
            f"'rate(15 minutes)' or 'cron(0/15 * * * ? *)', got {reconcile_schedule!r}"
        )

    log_level = (_optional_string(values, "logLevel") or DEFAULT_LOG_LEVEL).upper()
    if log_level not in _LOG_LEVELS:
        raise InvalidSetting(f"logLevel must be one of {', '.join(_LOG_LEVELS)}, got {log_level!r}")

    return Settings(
        network=NetworkSettings(vpc_id, subnet_ids, security_group_ids),
        admin_secret_prefix=admin_secret_prefix,
        reconcile_schedule=reconcile_schedule,
        log_level=log_level,
    )


def _optional_string(values: dict[str, Any], key: str) -> str | None:
    value = values.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidSetting(f"{key} must be a string, got {value!r}")
    return value.strip()


def _id_list(values: dict[str, Any], key: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    """A list of AWS ids, given as a JSON list (cdk.json) or a comma-separated string (-c on the command line)."""
    value = values.get(key)
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        items: Sequence[Any] = [item.strip() for item in value.split(",") if item.strip()]
    elif isinstance(value, list):
        items = value
    else:
        raise InvalidSetting(f"{key} must be a list of ids, got {value!r}")
    for item in items:
        if not isinstance(item, str) or not pattern.match(item):
            raise InvalidSetting(f"{key} has an invalid id {item!r}")
    return tuple(items)
