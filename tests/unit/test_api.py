"""The API handler against moto's DynamoDB (the registry) and Step Functions (which records executions)."""

import json
import os
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from cdcflow.api_server import LocalLambdaContext, to_proxy_event
from lambdas import alarms, api, aws, registry
from lambdas.executions import stepfunctions
from lambdas.reconcile.health import save_assessment
from lambdas.reconcile.policy import HealthRecord
from lambdas.registry import PipelineStatus
from lambdas.spec import parse_spec, spec_document
from tests.unit.factories import create_state_machine, pipeline_spec, principal_arn, request_spec, resolved_spec

pytestmark = pytest.mark.unit

REGION = "us-east-1"
OWNER = "payments"
SPEC = request_spec(owner=OWNER)
REQUESTER = "payments-requester"


@pytest.fixture
def aws_backend(tenancy, monkeypatch):
    """moto's DynamoDB and Step Functions, the registry, principals and connections, and both state machines."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "1")
    sfn = boto3.client("stepfunctions")
    for variable, name in ((api.PROVISION_STATE_MACHINE_ARN, "ProvisionPipeline"),
                           (api.TEARDOWN_STATE_MACHINE_ARN, "TeardownPipeline")):
        monkeypatch.setenv(variable, create_state_machine(sfn, name))
    return sfn


def call(method: str, target: str, body: object = None, *, caller: str | None = REQUESTER) -> tuple[int, dict]:
    """One request as API Gateway passes it on once IAM authorization let `caller` (a factories principal) in."""
    raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
    event = to_proxy_event(method, target, [("Content-Type", "application/json")], raw)
    if caller is not None:
        event["requestContext"]["identity"]["userArn"] = principal_arn(caller)
    response = api.handler(event, LocalLambdaContext(aws_request_id=event["requestContext"]["requestId"]))
    return response["statusCode"], json.loads(response["body"])


def executions(sfn, variable: str) -> list[dict]:
    return sfn.list_executions(stateMachineArn=os.environ[variable])["executions"]


def register(spec: dict, execution_arn: str, status: str | None = None) -> registry.RegistryEntry:
    """What RegisterPipeline (and MarkPipeline) would have written."""
    entry = registry.register(resolved_spec(spec), execution_arn)
    return registry.mark(spec["pipeline_id"], status) if status else entry


# POST /pipelines

def test_provisioning_starts_one_execution_named_after_the_spec(aws_backend):
    status, body = call("POST", "/pipelines", SPEC)

    assert status == 202
    spec = resolved_spec(SPEC)
    expected_name = spec.names.execution_name(spec.fingerprint())
    assert body["pipeline_id"] == "orders"
    assert body["execution_arn"].endswith(f":execution:ProvisionPipeline:{expected_name}")
    assert body["status"] == "RUNNING"
    started = aws_backend.describe_execution(executionArn=body["execution_arn"])
    execution_input = json.loads(started["input"])
    assert execution_input == {"spec": spec_document(spec)}
    assert "url" not in execution_input["spec"]["sink"], "unset optionals stay out: the schema has no nulls"
    assert parse_spec(execution_input["spec"]) == spec


def test_a_retried_request_returns_the_same_execution_and_starts_no_other(aws_backend):
    first = call("POST", "/pipelines", SPEC)
    reordered = {key: SPEC[key] for key in reversed(list(SPEC))}  # same spec, different bytes
    second = call("POST", "/pipelines", reordered)

    assert first[0] == second[0] == 202
    assert first[1]["execution_arn"] == second[1]["execution_arn"]
    assert len(executions(aws_backend, api.PROVISION_STATE_MACHINE_ARN)) == 1


def test_a_retry_after_the_execution_closed_describes_it(aws_backend):
    _, first = call("POST", "/pipelines", SPEC)
    aws_backend.stop_execution(executionArn=first["execution_arn"])

    status, body = call("POST", "/pipelines", SPEC)

    assert status == 202
    assert body["execution_arn"] == first["execution_arn"]
    assert body["status"] == "ABORTED"
    assert len(executions(aws_backend, api.PROVISION_STATE_MACHINE_ARN)) == 1


def test_a_retry_of_a_registered_pipeline_returns_its_execution(aws_backend):
    _, first = call("POST", "/pipelines", SPEC)
    register(SPEC, first["execution_arn"], "ACTIVE")
    aws_backend.stop_execution(executionArn=first["execution_arn"])

    status, body = call("POST", "/pipelines", SPEC)

    assert (status, body["execution_arn"]) == (202, first["execution_arn"])
    assert len(executions(aws_backend, api.PROVISION_STATE_MACHINE_ARN)) == 1


def test_a_different_spec_for_a_live_pipeline_is_a_conflict(aws_backend):
    _, first = call("POST", "/pipelines", SPEC)
    register(SPEC, first["execution_arn"], "ACTIVE")

    status, body = call("POST", "/pipelines", request_spec(owner=OWNER, tables=("public.orders", "public.items")))

    assert status == 409
    assert "'orders'" in body["message"] and "ACTIVE" in body["message"] and "different spec" in body["message"]
    assert body["field"] == "pipeline_id"
    assert len(executions(aws_backend, api.PROVISION_STATE_MACHINE_ARN)) == 1


def test_of_two_specs_racing_for_one_id_the_claim_decides_and_the_loser_starts_nothing(aws_backend, monkeypatch):
    _, first = call("POST", "/pipelines", SPEC)
    with monkeypatch.context() as patch:
        # The second request read the registry before the first one's claim landed.
        patch.setattr(registry, "get", lambda pipeline_id: None)
        status, body = call("POST", "/pipelines", request_spec(owner=OWNER, tables=("public.orders", "public.items")))

    assert status == 409
    assert body["field"] == "pipeline_id" and "orders" in body["message"]
    assert len(executions(aws_backend, api.PROVISION_STATE_MACHINE_ARN)) == 1
    assert registry.get("orders").execution_arn == first["execution_arn"]


def test_another_owners_pipeline_id_is_a_conflict_even_when_deleted(aws_backend):
    _, first = call("POST", "/pipelines", SPEC)
    register(SPEC, first["execution_arn"], "DELETED")

    status, body = call("POST", "/pipelines", request_spec(owner="analytics"), caller="analytics-requester")

    assert status == 409
    assert body["field"] == "owner" and "payments" in body["message"]
    assert len(executions(aws_backend, api.PROVISION_STATE_MACHINE_ARN)) == 1


def test_a_deleted_pipeline_is_provisioned_again_by_a_new_execution_that_retries_agree_on(aws_backend):
    _, first = call("POST", "/pipelines", SPEC)
    register(SPEC, first["execution_arn"], "ACTIVE")
    aws_backend.stop_execution(executionArn=first["execution_arn"])
    registry.mark("orders", "DELETED")

    status, again = call("POST", "/pipelines", SPEC)
    _, retried = call("POST", "/pipelines", SPEC)

    assert status == 202
    assert again["execution_arn"] != first["execution_arn"]
    assert retried["execution_arn"] == again["execution_arn"]
    assert len(executions(aws_backend, api.PROVISION_STATE_MACHINE_ARN)) == 2


def test_a_closed_execution_of_the_name_without_a_registry_entry_is_not_taken_for_this_request(aws_backend):
    # An earlier generation's execution, its registry entry gone (a table restored, an entry deleted by hand).
    spec = resolved_spec(SPEC)
    state_machine_arn = os.environ[api.PROVISION_STATE_MACHINE_ARN]
    earlier = aws_backend.start_execution(
        stateMachineArn=state_machine_arn, name=spec.names.execution_name(spec.fingerprint()),
        input=json.dumps({"spec": spec_document(spec)}),
    )["executionArn"]
    aws_backend.stop_execution(executionArn=earlier)

    status, started = call("POST", "/pipelines", SPEC)
    _, retried = call("POST", "/pipelines", SPEC)

    assert status == 202
    assert started["execution_arn"] != earlier and started["status"] == "RUNNING"
    assert registry.get("orders").execution_arn == started["execution_arn"]
    assert retried["execution_arn"] == started["execution_arn"]
    assert len(executions(aws_backend, api.PROVISION_STATE_MACHINE_ARN)) == 2


def test_a_pipeline_being_torn_down_is_not_provisioned(aws_backend):
    _, first = call("POST", "/pipelines", SPEC)
    register(SPEC, first["execution_arn"], "DELETING")

    status, body = call("POST", "/pipelines", SPEC)

    assert status == 409 and "torn down" in body["message"]


def test_schema_violations_are_422_naming_every_field_and_start_nothing(aws_backend):
    bad = request_spec("Orders!", owner=OWNER)
    bad["source"] = {**SPEC["source"], "tables": ["public.orders", "public.Orders; drop"], "port": 0}

    status, body = call("POST", "/pipelines", bad)

    assert status == 422
    fields = {problem["field"] for problem in body["problems"]}
    assert fields == {"pipeline_id", "source", "source.tables[1]"}
    assert any("'port' was unexpected" in problem["message"] for problem in body["problems"])
    assert body["field"] in fields
    assert "source.tables[1]" in body["message"]
    assert executions(aws_backend, api.PROVISION_STATE_MACHINE_ARN) == []
    assert registry.get("orders") is None


def test_a_missing_field_is_named(aws_backend):
    spec = request_spec(owner=OWNER)
    del spec["sink"]["connection"]

    status, body = call("POST", "/pipelines", spec)

    assert status == 422
    assert body["problems"] == [{"field": "sink", "message": "'connection' is a required property"}]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b"[" * 100_000])
def test_a_body_that_is_not_json_is_400(aws_backend, raw):
    status, body = call("POST", "/pipelines", raw)

    assert status == 400
    assert body["field"] == "body" and body["message"]


@pytest.mark.parametrize("document", [[], "orders", 7, None])
def test_a_json_body_that_is_not_an_object_is_422(aws_backend, document):
    status, body = call("POST", "/pipelines", json.dumps(document).encode())

    assert status == 422
    assert body["field"] == "(spec)"


# GET /pipelines and /pipelines/{id}

def register_many() -> None:
    statuses = ["ACTIVE", "ACTIVE", "FAILED", "ACTIVE", "DELETED"]
    for number, status in enumerate(statuses):
        spec = request_spec(f"pipe_{number}", owner="payments" if number % 2 else "analytics")
        register(spec, f"arn:aws:states:{REGION}:123456789012:execution:ProvisionPipeline:pipe_{number}", status)


def collect(target: str, caller: str = "platform-admin") -> list[dict]:
    pipelines, token = [], None
    while True:
        status, body = call("GET", target + (f"&next_token={token}" if token else ""), caller=caller)
        assert status == 200
        assert len(body["pipelines"]) <= 2
        pipelines += body["pipelines"]
        token = body["next_token"]
        if token is None:
            return pipelines


def test_listing_pages_through_every_pipeline(aws_backend):
    register_many()

    pipelines = collect("/pipelines?limit=2")

    assert sorted(p["pipeline_id"] for p in pipelines) == [f"pipe_{n}" for n in range(5)]
    assert all("spec" not in pipeline for pipeline in pipelines)


def test_listing_filters_by_status_and_owner(aws_backend):
    register_many()

    active = collect("/pipelines?limit=2&status=ACTIVE")
    payments_active = collect("/pipelines?limit=2&status=ACTIVE&owner=payments")
    analytics = collect("/pipelines?limit=2&owner=analytics")

    assert sorted(p["pipeline_id"] for p in active) == ["pipe_0", "pipe_1", "pipe_3"]
    assert sorted(p["pipeline_id"] for p in payments_active) == ["pipe_1", "pipe_3"]
    assert sorted(p["pipeline_id"] for p in analytics) == ["pipe_0", "pipe_2", "pipe_4"]


def test_a_listing_names_each_pipelines_alarms_in_alarm(aws_backend):
    register_many()
    cloudwatch = boto3.client("cloudwatch")
    alarms.put_alarms(pipeline_spec("pipe_1"))
    cloudwatch.set_alarm_state(AlarmName="cdcflow-pipeline-pipe_1-slot-lag", StateValue="ALARM", StateReason="test")

    firing = {p["pipeline_id"]: p["alarms_firing"] for p in collect("/pipelines?limit=2")}

    assert firing == {"pipe_0": [], "pipe_1": ["slot-lag"], "pipe_2": [], "pipe_3": [], "pipe_4": []}


def test_a_listing_answers_when_cloudwatch_cannot_be_read(aws_backend, monkeypatch):
    register_many()
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", "http://127.0.0.1:9")
    aws.reset_clients()

    status, body = call("GET", "/pipelines", caller="platform-admin")

    assert status == 200 and len(body["pipelines"]) == 5
    assert "CloudWatch alarms could not be read" in body["alarms_error"]
    assert all("alarms_firing" not in pipeline for pipeline in body["pipelines"])


@pytest.mark.parametrize(("query", "field"), [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=ten", "limit"), ("limit=%C2%B2", "limit"),
    ("status=RUNNING", "status"), ("owner=%20bad", "owner"),
    ("next_token=not-a-token", "next_token"), ("next_token=WzFd", "next_token"),
])
def test_bad_listing_parameters_are_400_naming_them(aws_backend, query, field):
    status, body = call("GET", f"/pipelines?{query}")

    assert status == 400
    assert body["field"] == field and field in body["message"]


def test_one_pipelines_details(aws_backend):
    _, started = call("POST", "/pipelines", SPEC)
    register(SPEC, started["execution_arn"])
    registry.mark("orders", "FAILED", current_step="CreateSlot", error="SlotBlockedByLongTransaction",
                  cause="transaction 812 has been open for 2 hours")

    status, body = call("GET", "/pipelines/orders")

    assert status == 200
    assert body["status"] == "FAILED"
    assert body["current_step"] == "CreateSlot"
    assert body["last_error"] == {"error": "SlotBlockedByLongTransaction",
                                  "cause": "transaction 812 has been open for 2 hours"}
    assert body["execution_arn"] == started["execution_arn"]
    assert body["owner"] == "payments" and body["created_at"] and body["updated_at"]
    assert resolved_spec(body["spec"]) == resolved_spec(SPEC)
    assert body["spec"]["source"] == {"connection": "shop-db", "tables": ["public.orders"]}
    assert body["spec"]["cluster"] == "main" and body["spec"]["sink"] == {"connection": "dw", "schema": "public"}
    assert "db" not in json.dumps(body["spec"]).replace("shop-db", ""), "no host reaches the team"
    assert "teardown_execution_arn" not in body


def test_the_slot_lag_shows_once_a_reconcile_sweep_measured_it(aws_backend):
    _, started = call("POST", "/pipelines", SPEC)
    register(SPEC, started["execution_arn"], "ACTIVE")
    assert "slot_lag_bytes" not in call("GET", "/pipelines/orders")[1]

    health = HealthRecord(slot_lag_bytes=4_194_304, checked_at="2026-11-23T03:00:00+00:00")
    saved = save_assessment("orders", started["execution_arn"], health, PipelineStatus.ACTIVE, PipelineStatus.ACTIVE,
                            datetime.now(UTC))

    assert saved
    assert call("GET", "/pipelines/orders")[1]["slot_lag_bytes"] == 4_194_304
    (listed,) = call("GET", "/pipelines")[1]["pipelines"]
    assert listed["slot_lag_bytes"] == 4_194_304


@pytest.mark.parametrize("pipeline_id", ["missing", "Not-An-Id"])
def test_an_unknown_pipeline_is_404_naming_it(aws_backend, pipeline_id):
    status, body = call("GET", f"/pipelines/{pipeline_id}")

    assert status == 404
    assert repr(pipeline_id) in body["message"]


def test_an_unknown_route_is_404_naming_it(aws_backend):
    status, body = call("GET", "/pipelines/orders/connectors")

    assert status == 404
    assert body["message"] == "no route GET /pipelines/orders/connectors"


def test_an_unsupported_method_is_405_naming_the_allowed_ones(aws_backend):
    event = to_proxy_event("POST", "/pipelines/orders", [], b"")
    response = api.handler(event, LocalLambdaContext(aws_request_id="r-1"))

    assert response["statusCode"] == 405
    assert json.loads(response["body"])["message"] == (
        "POST is not allowed on /pipelines/{id}; use GET, PATCH, PUT, DELETE")
    assert response["multiValueHeaders"]["Allow"] == ["GET, PATCH, PUT, DELETE"]


# DELETE /pipelines/{id}

def test_teardown_of_an_unknown_pipeline_is_404(aws_backend):
    status, body = call("DELETE", "/pipelines/missing")

    assert status == 404 and "'missing'" in body["message"]
    assert executions(aws_backend, api.TEARDOWN_STATE_MACHINE_ARN) == []


@pytest.mark.parametrize("pipeline_status", ["DELETING", "DELETED"])
def test_teardown_while_a_workflow_holds_the_pipeline_is_409(aws_backend, pipeline_status):
    _, started = call("POST", "/pipelines", SPEC)
    register(SPEC, started["execution_arn"], pipeline_status)

    status, body = call("DELETE", "/pipelines/orders")

    assert status == 409
    assert body["status"] == pipeline_status and "'orders'" in body["message"]
    assert executions(aws_backend, api.TEARDOWN_STATE_MACHINE_ARN) == []


def test_teardown_starts_once_with_the_registered_spec(aws_backend):
    _, started = call("POST", "/pipelines", SPEC)
    register(SPEC, started["execution_arn"], "ACTIVE")

    status, body = call("DELETE", "/pipelines/orders?keep_topics=true")
    retried_status, retried = call("DELETE", "/pipelines/orders?keep_topics=true")

    assert status == retried_status == 202
    assert retried["execution_arn"] == body["execution_arn"]
    assert ":execution:TeardownPipeline:orders-teardown-" in body["execution_arn"]
    teardown_input = json.loads(aws_backend.describe_execution(executionArn=body["execution_arn"])["input"])
    assert teardown_input == {"spec": spec_document(resolved_spec(SPEC)), "keep_topics": True, "keep_index": False}
    assert len(executions(aws_backend, api.TEARDOWN_STATE_MACHINE_ARN)) == 1

    registry.mark("orders", "DELETING")
    _, details = call("GET", "/pipelines/orders")
    assert details["teardown_execution_arn"] == body["execution_arn"]


def test_a_failed_pipeline_can_be_torn_down_and_topics_go_by_default(aws_backend):
    _, started = call("POST", "/pipelines", SPEC)
    register(SPEC, started["execution_arn"], "FAILED")

    status, body = call("DELETE", "/pipelines/orders")

    assert status == 202
    teardown_input = json.loads(aws_backend.describe_execution(executionArn=body["execution_arn"])["input"])
    assert teardown_input["keep_topics"] is False and teardown_input["keep_index"] is False


def test_a_failed_teardown_is_run_again_by_a_new_execution_that_retries_agree_on(aws_backend):
    _, started = call("POST", "/pipelines", SPEC)
    register(SPEC, started["execution_arn"], "ACTIVE")
    _, first = call("DELETE", "/pipelines/orders")
    aws_backend.stop_execution(executionArn=first["execution_arn"])
    registry.mark("orders", "FAILED")  # what MarkTeardownFailed records

    status, again = call("DELETE", "/pipelines/orders")
    _, retried = call("DELETE", "/pipelines/orders")

    assert status == 202
    assert again["execution_arn"] != first["execution_arn"] and again["status"] == "RUNNING"
    assert retried["execution_arn"] == again["execution_arn"]
    assert len(executions(aws_backend, api.TEARDOWN_STATE_MACHINE_ARN)) == 2


def test_a_stopped_teardown_leaves_deleting_behind_and_may_be_run_again(aws_backend):
    _, started = call("POST", "/pipelines", SPEC)
    register(SPEC, started["execution_arn"], "ACTIVE")
    _, first = call("DELETE", "/pipelines/orders")
    registry.mark("orders", "DELETING")  # MarkDeleting ran; then the execution was stopped
    assert call("DELETE", "/pipelines/orders")[0] == 409
    aws_backend.stop_execution(executionArn=first["execution_arn"])

    status, again = call("DELETE", "/pipelines/orders")
    _, details = call("GET", "/pipelines/orders")

    assert status == 202 and again["execution_arn"] != first["execution_arn"]
    assert details["teardown_execution_arn"] == again["execution_arn"]


def test_a_stopped_provisioning_may_be_torn_down(aws_backend):
    _, started = call("POST", "/pipelines", SPEC)  # the API's claim: PROVISIONING
    aws_backend.stop_execution(executionArn=started["execution_arn"])

    status, body = call("DELETE", "/pipelines/orders")

    assert status == 202
    assert ":execution:TeardownPipeline:orders-teardown-" in body["execution_arn"]
    teardown_input = json.loads(aws_backend.describe_execution(executionArn=body["execution_arn"])["input"])
    assert "stopped" not in teardown_input  # nothing was cancelled: it had stopped already


def test_a_delete_while_provisioning_cancels_it_and_the_teardown_waits_for_its_step(aws_backend):
    _, started = call("POST", "/pipelines", SPEC)  # the API's claim: PROVISIONING
    registry.record_step("orders", "CreateSlot")  # what the provisioning's current step records as it begins

    status, body = call("DELETE", "/pipelines/orders")
    retried_status, retried = call("DELETE", "/pipelines/orders")

    assert status == retried_status == 202
    assert retried["execution_arn"] == body["execution_arn"]
    assert aws_backend.describe_execution(executionArn=started["execution_arn"])["status"] == "ABORTED"
    teardown_input = json.loads(aws_backend.describe_execution(executionArn=body["execution_arn"])["input"])
    assert teardown_input["stopped"] == {"execution_arn": started["execution_arn"], "state_name": "CreateSlot"}
    assert len(executions(aws_backend, api.TEARDOWN_STATE_MACHINE_ARN)) == 1


def test_keep_index_reaches_the_teardown_and_must_be_a_boolean(aws_backend):
    _, started = call("POST", "/pipelines", SPEC)
    register(SPEC, started["execution_arn"], "ACTIVE")

    refused_status, refused = call("DELETE", "/pipelines/orders?keep_index=perhaps")
    status, body = call("DELETE", "/pipelines/orders?keep_index=true")

    assert refused_status == 400 and refused["field"] == "keep_index"
    assert status == 202
    teardown_input = json.loads(aws_backend.describe_execution(executionArn=body["execution_arn"])["input"])
    assert teardown_input["keep_index"] is True and teardown_input["keep_topics"] is False


def test_keep_topics_must_be_a_boolean(aws_backend):
    status, body = call("DELETE", "/pipelines/orders?keep_topics=maybe")

    assert status == 400 and body["field"] == "keep_topics"


# POST /pipelines/{id}/approval

@pytest.fixture
def task_calls(aws_backend):
    """SendTaskSuccess/SendTaskFailure requests, as the API made them (moto accepts and ignores them)."""
    recorded = []
    client = stepfunctions()
    for operation in ("SendTaskSuccess", "SendTaskFailure"):
        client.meta.events.register(f"provide-client-params.sfn.{operation}",
                                    lambda params, model, **_: recorded.append((model.name, params)))
    return recorded


APPROVER = "payments-approver"


def awaiting_approval() -> None:
    register(SPEC, f"arn:aws:states:{REGION}:123456789012:execution:ProvisionPipeline:orders-1")
    registry.store_task_token("orders", "token-123")


def test_an_approval_delivers_the_decision_and_consumes_the_token(aws_backend, task_calls):
    awaiting_approval()

    status, body = call("POST", "/pipelines/orders/approval", {"approved": True, "comment": "maintenance window"},
                        caller=APPROVER)

    assert (status, body) == (202, {"pipeline_id": "orders", "approved": True})
    assert task_calls == [("SendTaskSuccess", {"taskToken": "token-123",
                                               "output": json.dumps({"approved": True,
                                                                     "comment": "maintenance window"})})]
    assert registry.pop_task_token("orders") is None

    again, body = call("POST", "/pipelines/orders/approval", {"approved": True}, caller=APPROVER)
    assert again == 409 and "not waiting" in body["message"]
    assert len(task_calls) == 1


def test_a_rejection_fails_the_task_with_approval_rejected(aws_backend, task_calls):
    awaiting_approval()

    status, _ = call("POST", "/pipelines/orders/approval", {"approved": False, "comment": "not during Black Friday"},
                     caller=APPROVER)

    assert status == 202
    assert task_calls == [("SendTaskFailure", {"taskToken": "token-123", "error": "ApprovalRejected",
                                               "cause": "not during Black Friday"})]


def test_approving_an_unknown_pipeline_is_404(aws_backend, task_calls):
    status, body = call("POST", "/pipelines/missing/approval", {"approved": True}, caller=APPROVER)

    assert status == 404 and "'missing'" in body["message"]
    assert task_calls == []


@pytest.mark.parametrize(("decision", "field"), [
    ({"approved": "yes"}, "approved"), ({}, "approved"), ({"approved": True, "comment": 5}, "comment"),
    ({"approved": True, "comment": "x" * 1001}, "comment"), ({"approved": True, "by": "me"}, "by"),
])
def test_a_malformed_decision_is_422_naming_the_field(aws_backend, task_calls, decision, field):
    awaiting_approval()

    status, body = call("POST", "/pipelines/orders/approval", decision, caller=APPROVER)

    assert status == 422 and body["field"] == field
    assert registry.pop_task_token("orders") == "token-123", "the token stays for a well-formed answer"


def test_an_expired_approval_is_409(aws_backend):
    awaiting_approval()
    client = stepfunctions()

    def expired(**_):
        raise client.exceptions.TaskTimedOut({"Error": {"Code": "TaskTimedOut", "Message": "timed out"}},
                                             "SendTaskSuccess")

    client.meta.events.register("before-call.sfn.SendTaskSuccess", expired)

    status, body = call("POST", "/pipelines/orders/approval", {"approved": True}, caller=APPROVER)

    assert status == 409 and "expired" in body["message"]


def test_a_decision_that_cannot_be_delivered_keeps_the_token_and_is_a_500_with_a_request_id(aws_backend):
    awaiting_approval()

    def unreachable(**_):
        raise EndpointConnectionError(endpoint_url="https://states.us-east-1.amazonaws.com")

    stepfunctions().meta.events.register("before-call.sfn.SendTaskSuccess", unreachable)

    status, body = call("POST", "/pipelines/orders/approval", {"approved": True}, caller=APPROVER)

    assert status == 500
    assert set(body) == {"message", "request_id"} and body["request_id"]
    assert "amazonaws" not in body["message"]
    assert registry.pop_task_token("orders") == "token-123"


def test_an_unexpected_failure_is_a_500_without_internals(aws_backend, monkeypatch):
    monkeypatch.delenv(api.PROVISION_STATE_MACHINE_ARN)

    status, body = call("POST", "/pipelines", SPEC)

    assert status == 500
    assert "PROVISION_STATE_MACHINE_ARN" not in json.dumps(body)
    assert body["request_id"]
