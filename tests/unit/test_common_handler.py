"""step_handler: spec parsing, payload checks, logging keys, metrics, tracing, error mapping."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import psycopg
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from kafka import errors as kafka_errors

from lambdas.common import IdempotencyNotConfigured, TaskPayloadInvalid, step_handler
from lambdas.common.failures import translate
from lambdas.common.observability import logger, tracer
from lambdas.errors import (
    AuthenticationFailed,
    AwsApiThrottled,
    DatabaseUnavailable,
    KafkaUnavailable,
    PipelineAlreadyOwned,
    SpecInvalid,
)
from tests.unit.factories import raw_spec

pytestmark = pytest.mark.unit

SPEC = raw_spec()


def task(**fields) -> dict:
    return {"spec": SPEC, "execution_id": "arn:aws:states:us-east-1:0:execution:p:e1", "state_name": "CreateSlot", **fields}


@dataclass
class MinimalContext:
    """What the local engine passes: the attributes Powertools reads, nothing more."""

    function_name: str = "cdcflow-create-slot"
    aws_request_id: str = "req-1"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:cdcflow-create-slot"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture(autouse=True)
def no_idempotency_table(monkeypatch):
    """These tests are about the handler itself; idempotency has its own tests."""
    monkeypatch.delenv("IDEMPOTENCY_TABLE", raising=False)
    monkeypatch.setenv("POWERTOOLS_IDEMPOTENCY_DISABLED", "1")


@pytest.fixture
def log_lines():
    """The JSON lines the shared logger writes during the test."""
    buffer = io.StringIO()
    previous = logger.registered_handler.setStream(buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    logger.registered_handler.setStream(previous)


def emf_records(captured: str) -> list[dict]:
    return [json.loads(line) for line in captured.splitlines() if line.startswith('{"_aws"')]


def test_parses_the_spec_and_returns_the_result():
    @step_handler
    def handler(spec, event):
        return {"slot": spec.names.replication_slot, "tables": list(spec.source.tables), "extra": event["extra"]}

    assert handler(task(extra=7), MinimalContext()) == {
        "slot": "cdcflow_orders",
        "tables": ["public.orders"],
        "extra": 7,
    }


def test_invalid_spec_raises_spec_invalid_naming_the_field():
    calls = []

    @step_handler
    def handler(spec, event):
        calls.append(spec)
        return {}

    bad = {**SPEC, "source": {**SPEC["source"], "port": "5432"}}
    with pytest.raises(SpecInvalid, match=r"source\.port"):
        handler(task(spec=bad), None)
    with pytest.raises(SpecInvalid, match="spec: missing"):
        handler({"execution_id": "e", "state_name": "s"}, None)
    assert calls == []


@pytest.mark.parametrize("missing", ["execution_id", "state_name"])
def test_idempotent_step_requires_execution_id_and_state_name(missing):
    @step_handler
    def handler(spec, event):
        return {}

    event = task()
    del event[missing]
    with pytest.raises(TaskPayloadInvalid, match=missing):
        handler(event, None)


def test_non_idempotent_check_runs_without_execution_fields():
    @step_handler(idempotent=False)
    def check(spec, event):
        return {"ready": False, "attempt": event["attempt"]}

    assert check({"spec": SPEC, "attempt": 3}, None) == {"ready": False, "attempt": 3}


def test_result_must_be_a_json_object():
    @step_handler
    def returns_list(spec, event):
        return ["not", "an", "object"]

    @step_handler
    def returns_set(spec, event):
        return {"tables": {"a"}}

    with pytest.raises(TypeError, match="not a JSON object"):
        returns_list(task(), None)
    with pytest.raises(TypeError, match="not JSON-serializable"):
        returns_set(task(), None)


def test_every_line_carries_pipeline_execution_step_and_context(log_lines):
    @step_handler
    def handler(spec, event):
        logger.info("creating slot")
        return {}

    handler(task(), MinimalContext())
    lines = log_lines()
    inner = next(line for line in lines if line["message"] == "creating slot")
    assert inner["service"] == "cdcflow"
    assert inner["pipeline_id"] == "orders"
    assert inner["execution_id"] == "arn:aws:states:us-east-1:0:execution:p:e1"
    assert inner["step"] == "CreateSlot"
    assert inner["function_name"] == "cdcflow-create-slot"
    assert inner["function_request_id"] == "req-1"
    assert [line["message"] for line in lines] == ["step started", "creating slot", "step succeeded"]


def test_keys_do_not_leak_into_the_next_invocation(log_lines):
    @step_handler
    def handler(spec, event):
        return {}

    handler(task(), MinimalContext())
    logger.info("between invocations")
    between = next(line for line in log_lines() if line["message"] == "between invocations")
    assert "pipeline_id" not in between and "step" not in between


def test_success_and_failure_metrics_carry_the_step_dimension(capsys):
    @step_handler
    def ok(spec, event):
        return {}

    @step_handler
    def fails(spec, event):
        raise PipelineAlreadyOwned("pipeline 'orders' is owned by team-y")

    ok(task(), None)
    with pytest.raises(PipelineAlreadyOwned):
        fails(task(state_name="RegisterPipeline"), None)

    records = emf_records(capsys.readouterr().out)
    assert [(r["step"], "StepSucceeded" in r, "StepFailed" in r) for r in records] == [
        ("CreateSlot", True, False),
        ("RegisterPipeline", False, True),
    ]
    for record in records:
        directive = record["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "cdcflow"
        assert "step" in directive["Dimensions"][0]
    assert records[1]["error"] == "PipelineAlreadyOwned"


def test_tracer_is_disabled_outside_lambda_and_the_handler_still_runs():
    @step_handler
    def handler(spec, event):
        tracer.put_annotation(key="slot", value="cdcflow_orders")  # a no-op without X-Ray
        return {"ok": True}

    assert tracer._is_tracer_disabled() is True
    assert handler(task(), MinimalContext()) == {"ok": True}


def test_idempotency_must_be_configured_or_explicitly_disabled(monkeypatch):
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED")
    calls = []

    @step_handler
    def handler(spec, event):
        calls.append(1)
        return {}

    with pytest.raises(IdempotencyNotConfigured, match="IDEMPOTENCY_TABLE"):
        handler(task(), None)
    assert calls == []


def test_named_errors_propagate_unchanged():
    error = PipelineAlreadyOwned("pipeline 'orders' is owned by team-y")

    @step_handler
    def handler(spec, event):
        raise error

    with pytest.raises(PipelineAlreadyOwned) as raised:
        handler(task(), None)
    assert raised.value is error


def client_error(code: str, status: int = 400, operation: str = "GetSecretValue") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


@pytest.mark.parametrize(
    "error",
    [
        client_error("ThrottlingException"),
        client_error("ProvisionedThroughputExceededException", operation="PutItem"),
        client_error("SomethingNew", status=503),
        EndpointConnectionError(endpoint_url="https://secretsmanager.us-east-1.amazonaws.com"),
    ],
    ids=["throttling", "dynamodb-throughput", "5xx", "endpoint"],
)
def test_transient_aws_errors_become_aws_api_throttled(error):
    @step_handler
    def handler(spec, event):
        raise error

    with pytest.raises(AwsApiThrottled) as raised:
        handler(task(), None)
    assert raised.value.__cause__ is error


def test_permanent_aws_errors_are_not_retried_as_throttling():
    error = client_error("AccessDeniedException")
    assert translate(error) is error


def test_driver_errors_map_to_the_retry_policies():
    assert isinstance(translate(psycopg.OperationalError("connection refused")), DatabaseUnavailable)
    assert isinstance(translate(kafka_errors.KafkaTimeoutError("no broker")), KafkaUnavailable)
    unknown_topic = kafka_errors.InvalidTopicError("bad name")
    assert translate(unknown_topic) is unknown_topic


def test_rejected_database_login_is_permanent():
    class LoginRejected(psycopg.OperationalError):
        sqlstate = "28P01"

    assert isinstance(translate(LoginRejected("password authentication failed")), AuthenticationFailed)


def test_unexpected_errors_keep_their_name_and_are_logged(log_lines):
    @step_handler
    def handler(spec, event):
        raise KeyError("slot_name")

    with pytest.raises(KeyError):
        handler(task(), None)
    failure = next(line for line in log_lines() if line["message"] == "step failed unexpectedly")
    assert failure["error"] == "KeyError"
    assert "KeyError" in failure["exception"]
