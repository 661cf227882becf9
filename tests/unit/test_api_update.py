"""PATCH and PUT /pipelines/{id} in-process against moto: the update started, what it will change, and refusals."""

import json
import os

import pytest

from cdcflow.api_server import LocalLambdaContext, to_proxy_event
from lambdas import api, registry
from tests.unit.factories import principal_arn, request_spec, resolved_spec

pytestmark = pytest.mark.unit

PROVISIONING = "arn:aws:states:us-east-1:123456789012:execution:ProvisionPipeline:orders-1"


@pytest.fixture
def sfn(lifecycle_sfn):
    return lifecycle_sfn


def call(method: str, target: str, body=None, *, caller: str | None = "payments-requester") -> tuple[int, dict]:
    raw = b"" if body is None else json.dumps(body).encode()
    event = to_proxy_event(method, target, [("Content-Type", "application/json")], raw)
    if caller is not None:
        event["requestContext"]["identity"]["userArn"] = principal_arn(caller)
    response = api.handler(event, LocalLambdaContext(aws_request_id=event["requestContext"]["requestId"]))
    return response["statusCode"], json.loads(response["body"])


def pipeline(status: str = "ACTIVE", tables=("public.orders",)) -> None:
    registry.register(resolved_spec(request_spec(owner="payments", tables=tables)), PROVISIONING,
                      requested_by=principal_arn("payments-requester"))
    registry.mark("orders", status)


def started(sfn, variable: str) -> list[str]:
    return [e["executionArn"] for e in sfn.list_executions(stateMachineArn=os.environ[variable])["executions"]]


ADD_ITEMS = {"source": {"tables": ["public.orders", "public.items"]}}


def test_a_patch_adding_a_table_claims_the_pipeline_and_starts_one_update(sfn):
    pipeline()
    before = registry.get("orders")

    status, body = call("PATCH", "/pipelines/orders", ADD_ITEMS)

    assert status == 202, body
    assert started(sfn, api.UPDATE_STATE_MACHINE_ARN) == [body["execution_arn"]]
    assert body["changes"]["tables_added"] == ["public.items"] and body["changes"]["tables_removed"] == []
    entry = registry.get("orders")
    assert entry.lifecycle_action == "update" and entry.lifecycle_execution_arn == body["execution_arn"]
    assert entry.spec == before.spec  # the workflow records the new spec once it is in force
    given = json.loads(sfn.describe_execution(executionArn=body["execution_arn"])["input"])
    assert given["spec"]["source"]["tables"] == ["public.orders", "public.items"]
    assert given["previous_spec"]["source"]["tables"] == ["public.orders"]
    assert given["keep_topics"] is False and given["requested_by"] == principal_arn("payments-requester")
    assert "admin_secret" in given["spec"]["source"]  # the name of a secret, never its value


def test_a_retried_patch_answers_with_the_running_update(sfn):
    pipeline()
    _, first = call("PATCH", "/pipelines/orders", ADD_ITEMS)

    status, again = call("PATCH", "/pipelines/orders", ADD_ITEMS)

    assert status == 202 and again["execution_arn"] == first["execution_arn"]
    assert started(sfn, api.UPDATE_STATE_MACHINE_ARN) == [first["execution_arn"]]


def test_a_put_with_a_table_removed_says_its_sink_table_stays_and_keeps_its_topic_when_asked(sfn):
    pipeline(tables=("public.orders", "public.customers"))
    whole = request_spec(owner="payments", tables=("public.orders",))

    status, body = call("PUT", "/pipelines/orders?keep_topics=true", whole)

    assert status == 202, body
    assert body["changes"]["tables_removed"] == ["public.customers"]
    assert body["changes"]["sink_tables_left"] == ["public.public_customers"]
    assert body["changes"]["topics_kept"] == ["cdcflow.orders.public.customers"]
    given = json.loads(sfn.describe_execution(executionArn=body["execution_arn"])["input"])
    assert given["keep_topics"] is True


def test_a_patch_that_changes_nothing_answers_200_and_starts_nothing(sfn):
    pipeline()

    status, body = call("PATCH", "/pipelines/orders", {"source": {"tables": ["public.orders"]}})

    assert status == 200 and "nothing to change" in body["message"]
    assert started(sfn, api.UPDATE_STATE_MACHINE_ARN) == []
    assert registry.get("orders").lifecycle_execution_arn is None


@pytest.mark.parametrize(("patch", "field"), [
    ({"kafka": {"topic_prefix": "renamed"}}, "kafka.topic_prefix"),
    ({"source": {"connection": "payments-db"}}, "source.connection"),
    ({"sink": {"connection": "search"}}, "sink.connection"),
    ({"owner": "analytics"}, "owner"),
    ({"source": {"tables": ["public.orders; drop"]}}, "source.tables[0]"),
])
def test_a_change_a_running_pipeline_cannot_take_is_422_naming_the_field_and_starts_nothing(sfn, patch, field):
    pipeline()
    before = registry.get("orders")

    status, body = call("PATCH", "/pipelines/orders", patch)

    assert status == 422 and body["field"] == field, body
    assert started(sfn, api.UPDATE_STATE_MACHINE_ARN) == []
    assert registry.get("orders") == before


def test_an_update_while_a_pause_runs_is_409_naming_the_pause(sfn):
    pipeline()
    _, pause = call("POST", "/pipelines/orders/pause")

    status, body = call("PATCH", "/pipelines/orders", ADD_ITEMS)

    assert status == 409 and pause["execution_arn"] in body["message"], body
    assert started(sfn, api.UPDATE_STATE_MACHINE_ARN) == []


def test_a_pause_while_an_update_runs_is_409_naming_the_update(sfn):
    pipeline()
    _, update = call("PATCH", "/pipelines/orders", ADD_ITEMS)

    status, body = call("POST", "/pipelines/orders/pause")

    assert status == 409 and update["execution_arn"] in body["message"], body


def test_only_an_active_pipeline_is_updated(sfn):
    pipeline("PAUSED")

    status, body = call("PATCH", "/pipelines/orders", ADD_ITEMS)

    assert status == 409 and "only an ACTIVE pipeline can be updated" in body["message"], body


@pytest.mark.parametrize("caller", ["analytics-requester", "payments-approver"])
def test_only_the_owning_teams_requesters_and_admins_update(sfn, caller):
    pipeline()

    status, body = call("PATCH", "/pipelines/orders", ADD_ITEMS, caller=caller)

    assert status == 403, body
    assert started(sfn, api.UPDATE_STATE_MACHINE_ARN) == []


def test_an_admin_updates_any_pipeline(sfn):
    pipeline()

    status, body = call("PATCH", "/pipelines/orders", ADD_ITEMS, caller="platform-admin")

    assert status == 202, body
    given = json.loads(sfn.describe_execution(executionArn=body["execution_arn"])["input"])
    assert given["requested_by"] == principal_arn("platform-admin")


def test_a_body_that_is_not_an_object_is_422(sfn):
    pipeline()

    status, body = call("PATCH", "/pipelines/orders", ["public.items"])

    assert status == 422 and body["field"] == "(body)"


def test_the_pipeline_shows_the_specs_an_update_replaced(sfn):
    pipeline()
    _, update = call("PATCH", "/pipelines/orders", ADD_ITEMS)
    new_spec = resolved_spec(request_spec(owner="payments", tables=("public.orders", "public.items")))
    registry.finish_lifecycle("orders", update["execution_arn"], "ACTIVE", new_spec=new_spec,
                              updated_by=principal_arn("payments-requester"))

    status, shown = call("GET", "/pipelines/orders")

    assert status == 200 and shown["spec"]["source"]["tables"] == ["public.orders", "public.items"]
    [replaced] = shown["spec_history"]
    assert replaced["spec"]["source"] == {"connection": "shop-db", "tables": ["public.orders"]}
    assert replaced["by"] == principal_arn("payments-requester") and replaced["at"]
