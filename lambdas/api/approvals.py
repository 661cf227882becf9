"""The approval route: a person's answer to the step a pipeline's workflow is waiting on."""

from __future__ import annotations

import json
from http import HTTPStatus

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit

from lambdas import connections, registry
from lambdas.api import authz, request
from lambdas.api.answers import ApiError, accepted, metrics
from lambdas.common import logger
from lambdas.executions import stepfunctions

router = APIGatewayRouter()


@router.post("/pipelines/<pipeline_id>/approval")
def answer_approval(pipeline_id: str) -> Response:
    """Approve or reject the step a pipeline's workflow is waiting on.

    The stored task token is taken atomically, so two answers cannot both be
    delivered; if Step Functions cannot be told for a transient reason, the
    token is put back for the next attempt.
    """
    asker = request.caller(router.current_event)
    approved, comment = request.approval_decision(router.current_event)
    entry = request.registered_entry(pipeline_id)
    source_connection = entry.spec["source"].get("connection")
    authz.check_approve(asker, entry, connections.get_connection(source_connection) if source_connection else None)
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
    logger.info("approval answered", pipeline_id=pipeline_id, approved=approved, approver=asker.arn)
    metrics.add_metric(name="ApprovalAnswered", unit=MetricUnit.Count, value=1)
    return accepted({"pipeline_id": pipeline_id, "approved": approved})
