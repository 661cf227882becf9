"""The lifecycle routes: pause a pipeline's connectors, resume them, and change a running pipeline's spec.

| route | starts | the pipeline must be |
| --- | --- | --- |
| `POST /pipelines/{id}/pause` | PausePipeline | ACTIVE |
| `POST /pipelines/{id}/resume` | ResumePipeline | PAUSED |
| `PATCH /pipelines/{id}` (part of a team's spec, merged over the pipeline's) | UpdatePipeline | ACTIVE |
| `PUT /pipelines/{id}` (a team's whole spec) | UpdatePipeline | ACTIVE |
| `POST /pipelines/{id}/resync` (tables, a WHERE condition per table) | ResyncPipeline | ACTIVE |
| `POST /pipelines/{id}/resync` with `{"rebuild": true}` | RebuildPipeline | BROKEN |

An update's body is resolved like `POST /pipelines`'s (`lambdas.pipeline_request`),
after checking that it changes nothing a running pipeline cannot change
(`lambdas.spec_update.refusals`: 422 naming each field); a spec that changes
nothing answers 200 and starts nothing. `?keep_topics=true` keeps the
removed tables' topics. The 202 names what the update will do (`changes`),
including the sink tables of removed tables, which stay.

A resync's conditions are checked before anything starts (`lambdas.resync`):
by shape, then by PostgreSQL itself, read-only, at the pipeline's source; a
condition either refuses is a 422 naming the table and the reason, and the
202 names the rows each table's condition matches now. A source that cannot
be reached for the check answers 503.

One lifecycle execution holds a pipeline at a time. The route records the
execution on the registry entry (a conditional write on the entry's
version) before it starts it, so of two requests arriving together one wins
and the other gets 409 naming the winner; the workflow's last step releases
the entry. A retried request (the same action while its execution runs, or
was claimed and never started) answers with that execution and starts no other.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit

from lambdas import registry
from lambdas.api import authz, request
from lambdas.api.answers import ApiError, accepted, metrics
from lambdas.common import logger
from lambdas.errors import StepError
from lambdas.executions import (
    LIFECYCLE_STATE_MACHINE_ARNS, ExecutionInputDiffers, execution_arn, execution_name_in, has_ended,
    lifecycle_execution_name, start_execution_once, state_machine_arn_from,
)
from lambdas.pipeline_request import request_view
from lambdas.resync import ResyncRefused, check_conditions, parse_request
from lambdas.source.connection import connect_admin
from lambdas.spec import parse_spec, spec_document
from lambdas.spec_update import diff, merge_patch, refusals

router = APIGatewayRouter()
# How a refusal names what the action would have done.
DONE = {"pause": "paused", "resume": "resumed", "update": "updated", "resync": "resynced", "rebuild": "rebuilt"}


@router.post("/pipelines/<pipeline_id>/pause")
def pause_pipeline(pipeline_id: str) -> Response:
    """Start PausePipeline on an ACTIVE pipeline (202); 409 when it is not ACTIVE or another lifecycle runs."""
    return _lifecycle(pipeline_id, "pause")


@router.post("/pipelines/<pipeline_id>/resume")
def resume_pipeline(pipeline_id: str) -> Response:
    """Start ResumePipeline on a PAUSED pipeline (202); 409 when it is not PAUSED or another lifecycle runs."""
    return _lifecycle(pipeline_id, "resume")


@router.patch("/pipelines/<pipeline_id>")
def patch_pipeline(pipeline_id: str) -> Response:
    """Start UpdatePipeline with part of a team's spec merged over the pipeline's (202; 200 when nothing changes)."""
    return _update(pipeline_id, merge=True)


@router.put("/pipelines/<pipeline_id>")
def put_pipeline(pipeline_id: str) -> Response:
    """Start UpdatePipeline with a team's whole new spec (202; 200 when nothing changes)."""
    return _update(pipeline_id, merge=False)


@router.post("/pipelines/<pipeline_id>/resync")
def resync_pipeline(pipeline_id: str) -> Response:
    """Start ResyncPipeline once PostgreSQL has checked each table's condition (202); 422 naming a bad one."""
    asker = request.caller(router.current_event)
    body = request.json_body(router.current_event) if router.current_event.body else {}
    if not isinstance(body, dict):
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, 'the body must be a JSON object: {"tables": [...], '
                       '"where": {"schema.table": "condition"}}', field="(body)")
    entry = request.registered_entry(pipeline_id)
    if body.get("rebuild") is not None:
        return _rebuild(pipeline_id, body, asker, entry)
    authz.check_change(asker, entry, "resync")
    _require_status(entry, "resync")
    spec = parse_spec(spec_document(entry.spec))
    try:
        wanted = parse_request(spec, body)
        with connect_admin(spec.source) as conn:
            matched = check_conditions(conn, wanted)
    except ResyncRefused as refused:
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, str(refused), field=refused.field) from None
    except StepError as error:  # the source could not be reached or logged in to: nothing was checked
        raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, f"the conditions could not be checked at the source: {error}",
                       field="id") from None

    def resync_input(held: registry.RegistryEntry) -> dict[str, Any]:
        return {"spec": spec_document(held.spec), "tables": list(wanted.tables),
                "conditions": dict(wanted.conditions), "requested_by": asker.arn}

    return _lifecycle(pipeline_id, "resync", resync_input, asker=asker, entry=entry,
                      answer={"tables": {table: {"matched": count} for table, count in matched.items()}})


def _rebuild(pipeline_id: str, body: dict[str, Any], asker: authz.Caller, entry: registry.RegistryEntry) -> Response:
    """`{"rebuild": true}`: RebuildPipeline on a BROKEN pipeline, which snapshots every table again."""
    if body["rebuild"] is not True or set(body) != {"rebuild"}:
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, "a rebuild takes only {\"rebuild\": true}: it gives the "
                       "pipeline a new slot and snapshots every table, so tables and where do not apply",
                       field="rebuild")
    authz.check_change(asker, entry, "rebuild")
    _require_status(entry, "rebuild")
    return _lifecycle(pipeline_id, "rebuild", asker=asker, entry=entry)


def _require_status(entry: registry.RegistryEntry, action: str) -> None:
    required = registry.LIFECYCLE_TRANSITIONS[action][0]
    if entry.status is not required:
        raise ApiError(HTTPStatus.CONFLICT,
                       f"pipeline {entry.pipeline_id!r} is {entry.status.value}; only {_article(required.value)} "
                       f"{required.value} pipeline can be {DONE[action]}", field="id", status=entry.status.value)


def _article(word: str) -> str:
    return "an" if word[:1] in "AEIOU" else "a"


def _update(pipeline_id: str, merge: bool) -> Response:
    asker = request.caller(router.current_event)
    body = request.json_body(router.current_event)
    keep_topics = request.keep_flag(router.current_event, "keep_topics")
    if not isinstance(body, dict):
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, "the body must be a JSON object: a team's pipeline spec "
                       f"{'or part of one' if merge else ''}".strip(), field="(body)")
    entry = request.registered_entry(pipeline_id)
    authz.check_change(asker, entry, "update")
    current = request_view(entry.spec)
    document = merge_patch(current, body) if merge else dict(body)
    for fixed in ("pipeline_id", "owner"):
        if fixed in document and document[fixed] != current[fixed]:
            raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, f"{fixed} cannot change on a running pipeline "
                           f"({current[fixed]!r} -> {document[fixed]!r})", field=fixed)
    document = {**document, "pipeline_id": entry.pipeline_id, "owner": entry.owner}
    new_spec = request.requested_spec(document, asker)
    previous = parse_spec(spec_document(entry.spec))
    refused = refusals(previous, new_spec)
    if refused:
        problems = [{"field": field, "message": message} for field, message in refused]
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, "the update changes what a running pipeline cannot: " +
                       "; ".join(f"{p['field']}: {p['message']}" for p in problems), field=problems[0]["field"],
                       problems=problems)
    change = diff(previous, new_spec)
    changes = change.to_dict(previous, keep_topics)
    if change.empty:
        return Response(status_code=HTTPStatus.OK, content_type="application/json",
                        body={"pipeline_id": pipeline_id, "action": "update", "changes": changes,
                              "message": "the spec is the pipeline's own: nothing to change"})

    def update_input(held: registry.RegistryEntry) -> dict[str, Any]:
        return {"spec": spec_document(new_spec), "previous_spec": spec_document(held.spec),
                "keep_topics": keep_topics, "requested_by": asker.arn}

    return _lifecycle(pipeline_id, "update", update_input, asker=asker, entry=entry, answer={"changes": changes})


def _lifecycle(
    pipeline_id: str, action: str, build_input: Callable[[registry.RegistryEntry], dict[str, Any]] | None = None,
    asker: authz.Caller | None = None, entry: registry.RegistryEntry | None = None,
    answer: dict[str, Any] | None = None,
) -> Response:
    if asker is None or entry is None:
        asker = request.caller(router.current_event)
        entry = request.registered_entry(pipeline_id)
        authz.check_change(asker, entry, action)
    machines = _Machines()
    build_input = build_input or (lambda held: {"spec": spec_document(held.spec)})
    for _ in range(3):
        execution_input = build_input(entry)
        held = entry.lifecycle_execution_arn
        if held and not has_ended(held):
            held_name = execution_name_in(held, machines.get(entry.lifecycle_action or ""))
            if entry.lifecycle_action == action and held_name:
                # A retried request: the execution it claimed (started, or not yet) is the answer.
                return _accepted(pipeline_id, action, _start(machines[action], held_name, execution_input), answer)
            raise ApiError(HTTPStatus.CONFLICT,
                           f"pipeline {pipeline_id!r} is held by its {entry.lifecycle_action} execution {held}; "
                           f"{action} it once that has finished", field="id", execution_arn=held,
                           status=entry.status.value)
        _require_status(entry, action)
        name = lifecycle_execution_name(entry, action)
        try:
            registry.claim_lifecycle(entry, action, execution_arn(machines[action], name))
        except registry.LifecycleConflict:
            entry = request.registered_entry(pipeline_id)  # changed since it was read: decide again
            continue
        return _accepted(pipeline_id, action, _start(machines[action], name, execution_input), answer)
    raise ApiError(HTTPStatus.CONFLICT, f"pipeline {pipeline_id!r} kept changing; try the {action} again", field="id")


class _Machines(dict):
    """The lifecycle state machines' ARNs, each read from the environment when first needed."""

    def __missing__(self, action: str) -> str:
        self[action] = state_machine_arn_from(LIFECYCLE_STATE_MACHINE_ARNS[action])
        return self[action]

    def get(self, action: str, default: str = "") -> str:  # type: ignore[override]
        return self[action] if action in LIFECYCLE_STATE_MACHINE_ARNS else default


def _start(state_machine_arn: str, name: str, execution_input: dict) -> dict[str, str]:
    try:
        return start_execution_once(state_machine_arn, name, execution_input)
    except ExecutionInputDiffers as error:
        raise ApiError(HTTPStatus.CONFLICT, str(error), execution_arn=error.execution_arn) from None


def _accepted(pipeline_id: str, action: str, execution: dict[str, str],
              answer: dict[str, Any] | None = None) -> Response:
    logger.info(f"{action} requested", pipeline_id=pipeline_id, execution_arn=execution["execution_arn"])
    metrics.add_metric(name=f"{action.capitalize()}Requested", unit=MetricUnit.Count, value=1)
    return accepted({"pipeline_id": pipeline_id, "action": action, **execution, **(answer or {})})
