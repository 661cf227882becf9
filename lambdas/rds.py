"""Logical replication on an RDS for PostgreSQL source: a parameter group of its own, the reboot, its state.

RDS turns logical replication on with the static parameter
`rds.logical_replication=1`, which takes effect after a reboot. cdcflow never
edits a parameter group it did not create: a group may be shared by other
instances, and a change to it reaches every one of them at its next reboot.
Instead the instance gets a group dedicated to it, `cdcflow-<instance>`,
copied (CopyDBParameterGroup) from the group it has now, default or custom,
with that one parameter set; the copy is attached and tagged
`cdcflow:managed=true`, `cdcflow:instance=<instance>`, the group it was
copied from and the pipeline whose provisioning made it. An instance whose
current group already has the parameter set needs no copy at all.

cdcflow changes only instances the platform tagged `cdcflow:managed=true`
(IAM allows the changes only there: `rds:db-tag/cdcflow:managed`); every
function checks that tag itself first, so a missing tag fails with
`RdsInstanceNotManaged` naming the instance and the tag, also where IAM is
not evaluated (moto).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from botocore.exceptions import ClientError

from lambdas import aws
from lambdas.errors import AwsApiThrottled, StepError

LOGICAL_REPLICATION_PARAMETER = "rds.logical_replication"
MANAGED_GROUP_PREFIX = "cdcflow"
# The tag the platform sets on instances cdcflow may modify and reboot, and cdcflow sets on the groups it creates.
MANAGED_TAG = "cdcflow:managed"
MANAGED_VALUE = "true"
INSTANCE_TAG = "cdcflow:instance"  # on a dedicated group: the instance it belongs to
COPIED_FROM_TAG = "cdcflow:copied-from"  # on a dedicated group: the group the instance had before
PIPELINE_TAG = "cdcflow:pipeline"  # on a dedicated group: the pipeline whose provisioning created it
IN_SYNC = "in-sync"
REBOOTING = "rebooting"
# RDS refuses changes while an instance is busy; these states pass by themselves.
_BUSY_INSTANCE_CODES = frozenset({"InvalidDBInstanceState", "InvalidDBInstanceStateFault"})
# A group still attached to an instance (its detachment is in progress) cannot be deleted yet.
_GROUP_IN_USE_CODES = frozenset({"InvalidDBParameterGroupState", "InvalidDBParameterGroupStateFault"})


class InstanceNotFound(StepError):
    """The RDS instance named by the source connection's `rds_instance_id` does not exist."""


class RdsEngineUnsupported(StepError):
    """The instance is not one cdcflow can configure (not PostgreSQL, or part of an Aurora cluster)."""


class RdsInstanceNotManaged(StepError):
    """The instance lacks the tag `cdcflow:managed=true` that lets cdcflow modify and reboot it."""


class DedicatedParameterGroupConflict(StepError):
    """A group named `cdcflow-<instance>` exists that cdcflow cannot use for this instance as it is."""


@dataclass(frozen=True)
class RdsParameterState:
    parameter_group: str  # the group attached to the instance after this call
    changed: bool  # this call created, modified or attached a parameter group
    reboot_required: bool  # the parameter is set but not yet in effect
    original_parameter_group: str | None = None  # the group the dedicated copy was copied from, if one is attached
    created: bool = False  # this call copied the dedicated group


@dataclass(frozen=True)
class InstanceState:
    status: str  # DBInstanceStatus: "available", "modifying", "rebooting", ...
    parameter_apply_status: str  # of the instance's parameter group: "in-sync", "pending-reboot", "applying"

    @property
    def ready(self) -> bool:
        """Available, with every parameter of its group in effect."""
        return self.status == "available" and self.parameter_apply_status == IN_SYNC


@dataclass(frozen=True)
class RestoreResult:
    reattached: str | None  # the original group this call attached again
    deleted: str | None  # the dedicated group this call deleted
    left_alone: str | None = None  # why nothing was undone, when a dedicated group exists but is not this pipeline's


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _tags(tag_list: list[dict] | None) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tag_list or []}


def _describe_instance(instance_id: str) -> dict:
    try:
        instances = aws.client("rds").describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"]
    except ClientError as exc:
        if _code(exc) == "DBInstanceNotFound":
            raise InstanceNotFound(f"RDS instance {instance_id!r} does not exist") from None
        raise
    return instances[0]


def _require_managed(instance_id: str, instance: dict) -> None:
    """Refuse an instance the platform did not tag for cdcflow, before anything changes."""
    if _tags(instance.get("TagList")).get(MANAGED_TAG) != MANAGED_VALUE:
        raise RdsInstanceNotManaged(
            f"RDS instance {instance_id!r} is not tagged {MANAGED_TAG}={MANAGED_VALUE}: cdcflow modifies and reboots "
            f"only instances the platform tagged so (aws rds add-tags-to-resource --resource-name "
            f"{instance.get('DBInstanceArn', instance_id)} --tags Key={MANAGED_TAG},Value={MANAGED_VALUE})"
        )


def instance_state(instance_id: str) -> InstanceState:
    """The instance's status and its parameter group's apply status. Read-only."""
    instance = _describe_instance(instance_id)
    group = instance["DBParameterGroups"][0]
    return InstanceState(status=instance["DBInstanceStatus"], parameter_apply_status=group["ParameterApplyStatus"])


def dedicated_group_name(instance_id: str) -> str:
    """`cdcflow-<instance>`, within RDS's rules (letters, digits, single hyphens, at most 255 characters)."""
    name = f"{MANAGED_GROUP_PREFIX}-{instance_id}".lower()
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


def _dedicated_group_tags(group_name: str) -> dict[str, str] | None:
    """The tags of group `group_name`; None if it does not exist."""
    client = aws.client("rds")
    try:
        groups = client.describe_db_parameter_groups(DBParameterGroupName=group_name)["DBParameterGroups"]
    except ClientError as exc:
        if _code(exc) == "DBParameterGroupNotFound":
            return None
        raise
    if not groups:
        return None
    return _tags(client.list_tags_for_resource(ResourceName=groups[0]["DBParameterGroupArn"]).get("TagList"))


def _is_dedicated_to(tags: dict[str, str], instance_id: str) -> bool:
    return tags.get(MANAGED_TAG) == MANAGED_VALUE and tags.get(INSTANCE_TAG) == instance_id


def _set_logical_replication(group_name: str) -> None:
    """Only ever called on a group cdcflow created (IAM: `rds:pg-tag/cdcflow:managed`)."""
    aws.client("rds").modify_db_parameter_group(
        DBParameterGroupName=group_name,
        Parameters=[{
            "ParameterName": LOGICAL_REPLICATION_PARAMETER,
            "ParameterValue": "1",
            "ApplyMethod": "pending-reboot",
        }],
    )


def _copy_group(source: str, target: str, instance_id: str, pipeline_id: str) -> bool:
    """Copy `source` to `target`, tagged as cdcflow's. True if this call made the copy."""
    tags = {MANAGED_TAG: MANAGED_VALUE, INSTANCE_TAG: instance_id, COPIED_FROM_TAG: source, PIPELINE_TAG: pipeline_id}
    try:
        aws.client("rds").copy_db_parameter_group(
            SourceDBParameterGroupIdentifier=source,
            TargetDBParameterGroupIdentifier=target,
            TargetDBParameterGroupDescription=f"cdcflow: {source} with logical replication, for {instance_id} only",
            Tags=[{"Key": key, "Value": value} for key, value in sorted(tags.items())],
        )
    except ClientError as exc:
        if _code(exc) != "DBParameterGroupAlreadyExists":
            raise
        return False  # a concurrent run copied it; the caller checks its tags
    return True


def _attach(instance_id: str, group_name: str) -> None:
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


def ensure_logical_replication_parameter(instance_id: str, pipeline_id: str) -> RdsParameterState:
    """Make `rds.logical_replication=1` the instance's setting, in a group dedicated to it; say whether to reboot.

    Never modifies a group the instance did not get from cdcflow. Idempotent:
    once the parameter is set in the attached group and in sync, returns
    `changed=False, reboot_required=False` and changes nothing; a re-run after
    a lost answer reuses the copy it made. `pipeline_id` is recorded on a copy
    this call makes, so only that pipeline's rollback removes it. Raises
    `InstanceNotFound`, `RdsEngineUnsupported` (Aurora, non-PostgreSQL),
    `RdsInstanceNotManaged` (no `cdcflow:managed=true` tag),
    `DedicatedParameterGroupConflict` (a `cdcflow-<instance>` group that is
    not cdcflow's for this instance, or was copied from another group), or
    `AwsApiThrottled` while the instance is too busy to be modified.
    """
    instance = _describe_instance(instance_id)
    engine, cluster = instance.get("Engine", "unknown"), instance.get("DBClusterIdentifier")
    if cluster or engine != "postgres":
        where = f" in cluster {cluster!r}" if cluster else ""
        raise RdsEngineUnsupported(
            f"RDS instance {instance_id!r} runs {engine}{where}; cdcflow configures RDS for PostgreSQL instances only"
        )
    _require_managed(instance_id, instance)
    attached = instance["DBParameterGroups"][0]
    group_name, apply_status = attached["DBParameterGroupName"], attached["ParameterApplyStatus"]
    dedicated = dedicated_group_name(instance_id)

    if group_name == dedicated:
        tags = _dedicated_group_tags(dedicated) or {}
        if not _is_dedicated_to(tags, instance_id):
            raise DedicatedParameterGroupConflict(
                f"RDS instance {instance_id!r} uses parameter group {dedicated!r}, which is not tagged "
                f"{MANAGED_TAG}={MANAGED_VALUE} and {INSTANCE_TAG}={instance_id}; cdcflow does not modify a group "
                "it did not create"
            )
        changed = _parameter_value(dedicated, LOGICAL_REPLICATION_PARAMETER) != "1"
        if changed:
            _set_logical_replication(dedicated)
        return RdsParameterState(parameter_group=dedicated, changed=changed,
                                 reboot_required=changed or apply_status != IN_SYNC,
                                 original_parameter_group=tags.get(COPIED_FROM_TAG))

    if _parameter_value(group_name, LOGICAL_REPLICATION_PARAMETER) == "1":
        # The instance's own group already turns it on: nothing of it needs to change.
        return RdsParameterState(parameter_group=group_name, changed=False, reboot_required=apply_status != IN_SYNC)

    created = _copy_group(group_name, dedicated, instance_id, pipeline_id)
    tags = {} if created else (_dedicated_group_tags(dedicated) or {})
    if not created and not (_is_dedicated_to(tags, instance_id) and tags.get(COPIED_FROM_TAG) == group_name):
        raise DedicatedParameterGroupConflict(
            f"parameter group {dedicated!r} exists but is not cdcflow's copy of {group_name!r} for RDS instance "
            f"{instance_id!r} (tags {tags}); delete it or attach it yourself, then provision again"
        )
    if created or _parameter_value(dedicated, LOGICAL_REPLICATION_PARAMETER) != "1":
        _set_logical_replication(dedicated)
    _attach(instance_id, dedicated)
    return RdsParameterState(parameter_group=dedicated, changed=True, reboot_required=True,
                             original_parameter_group=group_name, created=created)


def restore_original_parameter_group(instance_id: str, pipeline_id: str) -> RestoreResult:
    """Undo `ensure_logical_replication_parameter` for `pipeline_id`: attach the original group, delete the copy.

    Acts only on a `cdcflow-<instance>` group that cdcflow created for this
    instance during this pipeline's provisioning (its tags say so); a copy
    another pipeline's provisioning made, or any other group, stays as it is.
    The original group takes effect at the instance's next reboot, which this
    does not start. Idempotent: with no such copy (never made, or already
    deleted) it changes nothing. Raises `RdsInstanceNotManaged` before
    changing an untagged instance, and `AwsApiThrottled` while the instance
    is busy or the copy is still being detached.
    """
    dedicated = dedicated_group_name(instance_id)
    tags = _dedicated_group_tags(dedicated)
    if tags is None or not _is_dedicated_to(tags, instance_id):
        return RestoreResult(reattached=None, deleted=None)
    if tags.get(PIPELINE_TAG) != pipeline_id:
        return RestoreResult(reattached=None, deleted=None,
                             left_alone=f"{dedicated} was created for pipeline {tags.get(PIPELINE_TAG)!r}")
    original = tags.get(COPIED_FROM_TAG)
    reattached = None
    try:
        instance = _describe_instance(instance_id)
    except InstanceNotFound:
        instance = None
    if instance is not None and instance["DBParameterGroups"][0]["DBParameterGroupName"] == dedicated:
        if not original:
            raise DedicatedParameterGroupConflict(
                f"parameter group {dedicated!r} does not record ({COPIED_FROM_TAG}) which group RDS instance "
                f"{instance_id!r} had before; attach that group yourself, then delete {dedicated!r}"
            )
        _require_managed(instance_id, instance)
        _attach(instance_id, original)
        reattached = original
    try:
        aws.client("rds").delete_db_parameter_group(DBParameterGroupName=dedicated)
    except ClientError as exc:
        if _code(exc) == "DBParameterGroupNotFound":
            return RestoreResult(reattached=reattached, deleted=None)
        if _code(exc) in _GROUP_IN_USE_CODES:
            raise AwsApiThrottled(
                f"parameter group {dedicated!r} is still being detached from RDS instance {instance_id!r}"
            ) from None
        raise
    return RestoreResult(reattached=reattached, deleted=dedicated)


def reboot_instance(instance_id: str) -> bool:
    """Reboot the instance so pending parameters take effect. True if this call started a reboot.

    Idempotent: an instance already rebooting is left alone (False). Raises
    `RdsInstanceNotManaged` for an instance without the `cdcflow:managed=true`
    tag, `AwsApiThrottled` while the instance is in a state that cannot reboot
    yet (modifying, backing up), `InstanceNotFound` if it does not exist. Does
    not wait: poll `instance_state` until `ready`.
    """
    instance = _describe_instance(instance_id)
    _require_managed(instance_id, instance)
    if instance["DBInstanceStatus"] == REBOOTING:
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
