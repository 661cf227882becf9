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
    """Records the status; for FAILED, also the failed step, its error and cause.

    The result carries `Error` and `Cause` so the workflow's final Fail state
    reports the original failure, not the compensations'.
    """
    status = PipelineStatus(event["status"])
    if status is not PipelineStatus.FAILED:
        # Only the execution that provisioned the pipeline may declare it ACTIVE.
        expected = event["execution_id"] if status is PipelineStatus.ACTIVE else None
        entry = registry.mark(spec.pipeline_id, status, current_step=event["state_name"], expected_execution_arn=expected)
        return {"pipeline_id": entry.pipeline_id, "status": entry.status}
    failure = describe_failure(event.get("errors") or {}, event.get("compensation_errors") or {})
    registry.mark(spec.pipeline_id, status, current_step=failure["step"], error=failure["Error"], cause=failure["registry_cause"])
    return {"step": failure["step"], "Error": failure["Error"], "Cause": failure["Cause"]}


def error_message(cause: str) -> str:
    """The readable part of a Catch cause: Lambda wraps it as JSON with `errorMessage`."""
    try:
        document = json.loads(cause)
    except (TypeError, ValueError):
        return cause or ""
    return document.get("errorMessage", cause) if isinstance(document, dict) else cause


def describe_failure(errors: dict[str, dict[str, str]], compensation_errors: dict[str, dict[str, str]]) -> dict[str, str]:
    """The failed step with its original error and cause, plus what the compensations could not undo."""
    if errors:
        step, caught = next(iter(errors.items()))
        error, cause = caught.get("Error", "States.TaskFailed"), caught.get("Cause", "")
    else:
        step, error, cause = "unknown", "ProvisionFailed", "the workflow failed without recording a step error"
    registry_cause = f"{step}: {error_message(cause)}"
    if compensation_errors:
        leftovers = "; ".join(
            f"{name}: {caught.get('Error', '')}: {error_message(caught.get('Cause', ''))}"
            for name, caught in compensation_errors.items()
        )
        registry_cause += f" | cleanup incomplete, run the teardown again: {leftovers}"
    return {"step": step, "Error": error, "Cause": cause, "registry_cause": registry_cause}
