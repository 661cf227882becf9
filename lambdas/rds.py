"""Logical replication on an RDS for PostgreSQL source: parameter group, reboot, state.

RDS turns logical replication on with the static parameter
`rds.logical_replication=1`, which takes effect after a reboot. Default
parameter groups cannot be modified, so an instance on one gets its own
group `cdcflow-<instance>-<family>`, a copy of the family's defaults with
that one parameter set. A custom group the instance already uses is
modified in place (every instance sharing it sees the change at its next
reboot).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from botocore.exceptions import ClientError

from lambdas import aws
from lambdas.errors import AwsApiThrottled, StepError

LOGICAL_REPLICATION_PARAMETER = "rds.logical_replication"
MANAGED_GROUP_PREFIX = "cdcflow"
IN_SYNC = "in-sync"
REBOOTING = "rebooting"
# RDS refuses changes while an instance is busy; these states pass by themselves.
_BUSY_INSTANCE_CODES = frozenset({"InvalidDBInstanceState", "InvalidDBInstanceStateFault"})


class InstanceNotFound(StepError):
    """The RDS instance named by the spec's `source.rds_instance_id` does not exist."""


class RdsEngineUnsupported(StepError):
    """The instance is not one cdcflow can configure (not PostgreSQL, or part of an Aurora cluster)."""


@dataclass(frozen=True)
class RdsParameterState:
    parameter_group: str
    changed: bool  # this call created, modified or attached a parameter group
    reboot_required: bool  # the parameter is set but not yet in effect


@dataclass(frozen=True)
class InstanceState:
    status: str  # DBInstanceStatus: "available", "modifying", "rebooting", ...
    parameter_apply_status: str  # of the instance's parameter group: "in-sync", "pending-reboot", "applying"

    @property
    def ready(self) -> bool:
        """Available, with every parameter of its group in effect."""
        return self.status == "available" and self.parameter_apply_status == IN_SYNC


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _describe_instance(instance_id: str) -> dict:
    try:
        instances = aws.client("rds").describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"]
    except ClientError as exc:
        if _code(exc) == "DBInstanceNotFound":
            raise InstanceNotFound(f"RDS instance {instance_id!r} does not exist") from None
        raise
    return instances[0]


def instance_state(instance_id: str) -> InstanceState:
    """The instance's status and its parameter group's apply status. Read-only."""
    instance = _describe_instance(instance_id)
    group = instance["DBParameterGroups"][0]
    return InstanceState(status=instance["DBInstanceStatus"], parameter_apply_status=group["ParameterApplyStatus"])


def managed_group_name(instance_id: str, family: str) -> str:
    """`cdcflow-<instance>-<family>`, within RDS's rules (letters, digits, single hyphens)."""
    name = f"{MANAGED_GROUP_PREFIX}-{instance_id}-{family}".lower()
    name = re.sub(r"[^a-z0-9-]", "-", name)
    return re.sub(r"-{2,}", "-", name).strip("-")[:255]


def _parameter_value(group_name: str, parameter: str) -> str | None:
    # DescribeDBParameters has no working name filter: page through the group.
    paginator = aws.client("rds").get_paginator("describe_db_parameters")
    for page in paginator.paginate(DBParameterGroupName=group_name):
        for candidate in page["Parameters"]:
            if candidate["ParameterName"] == parameter:
                return candidate.get("ParameterValue")
    return None


def _set_logical_replication(group_name: str) -> None:
    aws.client("rds").modify_db_parameter_group(
        DBParameterGroupName=group_name,
        Parameters=[{
            "ParameterName": LOGICAL_REPLICATION_PARAMETER,
            "ParameterValue": "1",
            "ApplyMethod": "pending-reboot",
        }],
    )


def _ensure_managed_group(instance_id: str, family: str) -> str:
    name = managed_group_name(instance_id, family)
    try:
        aws.client("rds").create_db_parameter_group(
            DBParameterGroupName=name,
            DBParameterGroupFamily=family,
            Description=f"cdcflow: logical replication for {instance_id}",
            Tags=[{"Key": "cdcflow:managed", "Value": "true"}, {"Key": "cdcflow:rds-instance", "Value": instance_id}],
        )
    except ClientError as exc:
        if _code(exc) != "DBParameterGroupAlreadyExists":
            raise
    return name


def _modify_instance(instance_id: str, group_name: str) -> None:
    try:
        aws.client("rds").modify_db_instance(
            DBInstanceIdentifier=instance_id, DBParameterGroupName=group_name, ApplyImmediately=True
        )
    except ClientError as exc:
        if _code(exc) in _BUSY_INSTANCE_CODES:
            raise AwsApiThrottled(
                f"RDS instance {instance_id!r} is busy and cannot change its parameter group yet"
            ) from None
        raise


def ensure_logical_replication_parameter(instance_id: str) -> RdsParameterState:
    """Make `rds.logical_replication=1` the instance's setting; say whether a reboot must follow.

    Idempotent: once the parameter is set in the attached group and in sync,
    returns `changed=False, reboot_required=False` and changes nothing. Raises
    `InstanceNotFound`, `RdsEngineUnsupported` (Aurora, non-PostgreSQL), or
    `AwsApiThrottled` while the instance is too busy to be modified.
    """
    instance = _describe_instance(instance_id)
    engine, cluster = instance.get("Engine", "unknown"), instance.get("DBClusterIdentifier")
    if cluster or engine != "postgres":
        where = f" in cluster {cluster!r}" if cluster else ""
        raise RdsEngineUnsupported(
            f"RDS instance {instance_id!r} runs {engine}{where}; cdcflow configures RDS for PostgreSQL instances only"
        )
    attached = instance["DBParameterGroups"][0]
    group_name, apply_status = attached["DBParameterGroupName"], attached["ParameterApplyStatus"]

    if group_name.startswith("default."):
        family = aws.client("rds").describe_db_parameter_groups(DBParameterGroupName=group_name)[
            "DBParameterGroups"
        ][0]["DBParameterGroupFamily"]
        managed = _ensure_managed_group(instance_id, family)
        if _parameter_value(managed, LOGICAL_REPLICATION_PARAMETER) != "1":
            _set_logical_replication(managed)
        _modify_instance(instance_id, managed)
        return RdsParameterState(parameter_group=managed, changed=True, reboot_required=True)

    if _parameter_value(group_name, LOGICAL_REPLICATION_PARAMETER) != "1":
        _set_logical_replication(group_name)
        return RdsParameterState(parameter_group=group_name, changed=True, reboot_required=True)
    return RdsParameterState(parameter_group=group_name, changed=False, reboot_required=apply_status != IN_SYNC)


def reboot_instance(instance_id: str) -> bool:
    """Reboot the instance so pending parameters take effect. True if this call started a reboot.

    Idempotent: an instance already rebooting is left alone (False). Raises
    `AwsApiThrottled` while the instance is in a state that cannot reboot yet
    (modifying, backing up), `InstanceNotFound` if it does not exist. Does not
    wait: poll `instance_state` until `ready`.
    """
    if instance_state(instance_id).status == REBOOTING:
        return False
    try:
        aws.client("rds").reboot_db_instance(DBInstanceIdentifier=instance_id)
    except ClientError as exc:
        if _code(exc) == "DBInstanceNotFound":
            raise InstanceNotFound(f"RDS instance {instance_id!r} does not exist") from None
        if _code(exc) in _BUSY_INSTANCE_CODES:
            if instance_state(instance_id).status == REBOOTING:
                return False
            raise AwsApiThrottled(f"RDS instance {instance_id!r} cannot reboot in its current state yet") from None
        raise
    return True
