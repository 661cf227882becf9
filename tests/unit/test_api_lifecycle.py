"""POST /pipelines/{id}/pause and /resume in-process against moto: who may, in which status, and one at a time."""

import json
import os

import boto3
import pytest

from cdcflow.api_server import LocalLambdaContext, to_proxy_event
from lambdas import api, registry
from lambdas.executions import execution_arn
from tests.unit.factories import principal_arn, request_spec, resolved_spec

pytestmark = pytest.mark.unit

PROVISIONING = "arn:aws:states:us-east-1:123456789012:execution:ProvisionPipeline:orders-1"


@pytest.fixture
def sfn(lifecycle_sfn):
    return lifecycle_sfn


def call(method: str, target: str, *, caller: str | None = "payments-requester") -> tuple[int, dict]:
    event = to_proxy_event(method, target, [("Content-Type", "application/json")], b"")
    if caller is not None:
        event["requestContext"]["identity"]["userArn"] = principal_arn(caller)
    response = api.handler(event, LocalLambdaContext(aws_request_id=event["requestContext"]["requestId"]))
    return response["statusCode"], json.loads(response["body"])


def pipeline(status: str = "ACTIVE") -> None:
    registry.register(resolved_spec(request_spec(owner="payments")), PROVISIONING,
                      requested_by=principal_arn("payments-requester"))
    registry.mark("orders", status)


def started(sfn, variable: str) -> list[str]:
    return [e["executionArn"] for e in sfn.list_executions(stateMachineArn=os.environ[variable])["executions"]]


def item() -> dict:
    return boto3.client("dynamodb").get_item(TableName=registry.table_name(), Key={"pipeline_id": {"S": "orders"}},
                                             ConsistentRead=True)["Item"]


def test_pause_of_an_active_pipeline_claims_it_and_starts_one_pause(sfn):
    pipeline("ACTIVE")

    status, body = call("POST", "/pipelines/orders/pause")

    assert status == 202, body
    assert started(sfn, api.PAUSE_STATE_MACHINE_ARN) == [body["execution_arn"]]
    entry = registry.get("orders")
    assert entry.lifecycle_execution_arn == body["execution_arn"] and entry.lifecycle_action == "pause"
    assert entry.status is registry.PipelineStatus.ACTIVE  # PAUSED is the workflow's to record
    described = sfn.describe_execution(executionArn=body["execution_arn"])
    assert json.loads(described["input"])["spec"]["pipeline_id"] == "orders"
    _, shown = call("GET", "/pipelines/orders")
    assert shown["lifecycle_execution_arn"] == body["execution_arn"]


def test_a_retried_pause_answers_with_the_running_one(sfn):
    pipeline("ACTIVE")
    _, first = call("POST", "/pipelines/orders/pause")

    status, again = call("POST", "/pipelines/orders/pause")

    assert status == 202 and again["execution_arn"] == first["execution_arn"]
    assert started(sfn, api.PAUSE_STATE_MACHINE_ARN) == [first["execution_arn"]]


def test_a_claim_whose_execution_never_started_is_started_by_the_retry(sfn):
    pipeline("ACTIVE")
    entry = registry.get("orders")
    from lambdas.executions import lifecycle_execution_name
    name = lifecycle_execution_name(entry, "pause")
    registry.claim_lifecycle(entry, "pause", execution_arn(os.environ[api.PAUSE_STATE_MACHINE_ARN], name))

    status, body = call("POST", "/pipelines/orders/pause")

    assert status == 202 and body["execution_arn"].endswith(f":{name}")
    assert started(sfn, api.PAUSE_STATE_MACHINE_ARN) == [body["execution_arn"]]


def test_resume_while_a_pause_runs_is_409_naming_the_pause(sfn):
    pipeline("ACTIVE")
    _, pause = call("POST", "/pipelines/orders/pause")
    registry.mark("orders", "PAUSED")  # as if the pause had recorded its status but not yet released the entry
    before = item()

    status, body = call("POST", "/pipelines/orders/resume")

    assert status == 409
    assert body["execution_arn"] == pause["execution_arn"] and pause["execution_arn"] in body["message"]
    assert started(sfn, api.RESUME_STATE_MACHINE_ARN) == []
    assert item() == before


@pytest.mark.parametrize("action", ["pause", "resume"])
def test_teardown_while_a_pause_or_resume_runs_is_409_naming_it(sfn, action):
    pipeline("ACTIVE" if action == "pause" else "PAUSED")
    _, running = call("POST", f"/pipelines/orders/{action}")
    before = item()

    status, body = call("DELETE", "/pipelines/orders")

    assert status == 409, body
    assert body["execution_arn"] == running["execution_arn"] and running["execution_arn"] in body["message"]
    assert started(sfn, api.TEARDOWN_STATE_MACHINE_ARN) == []
    assert item() == before


def test_teardown_after_the_pause_finished_starts(sfn):
    pipeline("ACTIVE")
    _, pause = call("POST", "/pipelines/orders/pause")
    sfn.stop_execution(executionArn=pause["execution_arn"])  # ended, though it never released the entry

    status, body = call("DELETE", "/pipelines/orders")

    assert status == 202, body
    assert started(sfn, api.TEARDOWN_STATE_MACHINE_ARN) == [body["execution_arn"]]


@pytest.mark.parametrize(("action", "status"), [
    ("pause", "PAUSED"), ("pause", "PROVISIONING"), ("pause", "FAILED"), ("pause", "DEGRADED"),
    ("resume", "ACTIVE"), ("resume", "DELETING"), ("resume", "DELETED"),
])
def test_a_pipeline_in_the_wrong_status_is_409_and_nothing_starts(sfn, action, status):
    pipeline(status)
    before = item()

    code, body = call("POST", f"/pipelines/orders/{action}")

    assert code == 409 and body["status"] == status and status in body["message"]
    assert started(sfn, api.PAUSE_STATE_MACHINE_ARN) + started(sfn, api.RESUME_STATE_MACHINE_ARN) == []
    assert item() == before


def test_resume_of_a_paused_pipeline_after_its_pause_finished_starts_a_resume(sfn):
    pipeline("ACTIVE")
    _, pause = call("POST", "/pipelines/orders/pause")
    sfn.stop_execution(executionArn=pause["execution_arn"])  # ended (moto's executions never finish by themselves)
    registry.finish_lifecycle("orders", pause["execution_arn"], "PAUSED")

    status, body = call("POST", "/pipelines/orders/resume")

    assert status == 202 and started(sfn, api.RESUME_STATE_MACHINE_ARN) == [body["execution_arn"]]
    assert registry.get("orders").lifecycle_action == "resume"


def test_a_stale_claim_of_an_ended_execution_does_not_block_the_next_action(sfn):
    pipeline("ACTIVE")
    _, pause = call("POST", "/pipelines/orders/pause")
    sfn.stop_execution(executionArn=pause["execution_arn"])  # stopped before it could release the entry

    status, body = call("POST", "/pipelines/orders/pause")

    assert status == 202 and body["execution_arn"] != pause["execution_arn"]


@pytest.mark.parametrize("action", ["pause", "resume"])
@pytest.mark.parametrize(("caller", "reason"), [
    ("analytics-requester", "not a member of team 'payments'"),
    ("payments-approver", "lacks the requester role"),
    ("intruder", "not registered"),
    (None, "no caller identity"),
])
def test_only_the_owning_team_or_an_admin_may_pause_or_resume(sfn, action, caller, reason):
    pipeline("ACTIVE" if action == "pause" else "PAUSED")
    before = item()

    status, body = call("POST", f"/pipelines/orders/{action}", caller=caller)

    assert status == 403 and reason in body["message"]
    assert started(sfn, api.PAUSE_STATE_MACHINE_ARN) + started(sfn, api.RESUME_STATE_MACHINE_ARN) == []
    assert item() == before


@pytest.mark.parametrize("action", ["pause", "resume"])
def test_an_admin_may_pause_and_resume_any_team_pipeline(sfn, action):
    pipeline("ACTIVE" if action == "pause" else "PAUSED")

    status, body = call("POST", f"/pipelines/orders/{action}", caller="platform-admin")

    assert status == 202 and body["action"] == action


def test_an_unknown_pipeline_is_404(sfn):
    status, body = call("POST", "/pipelines/nothing/pause")

    assert status == 404 and body["field"] == "id"


def test_finish_lifecycle_releases_only_for_the_claiming_execution_and_only_to_its_statuses(sfn):
    pipeline("ACTIVE")
    _, pause = call("POST", "/pipelines/orders/pause")

    with pytest.raises(registry.LifecycleConflict, match="is held by execution"):
        registry.finish_lifecycle("orders", "arn:aws:states:us-east-1:1:execution:PausePipeline:other", "PAUSED")
    with pytest.raises(registry.LifecycleConflict, match="may not leave"):
        registry.finish_lifecycle("orders", pause["execution_arn"], "DELETED")

    failed = registry.finish_lifecycle("orders", pause["execution_arn"], "ACTIVE", error="ConnectorFailed",
                                       cause="PauseConnectors: boom")
    again = registry.finish_lifecycle("orders", pause["execution_arn"], "ACTIVE")  # a re-run after the release

    assert failed.status is registry.PipelineStatus.ACTIVE and failed.lifecycle_execution_arn is None
    assert failed.last_error == {"error": "ConnectorFailed", "cause": "PauseConnectors: boom"}
    assert again.version == failed.version


def test_a_lifecycle_execution_never_overwrites_a_teardown_that_started_meanwhile(sfn):
    pipeline("ACTIVE")
    _, pause = call("POST", "/pipelines/orders/pause")
    registry.mark("orders", "DELETING")

    with pytest.raises(registry.LifecycleConflict, match="became DELETING"):
        registry.finish_lifecycle("orders", pause["execution_arn"], "PAUSED")

    assert registry.get("orders").status is registry.PipelineStatus.DELETING
