"""Every API route × every kind of caller, over signed HTTP against the real local stack.

The local API verifies SigV4 signatures against the local users that
`cdcflow local up` created and runs the same authorization code as on AWS.
Team orders owns an ACTIVE pipeline and one waiting for an RDS reboot
approval; each route is called by the owning team's requester and approver,
the other team's requester and approver, the admin, an unsigned request and
a wrongly signed one. Only the allowed callers succeed; every denied call is
a 403 naming the reason and changes nothing: the registry, the executions,
the replication slots and the connectors are counted before and after.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import psycopg
import pytest
import requests

from cdcflow.api_client import ExecuteApiAuth
from cdcflow.local import connections as local_connections
from cdcflow.local.config import AWS_REGION, Endpoints
from cdcflow.local.credentials import ADMIN_PROFILE, read_credentials
from cdcflow.local.workflows import REGISTRY_TABLE
from lambdas import registry
from tests.provision import api_auth

pytestmark = pytest.mark.slow

RUN = uuid.uuid4().hex[:6]
ORDERS_REQUESTER, ORDERS_APPROVER = "cdcflow-orders-requester", "cdcflow-orders-approver"
PAYMENTS_REQUESTER, PAYMENTS_APPROVER = "cdcflow-payments-requester", "cdcflow-payments-approver"
ADMIN, UNSIGNED, WRONG_SIGNATURE = ADMIN_PROFILE, "unsigned", "wrong-signature"
CALLERS = (ORDERS_REQUESTER, ORDERS_APPROVER, PAYMENTS_REQUESTER, PAYMENTS_APPROVER, ADMIN, UNSIGNED,
           WRONG_SIGNATURE)
ACTIVE_ID, WAITING_ID = f"authz_{RUN}", f"authz_{RUN}_rds"


def auth_for(stack: Endpoints, caller: str) -> Any:
    if caller == UNSIGNED:
        return None
    if caller == WRONG_SIGNATURE:
        assert stack.api.credentials_file is not None
        admin = read_credentials(stack.api.credentials_file)[ADMIN]
        forged = boto3.Session(aws_access_key_id=admin.access_key_id, aws_secret_access_key="not-the-secret",
                               region_name=AWS_REGION)
        return ExecuteApiAuth(forged)
    return api_auth(stack, caller)


def call(stack: Endpoints, caller: str, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(method, stack.api.url + path, json=body, auth=auth_for(stack, caller), timeout=30)


def request_for(pipeline_id: str, source: str, table: str) -> dict[str, Any]:
    return {"pipeline_id": pipeline_id, "owner": "team-orders",
            "source": {"connection": source, "tables": [table]},
            "cluster": local_connections.CLUSTER, "sink": {"connection": local_connections.WAREHOUSE}}


def wait_for(stack: Endpoints, pipeline_id: str, done: Any, within: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        pipeline = call(stack, ADMIN, "GET", f"/pipelines/{pipeline_id}").json()
        if done(pipeline):
            return pipeline
        time.sleep(0.5)
    raise AssertionError(f"{pipeline_id} never got there: {pipeline}")


def local_client(service: str, endpoint_url: str) -> Any:
    """A boto3 client of a local service, which takes any credentials."""
    return boto3.client(service, endpoint_url=endpoint_url, region_name=AWS_REGION,
                        aws_access_key_id="local", aws_secret_access_key="local")


def counts(stack: Endpoints) -> dict[str, Any]:
    """What a denied request must not change."""
    dynamodb = local_client("dynamodb", stack.dynamodb.url)
    items = dynamodb.scan(TableName=REGISTRY_TABLE, ConsistentRead=True)["Items"]
    sfn = local_client("stepfunctions", stack.engine.url)
    pages = sfn.get_paginator("list_executions")
    executions = sum(len(page["executions"]) for machine in sfn.list_state_machines()["stateMachines"]
                     for page in pages.paginate(stateMachineArn=machine["stateMachineArn"]))
    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        slots = conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0]
    connectors = sorted(requests.get(f"{stack.connect.url}/connectors", timeout=30).json())
    connections = dynamodb.scan(TableName="cdcflow-connections", ConsistentRead=True)["Count"]
    # Not the version: the local reconcile schedule records each pipeline's health every minute.
    return {"registry": sorted((item["pipeline_id"]["S"], item["status"]["S"], item["execution_arn"]["S"],
                                item["spec_fingerprint"]["S"], registry.TASK_TOKEN_ATTRIBUTE in item) for item in items),
            "executions": executions, "slots": slots, "connectors": connectors, "connections": connections}


@pytest.fixture(scope="module")
def stack(local_stack: Endpoints, captured_table: str) -> Iterator[Endpoints]:
    """An ACTIVE pipeline of team orders and one waiting for its reboot approval, both requested by its requester."""
    rds_source = f"authz-rds-{RUN}"
    instance = f"authz-{RUN}"
    local_client("rds", local_stack.aws.url).create_db_instance(
        DBInstanceIdentifier=instance, Engine="postgres", EngineVersion="15.4", DBInstanceClass="db.t3.micro",
        AllocatedStorage=20, MasterUsername="postgres", MasterUserPassword="not-used-by-cdcflow",
        Tags=[{"Key": "cdcflow:managed", "Value": "true"}])  # what the platform sets on instances cdcflow may manage
    pg = local_stack.postgres
    registered = call(local_stack, ADMIN, "POST", "/connections", {
        "name": rds_source, "kind": "source", "host": pg.host, "port": pg.port, "database": pg.source_database,
        "admin_secret": local_stack.aws.source_admin_secret, "rds_instance_id": instance, "teams": ["team-orders"]})
    assert registered.status_code == 200, registered.text

    for pipeline_id, source in ((ACTIVE_ID, local_connections.SOURCE), (WAITING_ID, rds_source)):
        started = call(local_stack, ORDERS_REQUESTER, "POST", "/pipelines",
                       request_for(pipeline_id, source, captured_table))
        assert started.status_code == 202, started.text
    # ACTIVE, and released by its provisioning once the backfill is done (lifecycle requests wait for that).
    wait_for(local_stack, ACTIVE_ID, lambda p: p["status"] == "ACTIVE" and not p.get("lifecycle_execution_arn"))
    wait_for(local_stack, WAITING_ID, lambda p: p["current_step"] == "RequestApproval")
    try:
        yield local_stack
    finally:
        for pipeline_id in (ACTIVE_ID, WAITING_ID):
            call(local_stack, ADMIN, "POST", f"/pipelines/{pipeline_id}/approval", {"approved": False})
            wait_for(local_stack, pipeline_id, lambda p: p["status"] in ("ACTIVE", "FAILED", "DELETED"))
            call(local_stack, ADMIN, "DELETE", f"/pipelines/{pipeline_id}")
        for pipeline_id in (ACTIVE_ID, WAITING_ID):
            wait_for(local_stack, pipeline_id, lambda p: p["status"] in ("DELETED", "FAILED"))
        call(local_stack, ADMIN, "DELETE", f"/connections/{rds_source}")


READERS = {ORDERS_REQUESTER, ORDERS_APPROVER, PAYMENTS_REQUESTER, PAYMENTS_APPROVER, ADMIN}


def _routes(captured_table: str) -> dict[str, tuple[str, str, Any, set[str], bool]]:
    """route -> (method, path, body, allowed callers, whether an allowed call changes something)."""
    return {
        "list pipelines": ("GET", "/pipelines", None, READERS, False),
        "describe": ("GET", f"/pipelines/{ACTIVE_ID}", None, {ORDERS_REQUESTER, ORDERS_APPROVER, ADMIN}, False),
        # The same spec again: allowed callers get the execution already started, and nothing new.
        "provision": ("POST", "/pipelines", request_for(ACTIVE_ID, local_connections.SOURCE, captured_table),
                      {ORDERS_REQUESTER, ADMIN}, False),
        "list connections": ("GET", "/connections", None, READERS, False),
        "describe connection": ("GET", f"/connections/{local_connections.SOURCE}", None, READERS, False),
        "register connection": ("POST", "/connections", {
            "name": local_connections.CLUSTER, "kind": "cluster",
            "bootstrap_servers": "collector.example.com:9092", "connect_url": "http://collector.example.com:8083",
            "teams": ["*"]}, {ADMIN}, True),
        "remove connection": ("DELETE", f"/connections/{local_connections.SOURCE}", None, {ADMIN}, True),
        "approve": ("POST", f"/pipelines/{WAITING_ID}/approval", {"approved": True}, {ORDERS_APPROVER, ADMIN}, True),
        "teardown": ("DELETE", f"/pipelines/{ACTIVE_ID}", None, {ORDERS_REQUESTER, ADMIN}, True),
    }


@pytest.mark.parametrize("caller", CALLERS)
def test_each_route_lets_in_only_its_callers_and_a_denial_changes_nothing(stack, captured_table, caller):
    for route, (method, path, body, allowed, changes) in _routes(captured_table).items():
        if caller in allowed and changes:
            continue  # allowed and changing: the tests below make those calls once, in order
        before = counts(stack)
        response = call(stack, caller, method, path, body)
        if caller in allowed:
            assert response.status_code in (200, 202), (route, response.text)
        else:
            assert response.status_code == 403, (route, caller, response.status_code, response.text)
            assert response.json()["message"], route
            assert counts(stack) == before, (route, caller)
        if route == "list pipelines" and response.status_code == 200:
            listed = {pipeline["pipeline_id"] for pipeline in response.json()["pipelines"]}
            assert (ACTIVE_ID in listed) == (caller in (ORDERS_REQUESTER, ORDERS_APPROVER, ADMIN)), caller


@pytest.mark.parametrize(("caller", "reason"), [
    (UNSIGNED, "Missing Authentication Token"),
    (WRONG_SIGNATURE, "signature we calculated does not match"),
    (PAYMENTS_REQUESTER, "is not a member of team 'team-orders'"),
    (ORDERS_APPROVER, "lacks the requester role"),
])
def test_a_denied_teardown_names_what_is_missing(stack, caller, reason):
    response = call(stack, caller, "DELETE", f"/pipelines/{ACTIVE_ID}")

    assert response.status_code == 403 and reason in response.json()["message"]


def test_the_approval_goes_only_to_an_approver_of_the_team_never_the_requester(stack):
    before = counts(stack)
    for caller, reason in ((ORDERS_REQUESTER, "may not approve its own reboot"),
                           (PAYMENTS_APPROVER, "is not an approver for source connection"),
                           (PAYMENTS_REQUESTER, "lacks the approver role")):
        response = call(stack, caller, "POST", f"/pipelines/{WAITING_ID}/approval", {"approved": True})
        assert response.status_code == 403 and reason in response.json()["message"], (caller, response.text)
    assert counts(stack) == before

    # The team's approver answers (a rejection: past the reboot, moto's RDS has no real database behind it).
    answered = call(stack, ORDERS_APPROVER, "POST", f"/pipelines/{WAITING_ID}/approval", {"approved": False})
    assert answered.status_code == 202, answered.text
    failed = wait_for(stack, WAITING_ID, lambda p: p["status"] == "FAILED")
    assert failed["last_error"]["error"] == "ApprovalRejected"


def test_a_team_may_not_name_a_connection_reserved_to_another(stack, captured_table):
    reserved = f"authz-payments-{RUN}"
    pg = stack.postgres
    assert call(stack, ADMIN, "POST", "/connections", {
        "name": reserved, "kind": "source", "host": pg.host, "port": pg.port, "database": pg.source_database,
        "admin_secret": stack.aws.source_admin_secret, "teams": ["team-payments"]}).status_code == 200
    try:
        before = counts(stack)
        response = call(stack, ORDERS_REQUESTER, "POST", "/pipelines",
                        request_for(f"authz_{RUN}_x", reserved, captured_table))

        assert response.status_code == 403
        assert response.json() == {"message": f"team 'team-orders' may not use source connection {reserved!r}",
                                   "field": "source.connection"}
        assert counts(stack) == before
    finally:
        assert call(stack, ADMIN, "DELETE", f"/connections/{reserved}").status_code == 200


def test_the_owning_requester_tears_down_and_the_pipeline_leaves_nothing(stack):
    response = call(stack, ORDERS_REQUESTER, "DELETE", f"/pipelines/{ACTIVE_ID}")

    assert response.status_code == 202, response.text
    assert wait_for(stack, ACTIVE_ID, lambda p: p["status"] == "DELETED")["status"] == "DELETED"
