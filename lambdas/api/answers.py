"""What the API answers: accepted requests, pipelines as the API shows them, and errors.

A client's mistake is an `ApiError` raised from the route; the resolver turns
it into a 4xx (or 503) whose body is `{"message", "field"?, ...}` naming the
problem. `metrics` is the one Metrics instance the handler flushes after each
request.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import Response, content_types

from lambdas import registry
from lambdas.common.observability import METRICS_NAMESPACE

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

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return {**body, **self.details}


def accepted(document: dict[str, Any]) -> Response:
    """202: the workflow the request asked for has started (or had already)."""
    return Response(status_code=HTTPStatus.ACCEPTED, content_type=content_types.APPLICATION_JSON, body=document)


def error_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


def pipeline_summary(entry: registry.RegistryEntry) -> dict[str, Any]:
    """A registry entry as `GET /pipelines` lists it."""
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
    if entry.lifecycle_execution_arn is not None:
        summary["lifecycle_execution_arn"] = entry.lifecycle_execution_arn
    if entry.backfill is not None:
        summary["backfill"] = entry.backfill
    return summary
