"""RDS logical replication against moto: parameter groups, attachment, reboot, instance state.

moto applies parameter changes at once (its instances are always `in-sync`
and `available`); where a test needs RDS's in-between states
(`pending-reboot`, `rebooting`), it rewrites moto's parsed responses with a
botocore event hook on the shared client, leaving every call to moto.
"""

from __future__ import annotations

from collections.abc import Callable

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from lambdas import aws, rds
from lambdas.errors import AwsApiThrottled
from lambdas.rds import InstanceNotFound, RdsEngineUnsupported

pytestmark = pytest.mark.unit

INSTANCE = "shop-db"


@pytest.fixture
def rds_client(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_RDS", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    aws.reset_clients()
    with mock_aws():
        yield boto3.client("rds")
    aws.reset_clients()


def create_instance(client, instance_id: str = INSTANCE, engine: str = "postgres", **extra) -> None:
    client.create_db_instance(
        DBInstanceIdentifier=instance_id,
        Engine=engine,
        EngineVersion="16.3" if engine == "postgres" else "8.0.35",
        DBInstanceClass="db.t3.micro",
        MasterUsername="postgres",
        MasterUserPassword="not-a-real-password",
        AllocatedStorage=20,
        **extra,
    )


def attached_group(client, instance_id: str = INSTANCE) -> str:
    return client.describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"][0]["DBParameterGroups"][0][
        "DBParameterGroupName"
    ]


def parameter(client, group: str, name: str = "rds.logical_replication") -> dict | None:
    for page in client.get_paginator("describe_db_parameters").paginate(DBParameterGroupName=group):
        for candidate in page["Parameters"]:
            if candidate["ParameterName"] == name:
                return candidate
    return None


def rewrite_instances(change: Callable[[dict], None]) -> None:
    """Rewrite every DescribeDBInstances answer of the shared client with `change`."""

    def hook(parsed, **_):
        for instance in parsed.get("DBInstances", []):
            change(instance)

    aws.client("rds").meta.events.register("after-call.rds.DescribeDBInstances", hook)


def test_a_default_group_is_replaced_by_a_managed_copy(rds_client):
    create_instance(rds_client)
    assert attached_group(rds_client) == "default.postgres16"

    state = rds.ensure_logical_replication_parameter(INSTANCE)

    assert state == rds.RdsParameterState(parameter_group="cdcflow-shop-db-postgres16", changed=True, reboot_required=True)
    assert attached_group(rds_client) == "cdcflow-shop-db-postgres16"
    group = rds_client.describe_db_parameter_groups(DBParameterGroupName="cdcflow-shop-db-postgres16")["DBParameterGroups"][0]
    assert group["DBParameterGroupFamily"] == "postgres16"
    assert parameter(rds_client, "cdcflow-shop-db-postgres16") == {
        "ParameterName": "rds.logical_replication",
        "ParameterValue": "1",
        "ApplyMethod": "pending-reboot",
    }
    assert parameter(rds_client, "default.postgres16") is None


def test_once_set_and_in_sync_there_is_nothing_to_do(rds_client):
    create_instance(rds_client)
    rds.ensure_logical_replication_parameter(INSTANCE)
    again = rds.ensure_logical_replication_parameter(INSTANCE)
    assert again == rds.RdsParameterState(parameter_group="cdcflow-shop-db-postgres16", changed=False, reboot_required=False)


def test_set_but_not_yet_applied_asks_for_a_reboot_without_changing_anything(rds_client):
    create_instance(rds_client)
    rds.ensure_logical_replication_parameter(INSTANCE)
    rewrite_instances(lambda instance: instance["DBParameterGroups"][0].update(ParameterApplyStatus="pending-reboot"))

    state = rds.ensure_logical_replication_parameter(INSTANCE)

    assert (state.changed, state.reboot_required) == (False, True)
    assert rds.instance_state(INSTANCE) == rds.InstanceState(status="available", parameter_apply_status="pending-reboot")
    assert not rds.instance_state(INSTANCE).ready


def test_a_rerun_after_a_lost_response_reuses_the_managed_group(rds_client):
    create_instance(rds_client)
    rds_client.create_db_parameter_group(
        DBParameterGroupName="cdcflow-shop-db-postgres16", DBParameterGroupFamily="postgres16", Description="earlier run"
    )
    state = rds.ensure_logical_replication_parameter(INSTANCE)
    assert state.parameter_group == "cdcflow-shop-db-postgres16" and state.changed
    assert attached_group(rds_client) == "cdcflow-shop-db-postgres16"
    assert parameter(rds_client, "cdcflow-shop-db-postgres16")["ParameterValue"] == "1"


def test_a_custom_group_without_the_parameter_is_modified_in_place(rds_client):
    rds_client.create_db_parameter_group(
        DBParameterGroupName="team-postgres16", DBParameterGroupFamily="postgres16", Description="the team's own"
    )
    create_instance(rds_client, DBParameterGroupName="team-postgres16")

    state = rds.ensure_logical_replication_parameter(INSTANCE)

    assert state == rds.RdsParameterState(parameter_group="team-postgres16", changed=True, reboot_required=True)
    assert attached_group(rds_client) == "team-postgres16"
    assert parameter(rds_client, "team-postgres16")["ParameterValue"] == "1"


def test_a_missing_instance_is_named(rds_client):
    with pytest.raises(InstanceNotFound, match="'ghost'"):
        rds.ensure_logical_replication_parameter("ghost")
    with pytest.raises(InstanceNotFound, match="'ghost'"):
        rds.instance_state("ghost")
    with pytest.raises(InstanceNotFound, match="'ghost'"):
        rds.reboot_instance("ghost")


def test_other_engines_are_refused_before_anything_changes(rds_client):
    create_instance(rds_client, "shop-mysql", engine="mysql")
    groups_before = rds_client.describe_db_parameter_groups()["DBParameterGroups"]
    with pytest.raises(RdsEngineUnsupported, match="'shop-mysql' runs mysql"):
        rds.ensure_logical_replication_parameter("shop-mysql")
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
        rds.ensure_logical_replication_parameter(INSTANCE)


def test_reboot_starts_a_reboot_and_the_wait_loop_sees_it_end(rds_client):
    create_instance(rds_client)
    rds.ensure_logical_replication_parameter(INSTANCE)
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


def test_managed_group_names_follow_rds_rules():
    assert rds.managed_group_name("shop-db", "postgres16") == "cdcflow-shop-db-postgres16"
    assert rds.managed_group_name("Legacy--DB", "postgres9.6") == "cdcflow-legacy-db-postgres9-6"
