"""RegisterPipeline / MarkPipeline: the pipeline's entry in the registry."""

from __future__ import annotations

import json
from typing import Any

from lambdas import registry
from lambdas.common import step_handler
from lambdas.registry import PipelineStatus
from lambdas.spec import PipelineSpec


@step_handler
def register_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    entry = registry.register(spec, execution_arn=event["execution_id"])
    return {"pipeline_id": entry.pipeline_id, "owner": entry.owner, "status": entry.status}


@step_handler
def mark_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """Records the status; for FAILED, also the failed step, its error and cause, and what is left.

    The result carries `Error` and `Cause` so the workflow's final Fail state
    reports the original failure, not the compensations'. A rollback passes
    `results` and `undoes` (each compensation -> the forward steps it undoes):
    the compensations that failed for a step that had started are what may be
    left, and the registry records them for the teardown. DELETING answers
    with that record: `resources_left` (None: unknown, all may exist) and
    `nothing_left`.
    """
    status = PipelineStatus(event["status"])
    if status is not PipelineStatus.FAILED:
        # Only the execution that provisioned the pipeline may declare it ACTIVE.
        expected = event["execution_id"] if status is PipelineStatus.ACTIVE else None
        entry = registry.mark(spec.pipeline_id, status, current_step=event["state_name"], expected_execution_arn=expected)
        answer: dict[str, Any] = {"pipeline_id": entry.pipeline_id, "status": entry.status}
        if status is PipelineStatus.DELETING:
            left = entry.recorded_left()
            answer |= {"resources_left": left, "nothing_left": left == []}
        return answer
    errors = event.get("errors") or {}
    compensation_errors = event.get("compensation_errors") or {}
    undoes = event.get("undoes")
    left = None
    if isinstance(undoes, dict):
        started = set(event.get("results") or {}) | set(errors)
        left = [name for name in compensation_errors if started & set(undoes.get(name) or [name])]
        # A compensation that failed for a step that never ran had nothing to undo.
        compensation_errors = {name: caught for name, caught in compensation_errors.items() if name in left}
    failure = describe_failure(errors, compensation_errors,
                               {name: left_behind(spec, name) for name in compensation_errors})
    registry.mark(spec.pipeline_id, status, current_step=failure["step"], error=failure["Error"],
                  cause=failure["registry_cause"],
                  resources_left=(event["execution_id"], left) if left is not None else None)
    return {"step": failure["step"], "Error": failure["Error"], "Cause": failure["Cause"]}


def error_message(cause: str) -> str:
    """The readable part of a Catch cause: Lambda wraps it as JSON with `errorMessage`."""
    try:
        document = json.loads(cause)
    except (TypeError, ValueError):
        return cause or ""
    return document.get("errorMessage", cause) if isinstance(document, dict) else cause


def left_behind(spec: PipelineSpec, compensation: str) -> str:
    """What compensation `compensation` failed to remove, named as the user finds it."""
    names = spec.names
    return {
        "DeleteConnectors": f"connectors {names.source_connector}, {names.sink_connector}",
        "DropSlot": f"replication slot {names.replication_slot}",
        "DropPublication": f"publication {names.publication}",
        "DropHeartbeatTable": f"heartbeat table {names.heartbeat_qualified}",
        "DropReplicationUser": f"replication role {names.replication_role} and secret {names.replication_secret}",
        "DeleteTopics": f"topics {names.debezium_topic_prefix}.*",
    }.get(compensation, compensation)


def describe_failure(
    errors: dict[str, dict[str, str]], compensation_errors: dict[str, dict[str, str]],
    resources: dict[str, str] | None = None,
) -> dict[str, str]:
    """The failed step with its original error and cause, plus what the compensations could not undo.

    `resources` names what each failed compensation left (`left_behind`).
    """
    if errors:
        step, caught = next(iter(errors.items()))
        error, cause = caught.get("Error", "States.TaskFailed"), caught.get("Cause", "")
    else:
        step, error, cause = "unknown", "ProvisionFailed", "the workflow failed without recording a step error"
    registry_cause = f"{step}: {error_message(cause)}"
    if compensation_errors:
        reasons = {name: f"{name}: {caught.get('Error', '')}: {error_message(caught.get('Cause', ''))}"
                   for name, caught in compensation_errors.items()}
        leftovers = "; ".join(
            f"{resources[name]} ({reason})" if resources and name in resources else reason
            for name, reason in reasons.items()
        )
        registry_cause += f" | cleanup incomplete, run the teardown again: {leftovers}"
    return {"step": step, "Error": error, "Cause": cause, "registry_cause": registry_cause}
