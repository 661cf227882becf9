"""Resync requests: the shape a WHERE condition must have, the tables it may name, and the route that checks both.

PostgreSQL's own check of a condition runs against a real database in
tests/integration/test_resync_conditions.py; here the route's database check
is replaced, to see what reaches the workflow and what is refused before it.
"""

import contextlib
import json
import os

import pytest

from cdcflow.api_server import LocalLambdaContext, to_proxy_event
from cdcflow.operate_cli import BadInput, resync_conditions
from lambdas import api, registry
from lambdas.api import lifecycle_routes
from lambdas.resync import ResyncRefused, condition_problem, parse_request, resync_filter
from lambdas.steps.resync import resync_counts
from tests.unit.factories import principal_arn, request_spec, resolved_spec

pytestmark = pytest.mark.unit

PROVISIONING = "arn:aws:states:us-east-1:123456789012:execution:ProvisionPipeline:orders-1"
TABLES = ("public.orders", "public.lines")


def spec():
    return resolved_spec(request_spec(owner="payments", tables=TABLES))


@pytest.mark.parametrize("condition", [
    "id > 10", "created_at > now() - interval '1 day'", "note = 'it''s; -- not a comment'",
    '"Mixed Case" IS NOT NULL', "(a OR b) AND (c)", "id IN (SELECT id FROM public.lines)",
])
def test_one_expression_passes_the_shape_check(condition):
    assert condition_problem(condition) is None


@pytest.mark.parametrize(("condition", "named"), [
    ("", "empty"), ("   ", "empty"),
    ("true; DROP TABLE public.orders", "';'"),
    ("true -- and the rest", "comment"), ("true /* x */", "comment"),
    ("true) UNION SELECT passwd FROM pg_shadow WHERE (true", "closes a parenthesis"),
    ("(true", "parenthesis open"),
    ("note = 'open", "quote open"),
    ("$$x$$ = 'x'", "'$'"), ("id = $1", "'$'"),
    ("x" * 2001, "longer than"),
    ("id = 1\x00", "NUL"),
])
def test_what_could_leave_the_where_clause_is_refused_by_name(condition, named):
    problem = condition_problem(condition)

    assert problem is not None and named in problem


def test_the_condition_reaches_debezium_in_parentheses():
    # Debezium ANDs it with its chunk bounds: `a OR b` must not become `bounds AND a OR b`.
    assert resync_filter("a OR b") == "(a OR b)"


def test_a_request_without_tables_means_every_captured_table_in_the_spec_order():
    request = parse_request(spec(), {"where": {"public.lines": " qty > 3 "}})

    assert request.tables == TABLES
    assert request.conditions == {"public.lines": "qty > 3"}


@pytest.mark.parametrize(("body", "field", "named"), [
    ({"tables": ["public.payments"]}, "tables", "does not capture public.payments"),
    ({"tables": []}, "tables", "non-empty"),
    ({"tables": "public.orders"}, "tables", "non-empty"),
    ({"tables": ["public.orders"], "where": {"public.lines": "qty > 1"}}, "where", "does not include: public.lines"),
    ({"where": {"public.orders": "id > 1; SELECT 1"}}, "where.public.orders", "';'"),
    ({"where": ["id > 1"]}, "where", "map schema.table"),
    ({"tables": ["public.orders"], "filter": "x"}, "filter", "unknown fields filter"),
])
def test_a_bad_request_names_its_field(body, field, named):
    with pytest.raises(ResyncRefused) as refused:
        parse_request(spec(), body)

    assert refused.value.field == field and named in str(refused.value)


def test_cli_where_options_pair_with_the_table_at_the_same_position():
    assert resync_conditions(["public.orders", "public.lines"], ["", "qty > 1"]) == {"public.lines": "qty > 1"}
    with pytest.raises(BadInput, match="2 --where for 1 --table"):
        resync_conditions(["public.orders"], ["id > 1", "id < 9"])


def test_the_report_names_matched_and_delivered_rows_per_table():
    scanned = {"public.orders": {"status": "SUCCEEDED", "rows": 40}}

    assert resync_counts(scanned, {"public.orders": 41, "public.lines": 0}) == {
        "public.lines": {"matched": 0, "delivered": 0}, "public.orders": {"matched": 41, "delivered": 40}}


# The route, in-process against moto.

def call(target: str, body=None, *, caller: str = "payments-requester") -> tuple[int, dict]:
    raw = b"" if body is None else json.dumps(body).encode()
    event = to_proxy_event("POST", target, [("Content-Type", "application/json")], raw)
    event["requestContext"]["identity"]["userArn"] = principal_arn(caller)
    response = api.handler(event, LocalLambdaContext(aws_request_id=event["requestContext"]["requestId"]))
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def checked(lifecycle_sfn, monkeypatch):
    """An ACTIVE pipeline of two tables; the database check records what it was asked and matches 7 rows a table."""
    registry.register(resolved_spec(request_spec(owner="payments", tables=TABLES)), PROVISIONING,
                      requested_by=principal_arn("payments-requester"))
    registry.mark("orders", "ACTIVE")
    asked = []
    monkeypatch.setattr(lifecycle_routes, "connect_admin", lambda source: contextlib.nullcontext(object()))

    def check(conn, request):
        asked.append(request)
        return {table: 7 for table in request.tables}

    monkeypatch.setattr(lifecycle_routes, "check_conditions", check)
    return lifecycle_sfn, asked


def started(sfn) -> list[dict]:
    arn = os.environ[api.RESYNC_STATE_MACHINE_ARN]
    return [json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])
            for e in sfn.list_executions(stateMachineArn=arn)["executions"]]


def test_a_checked_resync_starts_one_execution_with_the_tables_and_conditions(checked):
    sfn, asked = checked

    status, body = call("/pipelines/orders/resync", {"tables": ["public.lines"], "where": {"public.lines": "qty > 1"}})

    assert status == 202, body
    assert body["action"] == "resync" and body["tables"] == {"public.lines": {"matched": 7}}
    assert [request.conditions for request in asked] == [{"public.lines": "qty > 1"}]
    (execution_input,) = started(sfn)
    assert execution_input["tables"] == ["public.lines"]
    assert execution_input["conditions"] == {"public.lines": "qty > 1"}
    assert execution_input["requested_by"] == principal_arn("payments-requester")
    assert registry.get("orders").lifecycle_action == "resync"


def test_an_empty_body_resyncs_every_table(checked):
    sfn, _ = checked

    status, body = call("/pipelines/orders/resync")

    assert status == 202, body
    assert [execution["tables"] for execution in started(sfn)] == [list(TABLES)]


def test_a_refused_condition_starts_nothing_and_checks_nothing(checked):
    sfn, asked = checked

    status, body = call("/pipelines/orders/resync", {"where": {"public.orders": "true) OR (1=1"}})

    assert status == 422 and body["field"] == "where.public.orders", body
    assert asked == [] and started(sfn) == []
    assert registry.get("orders").lifecycle_execution_arn is None


def test_a_condition_postgresql_refuses_is_a_422_naming_the_table(checked, monkeypatch):
    sfn, _ = checked

    def refuse(conn, request):
        raise ResyncRefused('PostgreSQL refused the condition for public.orders: column "nope" does not exist',
                            "where.public.orders")

    monkeypatch.setattr(lifecycle_routes, "check_conditions", refuse)

    status, body = call("/pipelines/orders/resync", {"where": {"public.orders": "nope > 1"}})

    assert status == 422 and "nope" in body["message"] and started(sfn) == []


def test_another_team_may_not_resync_the_pipeline(checked):
    sfn, asked = checked

    status, _ = call("/pipelines/orders/resync", {}, caller="analytics-requester")

    assert status == 403 and asked == [] and started(sfn) == []


def test_only_an_active_pipeline_is_resynced(checked):
    sfn, asked = checked
    registry.mark("orders", "PAUSED")

    status, body = call("/pipelines/orders/resync", {})

    assert status == 409 and body["status"] == "PAUSED"
    assert "only an ACTIVE pipeline can be resynced" in body["message"]
    assert asked == [] and started(sfn) == []


# A rebuild: the same route with {"rebuild": true}, for a BROKEN pipeline only.

def rebuilds(sfn) -> list[dict]:
    arn = os.environ[api.REBUILD_STATE_MACHINE_ARN]
    return [json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])
            for e in sfn.list_executions(stateMachineArn=arn)["executions"]]


def test_a_broken_pipeline_is_rebuilt_without_any_condition_being_checked(checked):
    sfn, asked = checked
    registry.mark("orders", "BROKEN")

    status, body = call("/pipelines/orders/resync", {"rebuild": True})

    assert status == 202 and body["action"] == "rebuild", body
    assert [execution["spec"]["pipeline_id"] for execution in rebuilds(sfn)] == ["orders"]
    assert asked == [] and started(sfn) == []
    assert registry.get("orders").lifecycle_action == "rebuild"


def test_only_a_broken_pipeline_is_rebuilt(checked):
    sfn, _ = checked

    status, body = call("/pipelines/orders/resync", {"rebuild": True})

    assert status == 409 and "only a BROKEN pipeline can be rebuilt" in body["message"], body
    assert rebuilds(sfn) == []


@pytest.mark.parametrize("body", [{"rebuild": True, "tables": ["public.orders"]}, {"rebuild": "yes"},
                                  {"rebuild": True, "where": {"public.orders": "id > 1"}}])
def test_a_rebuild_takes_nothing_else(checked, body):
    sfn, _ = checked
    registry.mark("orders", "BROKEN")

    status, answer = call("/pipelines/orders/resync", body)

    assert status == 422 and answer["field"] == "rebuild", answer
    assert rebuilds(sfn) == []


def test_a_rebuild_records_active_and_a_failed_one_leaves_it_broken(checked):
    sfn, _ = checked
    registry.mark("orders", "BROKEN")
    _, body = call("/pipelines/orders/resync", {"rebuild": True})
    arn = body["execution_arn"]

    with pytest.raises(registry.LifecycleConflict):
        registry.finish_lifecycle("orders", arn, registry.PipelineStatus.PAUSED)
    entry = registry.finish_lifecycle("orders", arn, registry.PipelineStatus.ACTIVE)

    assert entry.status is registry.PipelineStatus.ACTIVE and entry.lifecycle_execution_arn is None


def test_a_pause_finishing_after_the_pipeline_broke_does_not_hide_it(checked):
    sfn, _ = checked
    _, body = call("/pipelines/orders/pause")
    registry.mark("orders", "BROKEN")  # reconciliation found the slot lost meanwhile

    with pytest.raises(registry.LifecycleConflict, match="became BROKEN"):
        registry.finish_lifecycle("orders", body["execution_arn"], registry.PipelineStatus.PAUSED)
    assert registry.get("orders").status is registry.PipelineStatus.BROKEN


def test_cli_rebuild_takes_no_table():
    from typer.testing import CliRunner

    from cdcflow.cli import app

    result = CliRunner().invoke(app, ["resync", "orders", "--rebuild", "--table", "public.orders"])

    assert result.exit_code == 2 and "--rebuild snapshots every table" in result.output
