"""The pipelines REST API: the Lambda function behind API Gateway's proxy integration.

| route | what it does | module |
| --- | --- | --- |
| `POST /pipelines` | validates a pipeline spec and starts ProvisionPipeline (202) | `pipelines` |
| `GET /pipelines` | lists registered pipelines, paged, filtered by status and owner | `pipelines` |
| `GET /pipelines/{id}` | one pipeline: status, current step, last error, execution | `pipelines` |
| `DELETE /pipelines/{id}` | starts TeardownPipeline (202) | `pipelines` |
| `POST /pipelines/{id}/approval` | answers a pending approval (202) | `approvals` |
| `POST /pipelines/{id}/pause` | starts PausePipeline on an ACTIVE pipeline (202) | `lifecycle_routes` |
| `POST /pipelines/{id}/resume` | starts ResumePipeline on a PAUSED pipeline (202) | `lifecycle_routes` |
| `PATCH`, `PUT /pipelines/{id}` | starts UpdatePipeline on an ACTIVE pipeline (202) | `lifecycle_routes` |
| `POST /pipelines/{id}/resync` | checks the conditions, starts ResyncPipeline on an ACTIVE pipeline (202); with `rebuild`, RebuildPipeline on a BROKEN one | `lifecycle_routes` |
| `POST /connections` | registers a source, Kafka cluster or sink (admins) | `connection_routes` |
| `GET /connections` | the connections the caller's teams may use | `connection_routes` |
| `GET /connections/{name}` | one connection | `connection_routes` |
| `DELETE /connections/{name}` | removes a connection no pipeline uses (admins) | `connection_routes` |

Every route first establishes who calls (`request.caller`: the IAM
principal API Gateway authenticated, mapped to teams and roles) and applies
`authz`'s rules before it reads or changes anything; a denial is a 403
naming what is missing.

Each group of routes is a Powertools `Router` in its own module, included by
the resolver here; `request` reads and checks what a request carries,
`answers` builds what the API sends back, and `lambdas.executions` names the
executions the routes start.

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

import re
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from lambdas.api import approvals, connection_routes, lifecycle_routes, pipelines
from lambdas.api.authz import Forbidden
from lambdas.api.answers import ApiError, error_response, metrics
from lambdas.common import logger

# The environment the function reads its state machines from.
from lambdas.executions import (
    PAUSE_STATE_MACHINE_ARN, PROVISION_STATE_MACHINE_ARN, REBUILD_STATE_MACHINE_ARN, RESUME_STATE_MACHINE_ARN,
    RESYNC_STATE_MACHINE_ARN,
    TEARDOWN_STATE_MACHINE_ARN, UPDATE_STATE_MACHINE_ARN,
)

__all__ = ["PAUSE_STATE_MACHINE_ARN", "PROVISION_STATE_MACHINE_ARN", "REBUILD_STATE_MACHINE_ARN", "RESOURCE_METHODS",
           "RESUME_STATE_MACHINE_ARN",
           "RESYNC_STATE_MACHINE_ARN", "TEARDOWN_STATE_MACHINE_ARN", "UPDATE_STATE_MACHINE_ARN", "app", "handler"]

THROTTLING_ERRORS = frozenset({"ThrottlingException", "TooManyRequestsException", "ExecutionLimitExceeded",
                               "ProvisionedThroughputExceededException", "RequestLimitExceeded"})

# The API's resources and their methods, as API Gateway routes them (docs/openapi.yaml lists the same).
RESOURCE_METHODS = {
    "/pipelines": ("GET", "POST"),
    "/pipelines/{id}": ("GET", "PATCH", "PUT", "DELETE"),
    "/pipelines/{id}/approval": ("POST",),
    "/pipelines/{id}/pause": ("POST",),
    "/pipelines/{id}/resume": ("POST",),
    "/pipelines/{id}/resync": ("POST",),
    "/connections": ("GET", "POST"),
    "/connections/{name}": ("GET", "DELETE"),
}
_RESOURCE_PATTERNS = {
    resource: re.compile("^" + re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(resource)) + "$")
    for resource in RESOURCE_METHODS
}

app = APIGatewayRestResolver()
app.include_router(pipelines.router)
app.include_router(approvals.router)
app.include_router(lifecycle_routes.router)
app.include_router(connection_routes.router)


@app.exception_handler(ApiError)
def _answer_api_error(error: ApiError) -> Response:
    return error_response(error.http_status, error.body())


@app.exception_handler(Forbidden)
def _answer_forbidden(error: Forbidden) -> Response:
    body = {"message": str(error), **({"field": error.field} if error.field else {})}
    logger.info("request denied", reason=str(error))
    return error_response(HTTPStatus.FORBIDDEN, body)


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
            (parameter, value), = match.groupdict().items()
            thing = "pipeline" if parameter == "id" else "connection"
            return error_response(HTTPStatus.NOT_FOUND, {"message": f"no {thing} {value[:80]!r}",
                                                         "field": parameter})
        if match:
            allowed = ", ".join(RESOURCE_METHODS[resource])
            return error_response(HTTPStatus.METHOD_NOT_ALLOWED,
                                  {"message": f"{event.http_method} is not allowed on {resource}; use {allowed}"},
                                  headers={"Allow": allowed})
    return error_response(HTTPStatus.NOT_FOUND, {"message": f"no route {event.http_method} {event.path}"})


def _request_id() -> str:
    return app.current_event.request_context.request_id or app.lambda_context.aws_request_id


@app.exception_handler(Exception)
def _answer_unexpected(error: Exception) -> Response:
    request_id = _request_id()
    if isinstance(error, ClientError) and error.response["Error"]["Code"] in THROTTLING_ERRORS:
        logger.warning("throttled", error_code=error.response["Error"]["Code"], request_id=request_id)
        return error_response(HTTPStatus.SERVICE_UNAVAILABLE,
                              {"message": "the service is busy; retry the request", "request_id": request_id},
                              headers={"Retry-After": "5"})
    logger.exception("request failed", request_id=request_id)
    return error_response(HTTPStatus.INTERNAL_SERVER_ERROR,
                          {"message": "internal error; quote the request id when reporting it",
                           "request_id": request_id})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
