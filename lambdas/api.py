"""The pipelines REST API: the Lambda function behind API Gateway's proxy integration.

| route | what it does |
| --- | --- |
| `POST /pipelines` | validates a pipeline spec and starts ProvisionPipeline (202) |
| `GET /pipelines` | lists registered pipelines, paged, filtered by status and owner |
| `GET /pipelines/{id}` | one pipeline: status, current step, last error, execution |
| `DELETE /pipelines/{id}` | starts TeardownPipeline (202) |
| `POST /pipelines/{id}/approval` | answers a pending approval (202) |

Guarantees: starting is idempotent. Execution names are derived from the
request (the spec's fingerprint; the pipeline id and the generation being
torn down), and Step Functions refuses a second execution of one name, so a
retried request answers with the execution the first one started and never
starts another. A workflow that must run again (a teardown that failed or
was stopped) gets a name derived from the closed execution, the same for
every request. Client input is answered with a 4xx whose body is
`{"message", "field"?}` naming the problem, and creates nothing; anything
unexpected is a 500 carrying the request id and no internals.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from lambdas import aws, registry
from lambdas.common import logger
from lambdas.common.observability import METRICS_NAMESPACE
from lambdas.errors import PipelineAlreadyOwned, SpecInvalid
from lambdas.spec import MAX_SPEC_BYTES, PipelineSpec, parse_spec, schema, validation_problems

PROVISION_STATE_MACHINE_ARN = "PROVISION_STATE_MACHINE_ARN"
TEARDOWN_STATE_MACHINE_ARN = "TEARDOWN_STATE_MACHINE_ARN"

Status = registry.PipelineStatus
STATUSES = tuple(status.value for status in Status)
# Statuses whose pipeline no longer holds resources: its owner may provision the id again.
ENDED_STATUSES = registry.REPROVISIONABLE
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
MAX_COMMENT_CHARS = 1000
MAX_PROBLEM_CHARS = 300
# Far above any valid spec, low enough that parsing it is cheap.
MAX_BODY_CHARS = 16 * MAX_SPEC_BYTES
PIPELINE_ID_PATTERN = re.compile(schema()["properties"]["pipeline_id"]["pattern"])
OWNER_PATTERN = re.compile(schema()["properties"]["owner"]["pattern"])
THROTTLING_ERRORS = frozenset({"ThrottlingException", "TooManyRequestsException", "ExecutionLimitExceeded",
                               "ProvisionedThroughputExceededException", "RequestLimitExceeded"})

# The API's resources and their methods, as API Gateway routes them (docs/openapi.yaml lists the same).
RESOURCE_METHODS = {
    "/pipelines": ("GET", "POST"),
    "/pipelines/{id}": ("GET", "DELETE"),
    "/pipelines/{id}/approval": ("POST",),
}
_RESOURCE_PATTERNS = {
    resource: re.compile("^" + re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(resource)) + "$")
    for resource in RESOURCE_METHODS
}

app = APIGatewayRestResolver()
metrics = Metrics(namespace=METRICS_NAMESPACE)


class ApiError(Exception):
    """A 4xx (or 503) answer: `message` names the problem, `field` the request field at fault."""

    def __init__(self, http_status: HTTPStatus, message: str, /, *, field: str | None = None,
                 **details: Any) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message
        self.field = field
        self.details = details


def stepfunctions() -> Any:
    """The Step Functions client, built on first use by the shared factory.

    Its endpoint follows boto3's normal resolution, so `AWS_ENDPOINT_URL_SFN`
    points it at the local engine.
    """
    return aws.client("stepfunctions")


def _state_machine_arn(variable: str) -> str:
    arn = os.environ.get(variable)
    if not arn:
        raise RuntimeError(f"{variable} is not set")
    return arn


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN Step Functions gives execution `name` of a standard state machine."""
    prefix, _, state_machine_name = state_machine_arn.rpartition(":stateMachine:")
    return f"{prefix}:execution:{state_machine_name}:{name}"


def _execution_name_in(arn: str | None, state_machine_arn: str) -> str | None:
    """The name of execution `arn` when it belongs to `state_machine_arn`."""
    prefix = execution_arn(state_machine_arn, "")
    if arn and arn.startswith(prefix):
        return arn[len(prefix):]
    return None


def _short_hash(*parts: object) -> str:
    return hashlib.sha256("|".join(str(part) for part in parts).encode()).hexdigest()[:12]


def _without_unset(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_unset(item) for key, item in value.items() if item is not None}
    return value


def spec_document(spec: PipelineSpec | dict[str, Any]) -> dict[str, Any]:
    """The spec as the workflows' input carries it: defaults filled, unset optionals left out.

    Unset optionals must go: the schema has no nulls, and every step validates
    the spec it is given. Equal specs give equal documents, so a retried
    request sends the same execution input (StartExecution's idempotency
    compares it).
    """
    return _without_unset(spec.to_dict() if isinstance(spec, PipelineSpec) else spec)


def _encode_input(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def start_execution_once(state_machine_arn: str, name: str, execution_input: dict[str, Any]) -> dict[str, str]:
    """Start execution `name` with `execution_input`, or find the one a previous request started.

    Idempotent: Step Functions returns a running execution of the same name
    and input instead of starting another; a closed one makes it refuse with
    ExecutionAlreadyExists, and that execution is described and returned when
    its input is the same. A different input under the name is a 409.
    """
    client = stepfunctions()
    try:
        started = client.start_execution(
            stateMachineArn=state_machine_arn, name=name, input=_encode_input(execution_input),
        )
        return {"execution_arn": started["executionArn"], "status": "RUNNING"}
    except client.exceptions.ExecutionAlreadyExists:
        arn = execution_arn(state_machine_arn, name)
        existing = client.describe_execution(executionArn=arn)
        if json.loads(existing.get("input") or "null") != execution_input:
            raise ApiError(HTTPStatus.CONFLICT, f"execution {name!r} already exists with a different input",
                           execution_arn=arn) from None
        return {"execution_arn": arn, "status": existing["status"]}


def provision_execution_name(
    spec: PipelineSpec, fingerprint: str, entry: registry.RegistryEntry | None, state_machine_arn: str,
) -> str:
    """The ProvisionPipeline execution name for `spec`, given the pipeline's registry entry.

    The same for every retry of one request: the spec's fingerprint names the
    first provisioning; while the pipeline is live, the execution the registry
    records is the answer; once it has ended (DELETED or FAILED), a new
    generation gets a name of its own, derived from the ended entry so that
    retries agree on it.
    """
    base = spec.names.execution_name(fingerprint)
    if entry is None:
        # A first provisioning, or one whose entry was lost: a closed execution of
        # the name is not this request's, and answering with it would leave the claim
        # PROVISIONING behind an old result.
        return named_executions(base, state_machine_arn).next_name
    if entry.status in ENDED_STATUSES:
        return f"{base}-{_short_hash(entry.execution_arn, entry.updated_at)[:8]}"
    return _execution_name_in(entry.execution_arn, state_machine_arn) or base


@dataclass(frozen=True)
class NamedExecutions:
    """The executions of one state machine named after one base name."""

    latest: dict[str, Any] | None  # DescribeExecution of the newest one, None when there is none
    next_name: str  # the newest one's name while it runs, else the first name no execution holds

    @property
    def running(self) -> bool:
        return self.latest is not None and self.latest["status"] == "RUNNING"


def named_executions(base: str, state_machine_arn: str) -> NamedExecutions:
    """Follow `base` and the names derived from it while closed executions hold them.

    Step Functions keeps a closed execution's name for 90 days, so a workflow
    that must run again (a teardown that failed or was stopped, a provisioning
    whose registry entry was lost) needs a new name; deriving it from the
    closed execution gives every concurrent or retried request the same one.
    """
    client = stepfunctions()
    latest, name = None, base
    while True:
        try:
            described = client.describe_execution(executionArn=execution_arn(state_machine_arn, name))
        except client.exceptions.ExecutionDoesNotExist:
            return NamedExecutions(latest, name)
        latest = described
        if described["status"] == "RUNNING":
            return NamedExecutions(latest, name)
        name = f"{base}-{_short_hash(described['executionArn'], described.get('stopDate'))[:8]}"


def _has_ended(arn: str) -> bool:
    """True once execution `arn` exists and is closed.

    One that does not exist yet has not ended: the API claims the registry
    entry just before it starts the execution the entry names.
    """
    client = stepfunctions()
    try:
        return client.describe_execution(executionArn=arn)["status"] != "RUNNING"
    except client.exceptions.ExecutionDoesNotExist:
        return False


def teardown_executions(entry: registry.RegistryEntry) -> NamedExecutions:
    """The TeardownPipeline executions of the pipeline generation `entry` records.

    Named after the pipeline id and the registry's current execution, so a
    retried DELETE names the same execution and a pipeline provisioned again
    later gets a new one; a teardown that failed or was stopped is followed by
    one under a name derived from it.
    """
    base = f"{entry.pipeline_id}-teardown-{_short_hash(entry.pipeline_id, entry.execution_arn, entry.created_at)}"
    return named_executions(base, _state_machine_arn(TEARDOWN_STATE_MACHINE_ARN))


def _json_body() -> Any:
    """The request body as JSON; 400 naming the problem when it is not."""
    event = app.current_event
    raw = event.body
    if raw is None or raw == "":
        raise ApiError(HTTPStatus.BAD_REQUEST, "the request body is empty; a JSON object is expected", field="body")
    if len(raw) > MAX_BODY_CHARS:
        raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the request body is larger than {MAX_BODY_CHARS} bytes",
                       field="body")
    try:
        text = event.decoded_body if event.is_base64_encoded else raw
        return json.loads(text)
    except (ValueError, binascii.Error, RecursionError) as error:
        # ValueError covers JSONDecodeError and undecodable UTF-8.
        reason = error.msg if isinstance(error, json.JSONDecodeError) else "not valid JSON"
        raise ApiError(HTTPStatus.BAD_REQUEST, f"the request body is not valid JSON: {reason}", field="body") from None


def _problem(text: str) -> dict[str, str]:
    """`"source.tables[1]: ..."` as {"field", "message"}; messages quoting a large value are cut short."""
    field, _, message = text.partition(": ")
    if len(message) > MAX_PROBLEM_CHARS:
        message = message[:MAX_PROBLEM_CHARS] + "..."
    return {"field": field, "message": message}


def _pipeline_id(raw: str) -> str:
    if not PIPELINE_ID_PATTERN.fullmatch(raw):
        raise ApiError(HTTPStatus.NOT_FOUND, f"no pipeline {raw[:80]!r} (pipeline ids match "
                       f"{PIPELINE_ID_PATTERN.pattern})", field="id")
    return raw


def _entry_or_404(pipeline_id: str) -> registry.RegistryEntry:
    entry = registry.get(_pipeline_id(pipeline_id))
    if entry is None:
        raise ApiError(HTTPStatus.NOT_FOUND, f"no pipeline {pipeline_id!r}", field="id")
    return entry


def _summary(entry: registry.RegistryEntry) -> dict[str, Any]:
    summary = {
        "pipeline_id": entry.pipeline_id,
        "owner": entry.owner,
        "status": entry.status.value,
        "current_step": entry.current_step,
        "last_error": entry.last_error,
        "execution_arn": entry.execution_arn,
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
    }
    if entry.slot_lag_bytes is not None:
        summary["slot_lag_bytes"] = entry.slot_lag_bytes
    return summary


def _accepted(document: dict[str, Any]) -> Response:
    return Response(status_code=HTTPStatus.ACCEPTED, content_type=content_types.APPLICATION_JSON, body=document)


def _check_claim(spec: PipelineSpec, fingerprint: str, entry: registry.RegistryEntry) -> None:
    """409 unless `spec` may be provisioned over the pipeline's current entry.

    The same checks RegisterPipeline makes, made before anything starts: an id
    belongs to one owner; a live pipeline is only re-requested with its own
    spec; one being torn down waits until it is DELETED.
    """
    pipeline_id = spec.pipeline_id
    if entry.owner != spec.owner:
        raise ApiError(HTTPStatus.CONFLICT, f"pipeline {pipeline_id!r} is owned by {entry.owner!r}",
                       field="owner", status=entry.status.value)
    if entry.status in ENDED_STATUSES:
        return
    if entry.spec_fingerprint != fingerprint:
        raise ApiError(HTTPStatus.CONFLICT,
                       f"pipeline {pipeline_id!r} is {entry.status.value} with a different spec; "
                       "tear it down before provisioning another", field="pipeline_id", status=entry.status.value)
    if entry.status is Status.DELETING:
        raise ApiError(HTTPStatus.CONFLICT,
                       f"pipeline {pipeline_id!r} is being torn down; provision it again once it is DELETED",
                       field="pipeline_id", status=entry.status.value)


@app.post("/pipelines")
def provision_pipeline() -> Response:
    """Start provisioning the pipeline a spec describes; idempotent per spec."""
    document = _json_body()
    problems = [_problem(problem) for problem in validation_problems(document)]
    if problems:
        summary = "; ".join(f"{problem['field']}: {problem['message']}" for problem in problems)
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, f"the pipeline spec is invalid: {summary}",
                       field=problems[0]["field"], problems=problems)
    try:
        spec = parse_spec(document)
    except SpecInvalid as error:
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, f"the pipeline spec is invalid: {error}",
                       field=_problem(str(error))["field"], problems=[_problem(str(error))]) from None

    fingerprint = spec.fingerprint()
    entry = registry.get(spec.pipeline_id)
    if entry is not None:
        _check_claim(spec, fingerprint, entry)

    state_machine_arn = _state_machine_arn(PROVISION_STATE_MACHINE_ARN)
    name = provision_execution_name(spec, fingerprint, entry, state_machine_arn)
    # Claim the id before starting anything: of two different specs arriving at
    # once, exactly one gets the claim (a conditional write) and the other a 409.
    # RegisterPipeline finds the claim made for its own execution and goes on.
    try:
        registry.register(spec, execution_arn(state_machine_arn, name))
    except PipelineAlreadyOwned as error:
        raise ApiError(HTTPStatus.CONFLICT, str(error), field="pipeline_id") from None
    execution = start_execution_once(state_machine_arn, name, {"spec": spec_document(spec)})
    logger.info("provisioning requested", pipeline_id=spec.pipeline_id, execution_arn=execution["execution_arn"])
    metrics.add_metric(name="ProvisionRequested", unit=MetricUnit.Count, value=1)
    return _accepted({"pipeline_id": spec.pipeline_id, **execution})


def _page_size(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE_SIZE
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"limit must be an integer from 1 to {MAX_PAGE_SIZE}", field="limit")
    return int(raw)


@app.get("/pipelines")
def list_pipelines() -> dict[str, Any]:
    """A page of registered pipelines, optionally only those of one status and/or owner."""
    event = app.current_event
    status = event.get_query_string_value("status")
    owner = event.get_query_string_value("owner")
    token = event.get_query_string_value("next_token")
    if status is not None and status not in STATUSES:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"status must be one of {', '.join(STATUSES)}", field="status")
    if owner is not None and not OWNER_PATTERN.fullmatch(owner):
        raise ApiError(HTTPStatus.BAD_REQUEST, f"owner must match {OWNER_PATTERN.pattern}", field="owner")
    limit = _page_size(event.get_query_string_value("limit"))
    foreign_token = ApiError(HTTPStatus.BAD_REQUEST, "next_token is not a token this API issued", field="next_token")
    try:
        page = registry.list_entries(status=status, owner=owner, limit=limit, start_key=token or None)
    except ValueError:
        raise foreign_token from None
    except ClientError as error:
        # A forged token can decode to a key the table rejects.
        if token and error.response["Error"]["Code"] == "ValidationException":
            raise foreign_token from None
        raise
    return {"pipelines": [_summary(entry) for entry in page.entries], "next_token": page.next_key}


@app.get("/pipelines/<pipeline_id>")
def describe_pipeline(pipeline_id: str) -> dict[str, Any]:
    """One pipeline as the registry records it, with its spec."""
    entry = _entry_or_404(pipeline_id)
    details = {**_summary(entry), "spec_fingerprint": entry.spec_fingerprint, "spec": spec_document(entry.spec)}
    if entry.status in (Status.DELETING, Status.DELETED):
        # The registry records the provisioning; the teardown's name is derived from it.
        teardowns = teardown_executions(entry)
        details["teardown_execution_arn"] = (
            teardowns.latest["executionArn"] if teardowns.latest
            else execution_arn(_state_machine_arn(TEARDOWN_STATE_MACHINE_ARN), teardowns.next_name))
    return details


def _keep_topics() -> bool:
    raw = app.current_event.get_query_string_value("keep_topics")
    if raw is None:
        return False
    if raw.lower() not in ("true", "false"):
        raise ApiError(HTTPStatus.BAD_REQUEST, "keep_topics must be true or false", field="keep_topics")
    return raw.lower() == "true"


@app.delete("/pipelines/<pipeline_id>")
def teardown_pipeline(pipeline_id: str) -> Response:
    """Start tearing a pipeline down; a retried request answers with the same teardown."""
    keep_topics = _keep_topics()
    entry = _entry_or_404(pipeline_id)
    teardowns = teardown_executions(entry)
    # An entry left PROVISIONING or DELETING by a workflow that was stopped (or
    # died without recording its outcome) is not refused: the teardown cleans up
    # whatever that workflow left.
    refusal = None
    if entry.status is Status.PROVISIONING and not _has_ended(entry.execution_arn):
        refusal = "is being provisioned; tear it down once it is ACTIVE or FAILED"
    elif entry.status is Status.DELETING and (teardowns.latest is None or teardowns.running):
        refusal = "is already being torn down"
    elif entry.status is Status.DELETED:
        refusal = "is already deleted"
    if refusal:
        raise ApiError(HTTPStatus.CONFLICT, f"pipeline {pipeline_id!r} {refusal}", field="id",
                       status=entry.status.value)
    execution = start_execution_once(
        _state_machine_arn(TEARDOWN_STATE_MACHINE_ARN),
        teardowns.next_name,
        {"spec": spec_document(entry.spec), "keep_topics": keep_topics},
    )
    logger.info("teardown requested", pipeline_id=pipeline_id, execution_arn=execution["execution_arn"])
    metrics.add_metric(name="TeardownRequested", unit=MetricUnit.Count, value=1)
    return _accepted({"pipeline_id": pipeline_id, **execution})


def _approval_decision() -> tuple[bool, str | None]:
    body = _json_body()
    if not isinstance(body, dict):
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, "the body must be a JSON object with 'approved'",
                       field="(body)")
    unknown = sorted(set(body) - {"approved", "comment"})
    if unknown:
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, f"unknown field {unknown[0]!r}", field=unknown[0])
    approved = body.get("approved")
    if not isinstance(approved, bool):
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, "approved must be true or false", field="approved")
    comment = body.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS):
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, f"comment must be a string of at most {MAX_COMMENT_CHARS} "
                       "characters", field="comment")
    return approved, comment


@app.post("/pipelines/<pipeline_id>/approval")
def answer_approval(pipeline_id: str) -> Response:
    """Approve or reject the step a pipeline's workflow is waiting on.

    The stored task token is taken atomically, so two answers cannot both be
    delivered; if Step Functions cannot be told for a transient reason, the
    token is put back for the next attempt.
    """
    approved, comment = _approval_decision()
    _entry_or_404(pipeline_id)
    task_token = registry.pop_task_token(pipeline_id)
    if task_token is None:
        raise ApiError(HTTPStatus.CONFLICT, f"pipeline {pipeline_id!r} is not waiting for an approval", field="id")
    client = stepfunctions()
    try:
        if approved:
            decision = {"approved": True, **({"comment": comment} if comment else {})}
            client.send_task_success(taskToken=task_token, output=json.dumps(decision))
        else:
            client.send_task_failure(taskToken=task_token, error="ApprovalRejected",
                                     cause=comment or "rejected without a reason")
    except (client.exceptions.TaskTimedOut, client.exceptions.TaskDoesNotExist, client.exceptions.InvalidToken):
        raise ApiError(HTTPStatus.CONFLICT, f"the approval pipeline {pipeline_id!r} waited for has expired",
                       field="id") from None
    except Exception:
        registry.store_task_token(pipeline_id, task_token)
        raise
    logger.info("approval answered", pipeline_id=pipeline_id, approved=approved)
    metrics.add_metric(name="ApprovalAnswered", unit=MetricUnit.Count, value=1)
    return _accepted({"pipeline_id": pipeline_id, "approved": approved})


def _error_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


@app.exception_handler(ApiError)
def _answer_api_error(error: ApiError) -> Response:
    body: dict[str, Any] = {"message": error.message}
    if error.field is not None:
        body["field"] = error.field
    return _error_response(error.http_status, {**body, **error.details})


@app.not_found
def _answer_unknown_route(_: NotFoundError) -> Response:
    """405 naming the allowed methods for a known resource, else 404.

    A known resource and method land here too when the pipeline id holds
    characters no route accepts: no such pipeline can exist.
    """
    event = app.current_event
    for resource, pattern in _RESOURCE_PATTERNS.items():
        match = pattern.match(event.path)
        if match and event.http_method in RESOURCE_METHODS[resource]:
            return _error_response(HTTPStatus.NOT_FOUND, {"message": f"no pipeline {match['id'][:80]!r}",
                                                          "field": "id"})
        if match:
            allowed = ", ".join(RESOURCE_METHODS[resource])
            return _error_response(HTTPStatus.METHOD_NOT_ALLOWED,
                                   {"message": f"{event.http_method} is not allowed on {resource}; use {allowed}"},
                                   headers={"Allow": allowed})
    return _error_response(HTTPStatus.NOT_FOUND, {"message": f"no route {event.http_method} {event.path}"})


def _request_id() -> str:
    return app.current_event.request_context.request_id or app.lambda_context.aws_request_id


@app.exception_handler(Exception)
def _answer_unexpected(error: Exception) -> Response:
    request_id = _request_id()
    if isinstance(error, ClientError) and error.response["Error"]["Code"] in THROTTLING_ERRORS:
        logger.warning("throttled", error_code=error.response["Error"]["Code"], request_id=request_id)
        return _error_response(HTTPStatus.SERVICE_UNAVAILABLE,
                               {"message": "the service is busy; retry the request", "request_id": request_id},
                               headers={"Retry-After": "5"})
    logger.exception("request failed", request_id=request_id)
    return _error_response(HTTPStatus.INTERNAL_SERVER_ERROR,
                           {"message": "internal error; quote the request id when reporting it",
                            "request_id": request_id})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
