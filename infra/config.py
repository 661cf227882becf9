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
| `apiThrottleRate` | `50` | requests per second the API stage admits (steady state, every route) |
| `apiThrottleBurst` | `100` | requests the API stage admits at once above the rate |
| `apiReservedConcurrency` | `10` | concurrent executions reserved (and capped) for the Api function |
| `databaseCaFile` | `""` | path, in the functions' file system (e.g. a layer's `/opt/...`), of the CA bundle database certificates must chain to (the RDS bundle); empty: the system's CAs. Connections may name their own |
| `connectDatabaseCaFile` | `""` | the same bundle's path on the Kafka Connect workers, for Debezium and the JDBC sink; empty: `databaseCaFile` |
| `mskClusterArns` | `[]` | Amazon MSK clusters that registered connections reach with `AWS_MSK_IAM`: the functions that reach Kafka may connect to them and create, describe, read and delete their topics |

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
# A handful of teams provisioning by hand or from CI: far above their need, far below what would
# let one caller's loop exhaust the account's Lambda concurrency or Step Functions quotas.
DEFAULT_API_THROTTLE_RATE = 50
DEFAULT_API_THROTTLE_BURST = 100
DEFAULT_API_RESERVED_CONCURRENCY = 10

_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")
# A secret name prefix ending in "/": secret names allow letters, digits and /_+=.@-
_SECRET_PREFIX = re.compile(r"^[A-Za-z0-9_+=.@-][A-Za-z0-9/_+=.@-]{0,254}/$")
_SCHEDULE = re.compile(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_CA_PATH = re.compile(r"^/[A-Za-z0-9._/-]{1,500}$")
# arn:aws:kafka:us-east-1:123456789012:cluster/orders/0a1b2c3d-0123-4567-89ab-0123456789ab-2
_MSK_CLUSTER_ARN = re.compile(r"^arn:aws[a-z-]*:kafka:[a-z0-9-]+:\d{12}:cluster/[A-Za-z0-9-]{1,64}/[A-Za-z0-9-]{1,64}$")


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
    api_throttle_rate: int = DEFAULT_API_THROTTLE_RATE
    api_throttle_burst: int = DEFAULT_API_THROTTLE_BURST
    api_reserved_concurrency: int = DEFAULT_API_RESERVED_CONCURRENCY
    database_ca_file: str | None = None
    connect_database_ca_file: str | None = None
    msk_cluster_arns: tuple[str, ...] = ()

    @classmethod
    def from_context(cls, node: Node) -> Settings:
        """Read and validate the settings; raises InvalidSetting on the first bad value."""
        return settings_from_values({key: node.try_get_context(key) for key in _KEYS})


_KEYS = ("vpcId", "subnetIds", "securityGroupIds", "adminSecretPrefix", "reconcileSchedule", "logLevel",
         "apiThrottleRate", "apiThrottleBurst", "apiReservedConcurrency", "databaseCaFile",
         "connectDatabaseCaFile", "mskClusterArns")


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

    throttle_rate = _positive_int(values, "apiThrottleRate", DEFAULT_API_THROTTLE_RATE, maximum=10000)
    throttle_burst = _positive_int(values, "apiThrottleBurst", DEFAULT_API_THROTTLE_BURST, maximum=5000)
    # Lambda refuses a reservation that leaves the account fewer than 100 unreserved executions;
    # 1000 is the default account limit, so more than 900 could never deploy there.
    reserved = _positive_int(values, "apiReservedConcurrency", DEFAULT_API_RESERVED_CONCURRENCY, maximum=900)

    ca_files = {}
    for key in ("databaseCaFile", "connectDatabaseCaFile"):
        path = _optional_string(values, key)
        if path is not None and not _CA_PATH.match(path):
            raise InvalidSetting(f"{key} must be an absolute file path, got {path!r}")
        ca_files[key] = path

    return Settings(
        network=NetworkSettings(vpc_id, subnet_ids, security_group_ids),
        msk_cluster_arns=_id_list(values, "mskClusterArns", _MSK_CLUSTER_ARN),
        database_ca_file=ca_files["databaseCaFile"],
        connect_database_ca_file=ca_files["connectDatabaseCaFile"],
        admin_secret_prefix=admin_secret_prefix,
        reconcile_schedule=reconcile_schedule,
        log_level=log_level,
        api_throttle_rate=throttle_rate,
        api_throttle_burst=throttle_burst,
        api_reserved_concurrency=reserved,
    )


def _positive_int(values: dict[str, Any], key: str, default: int, *, maximum: int) -> int:
    """A whole number from 1 to `maximum`, given as a JSON number (cdk.json) or a string (-c on the command line)."""
    value = values.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidSetting(f"{key} must be a whole number from 1 to {maximum}, got {value!r}")
    return value


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
