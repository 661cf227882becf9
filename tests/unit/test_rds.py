"""RDS logical replication against moto: the dedicated parameter group, its undo, the reboot, the managed tag.

moto applies parameter changes at once (its instances are always `in-sync`
and `available`) and evaluates no IAM; where a test needs RDS's in-between
states (`pending-reboot`, `rebooting`), it rewrites moto's parsed responses
with a botocore event hook on the shared client, leaving every call to moto.
"""

from __future__ import annotations

from collections.abc import Callable

import boto3
import pytest
from botocore.exceptions import ClientError

from lambdas import aws, rds
from lambdas.errors import AwsApiThrottled
from lambdas.rds import DedicatedParameterGroupConflict, InstanceNotFound, RdsEngineUnsupported, RdsInstanceNotManaged
from lambdas.spec import parse_spec
from lambdas.steps import logical_replication
from tests.unit.factories import raw_spec

pytestmark = pytest.mark.unit

INSTANCE = "shop-db"
DEDICATED = "cdcflow-shop-db"
PIPELINE = "orders"
MANAGED = [{"Key": "cdcflow:managed", "Value": "true"}]


@pytest.fixture
def rds_client(moto):
    return boto3.client("rds")


@pytest.fixture
def group_changes(rds_client) -> list[str]:
    """The name of every group ModifyDBParameterGroup is called on, through the client the code uses."""
    changed: list[str] = []
    aws.client("rds").meta.events.register(
        "before-parameter-build.rds.ModifyDBParameterGroup",
        lambda params, **_: changed.append(params["DBParameterGroupName"]),
    )
    return changed


def create_instance(client, instance_id: str = INSTANCE, engine: str = "postgres", tags=MANAGED, **extra) -> None:
    client.create_db_instance(
        DBInstanceIdentifier=instance_id,
        Engine=engine,
        EngineVersion="16.3" if engine == "postgres" else "8.0.35",
        DBInstanceClass="db.t3.micro",
        MasterUsername="postgres",
        MasterUserPassword="not-a-real-password",
        AllocatedStorage=20,
        Tags=list(tags),
        **extra,
    )


def create_custom_group(client, name: str = "team-postgres16", **parameters: str) -> None:
    client.create_db_parameter_group(DBParameterGroupName=name, DBParameterGroupFamily="postgres16",
                                     Description="the team's own")
    if parameters:
        client.modify_db_parameter_group(DBParameterGroupName=name, Parameters=[
            {"ParameterName": key, "ParameterValue": value, "ApplyMethod": "pending-reboot"}
            for key, value in parameters.items()])


def attached_group(client, instance_id: str = INSTANCE) -> str:
    return client.describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"][0]["DBParameterGroups"][0][
        "DBParameterGroupName"
    ]


def parameters(client, group: str) -> dict[str, str | None]:
    return {p["ParameterName"]: p.get("ParameterValue")
            for page in client.get_paginator("describe_db_parameters").paginate(DBParameterGroupName=group)
            for p in page["Parameters"]}


def group_names(client) -> set[str]:
    return {group["DBParameterGroupName"] for group in client.describe_db_parameter_groups()["DBParameterGroups"]}


def group_tags(client, group: str) -> dict[str, str]:
    [described] = client.describe_db_parameter_groups(DBParameterGroupName=group)["DBParameterGroups"]
    tags = client.list_tags_for_resource(ResourceName=described["DBParameterGroupArn"])["TagList"]
    return {tag["Key"]: tag["Value"] for tag in tags}


def rewrite_instances(change: Callable[[dict], None]) -> None:
    """Rewrite every DescribeDBInstances answer of the shared client with `change`."""

    def hook(parsed, **_):
        for instance in parsed.get("DBInstances", []):
            change(instance)

    aws.client("rds").meta.events.register("after-call.rds.DescribeDBInstances", hook)


# --- the dedicated group ---------------------------------------------------------------------------

def test_a_default_group_is_copied_into_a_group_dedicated_to_the_instance(rds_client, group_changes):
    create_instance(rds_client)
    assert attached_group(rds_client) == "default.postgres16"
    default_before = parameters(rds_client, "default.postgres16")

    state = rds.ensure_logical_replication_parameter(INSTANCE, PIPELINE)

    assert state == rds.RdsParameterState(parameter_group=DEDICATED, changed=True, reboot_required=True,
                                          original_parameter_group="default.postgres16", created=True)
    assert attached_group(rds_client) == DEDICATED
    [group] = rds_client.describe_db_parameter_groups(DBParameterGroupName=DEDICATED)["DBParameterGroups"]
    assert group["DBParameterGroupFamily"] == "postgres16"
    assert parameters(rds_client, DEDICATED)["rds.logical_replication"] == "1"
    assert group_tags(rds_client, DEDICATED) == {
        "cdcflow:managed": "true", "cdcflow:instance": INSTANCE, "cdcflow:copied-from": "default.postgres16",
        "cdcflow:pipeline": PIPELINE,
    }
    assert parameters(rds_client, "default.postgres16") == default_before
    assert group_changes == [DEDICATED]


def test_a_shared_custom_group_is_copied_and_never_changed(rds_client, group_changes):
    create_custom_group(rds_client, work_mem="65536")
    create_instance(rds_client, DBParameterGroupName="team-postgres16")
    create_instance(rds_client, "shop-db-2", DBParameterGroupName="team-postgres16")
    shared_before = parameters(rds_client, "team-postgres16")

    state = rds.ensure_logical_replication_parameter(INSTANCE, PIPELINE)

    assert (state.parameter_group, state.original_parameter_group, state.created) == (
        DEDICATED, "team-postgres16", True)
    # The other instance keeps the shared group, and the shared group keeps every parameter it had.
    assert attached_group(rds_client, "shop-db-2") == "team-postgres16"
    assert parameters(rds_client, "team-postgres16") == shared_before
    assert "rds.logical_replication" not in parameters(rds_client, "team-postgres16")
    # The copy carries the custom group's own settings besides the one cdcflow sets.
    copied = parameters(rds_client, DEDICATED)
    assert (copied["work_mem"], copied["rds.logical_replication"]) == ("65536", "1")
    assert group_tags(rds_client, DEDICATED)["cdcflow:copied-from"] == "team-postgres16"
    assert group_changes == [DEDICATED]


def test_a_group_that_already_turns_it_on_needs_no_copy(rds_client, group_changes):
    create_custom_group(rds_client, **{"rds.logical_replication": "1"})
    create_instance(rds_client, DBParameterGroupName="team-postgres16")

    state = rds.ensure_logical_replication_parameter(INSTANCE, PIPELINE)

    assert state == rds.RdsParameterState(parameter_group="team-postgres16", changed=False, reboot_required=False)
    assert DEDICATED not in group_names(rds_client)
    assert group_changes == []


def test_once_set_and_in_sync_there_is_nothing_to_do(rds_client, group_changes):
    create_instance(rds_client)
    rds.ensure_logical_replication_parameter(INSTANCE, PIPELINE)
    again = rds.ensure_logical_replication_parameter(INSTANCE, PIPELINE)
    assert again == rds.RdsParameterState(parameter_group=DEDICATED, changed=False, reboot_required=False,
                                          original_parameter_group="default.postgres16")
    assert group_changes == [DEDICATED]


def test_set_but_not_yet_applied_asks_for_a_reboot_without_changing_anything(rds_client):
    create_instance(rds_client)
    rds.ensure_logical_replication_parameter(INSTANCE, PIPELINE)
    rewrite_instances(lambda instance: instance["DBParameterGroups"][0].update(ParameterApplyStatus="pending-reboot"))

    state = rds.ensure_logical_replication_parameter(INSTANCE, PIPELINE)

    assert (state.changed, state.reboot_required) == (False, True)
    assert rds.instance_state(INSTANCE) == rds.InstanceState(status="available",
                                                             parameter_apply_status="pending-reboot")
    assert not rds.instance_state(INSTANCE).ready


def test_a_rerun_after_a_lost_answer_reuses_the_copy_it_made(rds_client):
    create_instance(rds_client)
    # The earlier run copied and tagged the group, then died before attaching it.
    rds_client.copy_db_parameter_group(
        SourceDBParameterGroupIdentifier="default.postgres16", TargetDBParameterGroupIdentifier=DEDICATED,
        TargetDBParameterGroupDescription="earlier run",
        Tags=[*MANAGED, {"Key": "cdcflow:instance", "Value": INSTANCE},
              {"Key": "cdcflow:copied-from", "Value": "default.postgres16"},
              {"Key": "cdcflow:pipeline", "Value": PIPELINE}],
    )

    state = rds.ensure_logical_replication_parameter(INSTANCE, PIPELINE)

    assert (state.parameter_group, state.changed, state.created) == (DEDICATED, True, False)
    assert attached_group(rds_client) == DEDICATED
    assert parameters(rds_client, DEDICATED)["rds.logical_replication"] == "1"


def test_a_group_of_that_name_cdcflow_did_not_make_is_neither_used_nor_changed(rds_client, group_changes):
    create_instance(rds_client)
    create_custom_group(rds_client, DEDICATED)

    with pytest.raises(DedicatedParameterGroupConflict, match=f"'{DEDICATED}' exists but is not cdcflow's copy"):
        rds.ensure_logical_replication_parameter(INSTANCE, PIPELINE)

    assert attached_group(rds_client) == "default.postgres16"
    assert group_changes == []


# --- the managed tag -----------------------------------------------------------------------------

def test_an_instance_without_the_managed_tag_is_refused_before_anything_changes(rds_client):
    create_instance(rds_client, tags=[{"Key": "team", "Value": "orders"}])
    groups_before = group_names(rds_client)

    with pytest.raises(RdsInstanceNotManaged, match=r"'shop-db' is not tagged cdcflow:managed=true") as refused:
        rds.ensure_logical_replication_parameter(INSTANCE, PIPELINE)
    assert "add-tags-to-resource" in str(refused.value)
    with pytest.raises(RdsInstanceNotManaged, match="'shop-db'"):
        rds.reboot_instance(INSTANCE)

    assert group_names(rds_client) == groups_before
    assert attached_group(rds_client) == "default.postgres16"


def test_a_managed_tag_with_another_value_is_no_managed_tag(rds_client):
    create_instance(rds_client, tags=[{"Key": "cdcflow:managed", "Value": "false"}])
    with pytest.raises(RdsInstanceNotManaged):
        rds.ensure_logical_replication_parameter(INSTANCE, PIPELINE)


# --- the compensation ------------------------------------------------------------------------------

def test_restore_attaches_the_original_group_again_and_deletes_the_copy(rds_client):
    create_custom_group(rds_client, work_mem="65536")
    create_instance(rds_client, DBParameterGroupName="team-postgres16")
    rds.ensure_logical_replication_parameter(INSTANCE, PIPELINE)

    result = rds.restore_original_parameter_group(INSTANCE, PIPELINE)

    assert result == rds.RestoreResult(reattached="team-postgres16", deleted=DEDICATED)
    assert attached_group(rds_client) == "team-postgres16"
    assert DEDICATED not in group_names(rds_client)
    assert parameters(rds_client, "team-postgres16") == {"work_mem": "65536"}
    # Twice: nothing left to undo.
    assert rds.restore_original_parameter_group(INSTANCE, PIPELINE) == rds.RestoreResult(reattached=None, deleted=None)


def test_restore_leaves_a_copy_another_pipeline_made(rds_client):
    create_instance(rds_client)
    rds.ensure_logical_replication_parameter(INSTANCE, "payments")
    # A second pipeline on the same instance found the copy in place and changed nothing.
    assert rds.ensure_logical_replication_parameter(INSTANCE, PIPELINE).created is False

    result = rds.restore_original_parameter_group(INSTANCE, PIPELINE)

    assert result.reattached is None and result.deleted is None
    assert "'payments'" in result.left_alone
    assert attached_group(rds_client) == DEDICATED


def test_restore_without_a_copy_changes_nothing(rds_client):
    create_custom_group(rds_client, **{"rds.logical_replication": "1"})
    create_instance(rds_client, DBParameterGroupName="team-postgres16")
    rds.ensure_logical_replication_parameter(INSTANCE, PIPELINE)  # nothing to copy
    assert rds.restore_original_parameter_group(INSTANCE, PIPELINE) == rds.RestoreResult(reattached=None, deleted=None)
    assert rds.restore_original_parameter_group("never-made", PIPELINE) == rds.RestoreResult(reattached=None,
                                                                                            deleted=None)
    assert attached_group(rds_client) == "team-postgres16"


def test_restore_of_a_busy_instance_is_retried_later_and_keeps_the_copy(rds_client):
    create_instance(rds_client)
    rds.ensure_logical_replication_parameter(INSTANCE, PIPELINE)

    def busy(**_):
        raise ClientError({"Error": {"Code": "InvalidDBInstanceState", "Message": "not available"}},
                          "ModifyDBInstance")

    aws.client("rds").meta.events.register("before-call.rds.ModifyDBInstance", busy)
    with pytest.raises(AwsApiThrottled, match="busy"):
        rds.restore_original_parameter_group(INSTANCE, PIPELINE)
    assert DEDICATED in group_names(rds_client)
    assert attached_group(rds_client) == DEDICATED


# --- instance state, reboot, refusals --------------------------------------------------------------

def test_a_missing_instance_is_named(rds_client):
    with pytest.raises(InstanceNotFound, match="'ghost'"):
        rds.ensure_logical_replication_parameter("ghost", PIPELINE)
    with pytest.raises(InstanceNotFound, match="'ghost'"):
        rds.instance_state("ghost")
    with pytest.raises(InstanceNotFound, match="'ghost'"):
        rds.reboot_instance("ghost")


def test_other_engines_are_refused_before_anything_changes(rds_client):
    create_instance(rds_client, "shop-mysql", engine="mysql")
    groups_before = rds_client.describe_db_parameter_groups()["DBParameterGroups"]
    with pytest.raises(RdsEngineUnsupported, match="'shop-mysql' runs mysql"):
        rds.ensure_logical_replication_parameter("shop-mysql", PIPELINE)
    assert rds_client.describe_db_parameter_groups()["DBParameterGroups"] == groups_before


def test_a_busy_instance_is_retried_later(rds_client):
    create_instance(rds_client)

    def busy(params, **_):
        raise ClientError(
            {"Error": {"Code": "InvalidDBInstanceState", "Message": "Database instance is not in available state."}},
            "ModifyDBInstance",
        )

    aws.client("rds").meta.events.register("before-call.rds.ModifyDBInstance", busy)
    with pytest.raises(AwsApiThrottled, match="busy"):
        rds.ensure_logical_replication_parameter(INSTANCE, PIPELINE)


def test_reboot_starts_a_reboot_and_the_wait_loop_sees_it_end(rds_client):
    create_instance(rds_client)
    rds.ensure_logical_replication_parameter(INSTANCE, PIPELINE)
    assert rds.reboot_instance(INSTANCE) is True
    state = rds.instance_state(INSTANCE)
    assert state == rds.InstanceState(status="available", parameter_apply_status="in-sync")
    assert state.ready


def test_reboot_of_an_instance_already_rebooting_is_a_no_op(rds_client):
    create_instance(rds_client)
    reboots: list = []
    aws.client("rds").meta.events.register("before-call.rds.RebootDBInstance", lambda **_: reboots.append(1))
    rewrite_instances(lambda instance: instance.update(DBInstanceStatus="rebooting"))

    assert rds.reboot_instance(INSTANCE) is False
    assert reboots == []


def test_dedicated_group_names_follow_rds_rules():
    assert rds.dedicated_group_name("shop-db") == "cdcflow-shop-db"
    assert rds.dedicated_group_name("Legacy--DB") == "cdcflow-legacy-db"


# --- the steps, as the workflow invokes them -----------------------------------------------------

def step_event(state_name: str) -> dict:
    spec = raw_spec(PIPELINE)
    spec["source"]["rds_instance_id"] = INSTANCE
    return {"spec": spec, "execution_id": "arn:aws:states:us-east-1:000000000000:execution:ProvisionPipeline:orders",
            "state_name": state_name}


def test_the_rollback_step_undoes_what_the_forward_step_did(rds_client, registry_table, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_IDEMPOTENCY_DISABLED", "1")
    create_custom_group(rds_client)
    create_instance(rds_client, DBParameterGroupName="team-postgres16")

    ensured = logical_replication.ensure_handler(step_event("EnsureLogicalReplication"), None)
    assert ensured == {"rds_instance_id": INSTANCE, "parameter_group": DEDICATED,
                       "original_parameter_group": "team-postgres16", "created_parameter_group": True,
                       "changed": True, "reboot_required": True}

    restored = logical_replication.restore_handler(step_event("RestoreParameterGroup"), None)
    assert restored == {"rds_instance_id": INSTANCE, "restored": True,
                        "reattached_parameter_group": "team-postgres16", "deleted_parameter_group": DEDICATED,
                        "left_alone": None}
    assert attached_group(rds_client) == "team-postgres16"
    assert DEDICATED not in group_names(rds_client)


def test_the_rollback_step_of_a_self_managed_source_does_nothing(registry_table, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_IDEMPOTENCY_DISABLED", "1")
    event = {"spec": raw_spec(PIPELINE), "execution_id": "arn:aws:states:us-east-1:000000000000:execution:P:o",
             "state_name": "RestoreParameterGroup"}
    assert logical_replication.restore_handler(event, None) == {"restored": False}


def test_a_spec_that_does_not_say_reboots_only_after_an_approval():
    document = step_event("ValidateSpec")["spec"]
    assert "approval_required" not in document["source"]
    assert parse_spec(document).source.approval_required is True
    assert parse_spec(document).to_dict()["source"]["approval_required"] is True
