"""The `/pipelines` routes: provision, list, describe and tear down.

Starting is idempotent: the execution's name is derived from the request
(`lambdas.executions`), so a retried request answers with the execution the
first one started and never starts another.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from lambdas import alarms, registry
from lambdas.api import authz, pipeline_details, request
from lambdas.api.answers import ApiError, accepted, metrics, pipeline_summary
from lambdas.common import logger
from lambdas.errors import PipelineAlreadyOwned
from lambdas.executions import (
    PROVISION_STATE_MACHINE_ARN,
    TEARDOWN_STATE_MACHINE_ARN,
    ExecutionInputDiffers,
    execution_arn,
    has_ended,
    provision_execution_name,
    start_execution_once,
    state_machine_arn_from,
    stepfunctions,
    teardown_executions,
)
from lambdas.pipeline_request import request_view
from lambdas.spec import PipelineSpec, spec_document

Status = registry.PipelineStatus
# Statuses whose pipeline no longer holds resources: its owner may provision the id again.
ENDED_STATUSES = registry.REPROVISIONABLE

router = APIGatewayRouter()


@router.post("/pipelines")
def provision_pipeline() -> Response:
    """Start provisioning the pipeline a team's spec describes; idempotent per spec."""
    asker = request.caller(router.current_event)
    spec = request.requested_spec(request.json_body(router.current_event), asker)
    fingerprint = spec.fingerprint()
    entry = registry.get(spec.pipeline_id)
    if entry is not None:
        _check_claim(spec, fingerprint, entry)

    state_machine_arn = state_machine_arn_from(PROVISION_STATE_MACHINE_ARN)
    name = provision_execution_name(spec, fingerprint, entry, state_machine_arn)
    # Claim the id before starting anything: of two different specs arriving at
    # once, exactly one gets the claim (a conditional write) and the other a 409.
    # RegisterPipeline finds the claim made for its own execution and goes on.
    try:
        registry.register(spec, execution_arn(state_machine_arn, name), requested_by=asker.arn)
    except PipelineAlreadyOwned as error:
        raise ApiError(HTTPStatus.CONFLICT, str(error), field="pipeline_id") from None
    execution = _start(state_machine_arn, name, {"spec": spec_document(spec)})
    logger.info("provisioning requested", pipeline_id=spec.pipeline_id, execution_arn=execution["execution_arn"])
    metrics.add_metric(name="ProvisionRequested", unit=MetricUnit.Count, value=1)
    return accepted({"pipeline_id": spec.pipeline_id, **execution})


@router.get("/pipelines")
def list_pipelines() -> dict[str, Any]:
    """A page of the pipelines the caller may see, optionally only those of one status and/or owner."""
    asker = request.caller(router.current_event)
    status, owner, limit, token = request.listing_filters(router.current_event)
    owners = authz.visible_owners(asker)
    if owner is not None and owners is not None and owner not in owners:
        raise authz.Forbidden(f"{asker.arn} is not a member of team {owner!r}", field="owner")
    foreign_token = ApiError(HTTPStatus.BAD_REQUEST, "next_token is not a token this API issued", field="next_token")
    try:
        page = registry.list_entries(status=status, owner=owner, owners=owners, limit=limit, start_key=token or None)
    except ValueError:
        raise foreign_token from None
    except ClientError as error:
        # A forged token can decode to a key the table rejects.
        if token and error.response["Error"]["Code"] == "ValidationException":
            raise foreign_token from None
        raise
    listing: dict[str, Any] = {"pipelines": [pipeline_summary(entry) for entry in page.entries],
                               "next_token": page.next_key}
    try:
        firing = alarms.firing_alarms() if page.entries else {}
    except (BotoCoreError, ClientError) as exc:
        # The list still answers; each pipeline's page says more.
        listing["alarms_error"] = f"CloudWatch alarms could not be read: {type(exc).__name__}"
    else:
        for summary in listing["pipelines"]:
            summary["alarms_firing"] = firing.get(summary["pipeline_id"], [])
    return listing


@router.get("/pipelines/<pipeline_id>")
def describe_pipeline(pipeline_id: str) -> dict[str, Any]:
    """One pipeline as the registry records it, with the spec its team asked for."""
    asker = request.caller(router.current_event)
    entry = request.registered_entry(pipeline_id)
    authz.check_read(asker, entry)
    details = {**pipeline_summary(entry), "spec_fingerprint": entry.spec_fingerprint,
               "spec": request_view(entry.spec), "requested_by": entry.requested_by,
               **pipeline_details.details(entry)}
    details |= alarms.alarm_view(entry.pipeline_id)
    if entry.status in (Status.DELETING, Status.DELETED):
        # The registry records the provisioning; the teardown's name is derived from it.
        teardowns = teardown_executions(entry)
        details["teardown_execution_arn"] = (
            teardowns.latest["executionArn"] if teardowns.latest
            else execution_arn(state_machine_arn_from(TEARDOWN_STATE_MACHINE_ARN), teardowns.next_name))
    return details


@router.delete("/pipelines/<pipeline_id>")
def teardown_pipeline(pipeline_id: str) -> Response:
    """Start tearing a pipeline down; a retried request answers with the same teardown."""
    asker = request.caller(router.current_event)
    keep_topics = request.keep_flag(router.current_event, "keep_topics")
    keep_index = request.keep_flag(router.current_event, "keep_index")
    entry = request.registered_entry(pipeline_id)
    authz.check_change(asker, entry, "tear down")
    teardowns = teardown_executions(entry)
    # An entry left PROVISIONING or DELETING by a workflow that was stopped (or
    # died without recording its outcome) is not refused: the teardown cleans up
    # whatever that workflow left. A provisioning still running is cancelled: it is
    # stopped, and the teardown waits for the step it was in before undoing anything.
    teardown_input = {"spec": spec_document(entry.spec), "keep_topics": keep_topics, "keep_index": keep_index}
    refusal = None
    # A backfilling pipeline is ACTIVE, held by its own provisioning: that is stopped as a provisioning is.
    backfilling = entry.lifecycle_action == "backfill" and entry.lifecycle_execution_arn == entry.execution_arn
    if (entry.status is Status.PROVISIONING or backfilling) and teardowns.running:
        # A retried cancel: the teardown it started has not marked the pipeline DELETING yet.
        return accepted({"pipeline_id": pipeline_id, "execution_arn": teardowns.latest["executionArn"],
                         "status": "RUNNING"})
    if (entry.status is Status.PROVISIONING or backfilling) and not has_ended(entry.execution_arn):
        stopped = _stop_provisioning(entry)
        if stopped is None:
            refusal = "is being claimed by a provisioning that has not started yet; try again in a moment"
        else:
            teardown_input["stopped"] = stopped
    elif entry.lifecycle_execution_arn and not has_ended(entry.lifecycle_execution_arn):
        # A pause or resume half done would leave its connectors in a state the teardown did not read.
        refusal = (f"is held by its {entry.lifecycle_action} execution {entry.lifecycle_execution_arn}; "
                   "tear it down once that has finished")
    elif entry.status is Status.DELETING and (teardowns.latest is None or teardowns.running):
        refusal = "is already being torn down"
    elif entry.status is Status.DELETED:
        refusal = "is already deleted"
    if refusal:
        raise ApiError(HTTPStatus.CONFLICT, f"pipeline {pipeline_id!r} {refusal}", field="id",
                       status=entry.status.value, **_holder(entry))
    execution = _start(state_machine_arn_from(TEARDOWN_STATE_MACHINE_ARN), teardowns.next_name, teardown_input)
    logger.info("teardown requested", pipeline_id=pipeline_id, execution_arn=execution["execution_arn"],
                cancelled=teardown_input.get("stopped"))
    metrics.add_metric(name="TeardownRequested", unit=MetricUnit.Count, value=1)
    return accepted({"pipeline_id": pipeline_id, **execution})


def _holder(entry: registry.RegistryEntry) -> dict[str, str]:
    """The running lifecycle execution that holds `entry`, for a 409 to name."""
    held = entry.lifecycle_execution_arn
    return {"execution_arn": held} if held and not has_ended(held) else {}


def _stop_provisioning(entry: registry.RegistryEntry) -> dict[str, str | None] | None:
    """Stop the provisioning `entry` records; the execution and the step it was in, None if it never started.

    Read after the stop, `current_step` is the last step that began: the one
    whose function may still be running.
    """
    client = stepfunctions()
    try:
        client.stop_execution(executionArn=entry.execution_arn, error="PipelineCancelled",
                              cause=f"DELETE /pipelines/{entry.pipeline_id} cancelled the provisioning")
    except client.exceptions.ExecutionDoesNotExist:
        return None
    stopped = registry.get(entry.pipeline_id) or entry
    return {"execution_arn": entry.execution_arn, "state_name": stopped.current_step}


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


def _start(state_machine_arn: str, name: str, execution_input: dict[str, Any]) -> dict[str, str]:
    """`start_execution_once`, with a name taken by another input answered as 409."""
    try:
        return start_execution_once(state_machine_arn, name, execution_input)
    except ExecutionInputDiffers as error:
        raise ApiError(HTTPStatus.CONFLICT, str(error), execution_arn=error.execution_arn) from None
