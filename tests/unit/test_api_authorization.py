"""Who may call which route: every route × every kind of caller, in-process against moto.

A denied request is a 403 naming what is missing and changes nothing: the
registry entry, the executions started and the pending approval's task
token are compared before and after. (tests/e2e/test_authorization_stack.py
runs the same matrix over signed HTTP against the local stack.)
"""

import json
import os

import boto3
import pytest

from cdcflow.api_server import LocalLambdaContext, to_proxy_event
from lambdas import api, connections, pipeline_request, registry
from lambdas.spec import schema as resolved_schema
from tests.unit.factories import CONNECTIONS, create_state_machine, principal_arn, request_spec, resolved_spec

OWNING_REQUESTER = "payments-requester"
OWNING_APPROVER = "payments-approver"
OTHER_TEAM = "analytics-requester"
OTHER_APPROVER = "analytics-approver"
ADMIN = "platform-admin"
UNREGISTERED = "intruder"
UNSIGNED = None
CALLERS = (OWNING_REQUESTER, OWNING_APPROVER, OTHER_TEAM, OTHER_APPROVER, ADMIN, UNREGISTERED, UNSIGNED)


@pytest.fixture
def backend(tenancy, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "1")
    sfn = boto3.client("stepfunctions")
    for variable, name in ((api.PROVISION_STATE_MACHINE_ARN, "ProvisionPipeline"),
                           (api.TEARDOWN_STATE_MACHINE_ARN, "TeardownPipeline"),
                           (api.PAUSE_STATE_MACHINE_ARN, "PausePipeline"),
                           (api.RESUME_STATE_MACHINE_ARN, "ResumePipeline")):
        monkeypatch.setenv(variable, create_state_machine(sfn, name))
    return sfn


def call(method: str, target: str, body: object = None, *, caller: str | None) -> tuple[int, dict]:
    raw = json.dumps(body).encode() if body is not None else b""
    event = to_proxy_event(method, target, [("Content-Type", "application/json")], raw)
    if caller is not None:
        event["requestContext"]["identity"]["userArn"] = principal_arn(caller)
    response = api.handler(event, LocalLambdaContext(aws_request_id=event["requestContext"]["requestId"]))
    return response["statusCode"], json.loads(response["body"])


def executions(sfn) -> int:
    return sum(len(sfn.list_executions(stateMachineArn=os.environ[variable])["executions"])
               for variable in (api.PROVISION_STATE_MACHINE_ARN, api.TEARDOWN_STATE_MACHINE_ARN,
                                api.PAUSE_STATE_MACHINE_ARN, api.RESUME_STATE_MACHINE_ARN))


def payments_pipeline(status: str = "ACTIVE", requested_by: str = OWNING_REQUESTER) -> None:
    """An ACTIVE pipeline of team payments, requested by `requested_by`, waiting for a reboot approval."""
    execution = "arn:aws:states:us-east-1:123456789012:execution:ProvisionPipeline:orders-1"
    registry.register(resolved_spec(request_spec(owner="payments")), execution, requested_by=principal_arn(requested_by))
    registry.mark("orders", status)
    registry.store_task_token("orders", "token-1")


def snapshot(sfn) -> tuple:
    """The pipeline's whole registry item (task token included), executions started, connections registered."""
    item = boto3.client("dynamodb").get_item(TableName=registry.table_name(), Key={"pipeline_id": {"S": "orders"}},
                                             ConsistentRead=True).get("Item")
    return item, executions(sfn), [c.document for c in connections.list_connections()]


ROUTES = {
    "provision": ("POST", "/pipelines", request_spec(owner="payments"), {OWNING_REQUESTER, ADMIN}),
    "describe": ("GET", "/pipelines/orders", None, {OWNING_REQUESTER, OWNING_APPROVER, ADMIN}),
    "teardown": ("DELETE", "/pipelines/orders", None, {OWNING_REQUESTER, ADMIN}),
    "approve": ("POST", "/pipelines/orders/approval", {"approved": True}, {OWNING_APPROVER, ADMIN}),
    # Resume needs a PAUSED pipeline: tests/unit/test_api_lifecycle.py runs its callers.
    "pause": ("POST", "/pipelines/orders/pause", None, {OWNING_REQUESTER, ADMIN}),
    "register connection": ("POST", "/connections", {"name": "new-db", "kind": "source", "host": "h", "port": 5432,
                                                     "database": "d", "admin_secret": "s", "teams": ["payments"]},
                            {ADMIN}),
    "remove connection": ("DELETE", "/connections/search", None, {ADMIN}),
    "describe connection": ("GET", "/connections/payments-db", None, {OWNING_REQUESTER, OWNING_APPROVER, ADMIN}),
}


@pytest.mark.parametrize("caller", CALLERS, ids=lambda caller: caller or "unsigned")
@pytest.mark.parametrize("route", ROUTES)
def test_only_the_allowed_callers_pass_and_a_denial_changes_nothing(backend, route, caller):
    method, target, body, allowed = ROUTES[route]
    if route != "provision":
        payments_pipeline()
    before = snapshot(backend)

    status, answer = call(method, target, body, caller=caller)

    if caller in allowed:
        assert status in (200, 202), answer
    else:
        assert status == 403, answer
        assert answer["message"]
        assert snapshot(backend) == before


@pytest.mark.parametrize(("caller", "reason"), [
    (UNSIGNED, "no caller identity"), (UNREGISTERED, "is not registered"),
    (OTHER_TEAM, "is not a member of team 'payments'"), (OWNING_APPROVER, "lacks the requester role"),
])
def test_a_denial_names_what_is_missing(backend, caller, reason):
    payments_pipeline()

    status, answer = call("DELETE", "/pipelines/orders", caller=caller)

    assert status == 403 and reason in answer["message"]


def test_the_requester_may_not_approve_their_own_reboot_even_as_approver(backend, tenancy):
    from lambdas import principals

    principals.put_principal(principal_arn("payments-lead"), teams=["payments"], roles=["requester", "approver"])
    payments_pipeline(requested_by="payments-lead")

    status, answer = call("POST", "/pipelines/orders/approval", {"approved": True}, caller="payments-lead")
    other_status, _ = call("POST", "/pipelines/orders/approval", {"approved": True}, caller=OWNING_APPROVER)

    assert status == 403 and "may not approve its own reboot" in answer["message"]
    assert other_status == 202


def test_an_approver_of_another_team_may_answer_when_the_source_connection_names_its_team(backend):
    connections.put_connection({"name": "shop-db", "kind": "source", "host": "db", "port": 5432, "database": "shop",
                                "admin_secret": "shop/admin", "teams": ["*"], "approver_teams": ["analytics"]})
    payments_pipeline()

    denied, _ = call("POST", "/pipelines/orders/approval", {"approved": True}, caller=OWNING_APPROVER)
    status, _ = call("POST", "/pipelines/orders/approval", {"approved": True}, caller=OTHER_APPROVER)

    assert (denied, status) == (403, 202)


def test_owner_must_be_one_of_the_callers_teams_and_defaults_to_the_only_one(backend):
    status, answer = call("POST", "/pipelines", request_spec(owner="analytics"), caller=OWNING_REQUESTER)
    defaulted_status, defaulted = call("POST", "/pipelines", request_spec(owner=None), caller=OWNING_REQUESTER)

    assert status == 403 and answer["field"] == "owner" and "'analytics'" in answer["message"]
    assert defaulted_status == 202
    assert registry.get("orders").owner == "payments"
    assert registry.get("orders").requested_by == principal_arn(OWNING_REQUESTER)


def test_a_connection_the_team_may_not_use_is_refused_before_anything_exists(backend):
    status, answer = call("POST", "/pipelines", request_spec(owner="analytics", source="payments-db"),
                          caller=OTHER_TEAM)

    assert status == 403
    assert answer["field"] == "source.connection"
    assert answer["message"] == "team 'analytics' may not use source connection 'payments-db'"
    assert registry.get("orders") is None and executions(backend) == 0


@pytest.mark.parametrize(("spec", "field", "message"), [
    (request_spec(source="nowhere"), "source.connection", "no source connection 'nowhere' is registered"),
    (request_spec(sink="shop-db"), "sink.connection", "connection 'shop-db' is a source, not a sink"),
    (request_spec(cluster="dw"), "cluster", "connection 'dw' is a sink, not a cluster"),
])
def test_an_unknown_or_mismatched_connection_is_422_naming_it(backend, spec, field, message):
    status, answer = call("POST", "/pipelines", spec, caller=OWNING_REQUESTER)

    assert status == 422 and answer["field"] == field and message in answer["message"]
    assert registry.get("orders") is None and executions(backend) == 0


def test_listing_shows_only_the_callers_teams_and_admins_see_all(backend):
    payments_pipeline()
    registry.register(resolved_spec(request_spec("reports", owner="analytics")),
                      "arn:aws:states:us-east-1:123456789012:execution:ProvisionPipeline:reports-1")

    def listed(caller):
        status, body = call("GET", "/pipelines", caller=caller)
        assert status == 200
        return sorted(p["pipeline_id"] for p in body["pipelines"])

    assert listed(OWNING_REQUESTER) == ["orders"]
    assert listed(OTHER_TEAM) == ["reports"]
    assert listed(ADMIN) == ["orders", "reports"]
    assert call("GET", "/pipelines?owner=payments", caller=OTHER_TEAM)[0] == 403


def test_teams_see_the_connections_they_may_use_without_hosts_or_secrets(backend):
    status, body = call("GET", "/connections", caller=OTHER_TEAM)
    admin_status, admin_body = call("GET", "/connections", caller=ADMIN)

    assert status == admin_status == 200
    assert sorted(c["name"] for c in body["connections"]) == ["dw", "main", "search", "shop-db"]
    assert not {"host", "url", "admin_secret", "secret", "bootstrap_servers", "connect_url"} & {
        key for connection in body["connections"] for key in connection}
    assert "payments-db" in {c["name"] for c in admin_body["connections"]}
    assert next(c for c in admin_body["connections"] if c["name"] == "shop-db")["host"] == "db"


def test_a_connection_in_use_is_not_removed(backend):
    payments_pipeline()

    status, answer = call("DELETE", "/connections/shop-db", caller=ADMIN)

    assert status == 409 and answer["pipelines"] == ["orders"]
    assert connections.get_connection("shop-db") is not None


def test_an_invalid_connection_is_422_naming_the_field(backend):
    status, answer = call("POST", "/connections", {"name": "x-db", "kind": "source", "host": "h", "port": 0,
                                                   "database": "d", "admin_secret": "s", "teams": ["t"]},
                          caller=ADMIN)

    assert status == 422 and answer["field"] == "port"
    assert connections.get_connection("x-db") is None


def _property_names(node) -> set[str]:
    names = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties":
                names |= set(value)
            names |= _property_names(value)
    elif isinstance(node, list):
        for item in node:
            names |= _property_names(item)
    return names


def test_a_teams_spec_has_no_field_for_a_host_url_or_secret():
    reaching = {"host", "port", "url", "secret", "admin_secret", "bootstrap_servers", "connect", "database",
                "rds_instance_id", "approval_required", "sslmode"}

    assert not _property_names(pipeline_request.schema()) & reaching
    # ... while the resolved spec the workflows run on carries them, filled in from connections only.
    assert {"host", "admin_secret", "secret", "bootstrap_servers"} <= _property_names(resolved_schema())


def test_the_rds_instance_and_its_approval_come_from_the_source_connection():
    source = connections.parse_connection({"name": "orders-rds", "kind": "source", "host": "db", "port": 5432,
                                           "database": "shop", "admin_secret": "a", "teams": ["*"],
                                           "rds_instance_id": "orders-prod"})
    lookup = {"orders-rds": source, **{d["name"]: connections.parse_connection(d) for d in CONNECTIONS}}

    spec = pipeline_request.resolve({**request_spec(source="orders-rds"), "owner": "payments"}, lookup.get)

    assert spec.source.rds_instance_id == "orders-prod"
    assert spec.source.approval_required is True, "approval is the default reboot policy"
