"""PauseConnectors / ResumeConnectors / CheckConnectorsState / MarkLifecycle: pausing and resuming a pipeline.

Kafka Connect pauses a connector asynchronously: `PUT /connectors/<name>/pause`
records the target state and the tasks stop a moment later. So each change is
followed by a wait-loop whose check looks until the connector and all of its
tasks report the wanted state. Pausing or resuming a connector already in
that state changes nothing, so every step here may run again, and each is
the other's compensation.

While the source connector is paused its replication slot keeps the WAL
from the last confirmed position; resuming picks up there, so nothing
written meanwhile is lost.
"""

from __future__ import annotations

from typing import Any

from lambdas import registry
from lambdas.common import step_handler
from lambdas.connect.client import ConnectClient
from lambdas.connect.errors import ConnectorFailed
from lambdas.errors import StepError
from lambdas.registry import PipelineStatus
from lambdas.spec import PipelineSpec
from lambdas.steps.registry import describe_failure, error_message
from lambdas.wait_loop import next_round, schedule_of, settle

WANTED_STATES = ("PAUSED", "RUNNING")


class ConnectorsNotInState(StepError):
    """The connectors did not all reach the wanted state (PAUSED or RUNNING) within the wait-loop's rounds."""


def pipeline_connectors(spec: PipelineSpec) -> list[str]:
    """The pipeline's connectors in the order they are paused: the source first, so the sink drains last."""
    return [spec.names.source_connector, spec.names.sink_connector]


def pause_connectors(client: ConnectClient, names: list[str]) -> dict[str, Any]:
    """Ask Connect to pause each connector (source first). Idempotent: pausing a paused connector is a no-op."""
    for name in names:
        client.pause(name)
    return {"paused": names}


def resume_connectors(client: ConnectClient, names: list[str]) -> dict[str, Any]:
    """Ask Connect to resume each connector (sink first, so it is reading before the source writes again).

    Idempotent: resuming a running connector is a no-op.
    """
    for name in reversed(names):
        client.resume(name)
    return {"resumed": list(reversed(names))}


def connector_states(client: ConnectClient, name: str) -> tuple[str, list[str]]:
    """The connector's own state and its tasks' states, as Connect reports them."""
    status = client.get_status(name)
    return (status.get("connector") or {}).get("state", "UNASSIGNED"), [
        task.get("state", "UNASSIGNED") for task in status.get("tasks") or []
    ]


def in_state(connector: str, tasks: list[str], wanted: str) -> bool:
    """True when the connector and every task (at least one) are in `wanted`."""
    return connector == wanted and bool(tasks) and all(task == wanted for task in tasks)


@step_handler
def pause_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    with ConnectClient(spec.connect.url) as client:
        return pause_connectors(client, pipeline_connectors(spec))


@step_handler
def resume_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    with ConnectClient(spec.connect.url) as client:
        return resume_connectors(client, pipeline_connectors(spec))


@step_handler(idempotent=False)  # polled by a wait-loop: each call must look again
def check_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """One check of the loop that waits until both connectors and their tasks are `event["state"]`.

    A connector or task found FAILED ends the loop at once with `ConnectorFailed`.
    """
    wanted, schedule = event["state"], schedule_of(event)
    if wanted not in WANTED_STATES:
        raise ValueError(f"state must be one of {', '.join(WANTED_STATES)}, got {wanted!r}")
    names = pipeline_connectors(spec)
    with ConnectClient(spec.connect.url) as client:
        def look() -> dict[str, tuple[str, list[str]]]:
            return {name: connector_states(client, name) for name in names}

        seen = settle(look, lambda states: all(in_state(c, t, wanted) for c, t in states.values()), schedule)
    failed = [name for name, (connector, tasks) in seen.items() if "FAILED" in (connector, *tasks)]
    if failed:
        raise ConnectorFailed(f"connector {', '.join(failed)} FAILED while waiting for it to be {wanted}")

    def gave_up(checks: int) -> ConnectorsNotInState:
        states = "; ".join(f"{name}: connector {connector}, tasks {', '.join(tasks) or 'none'}"
                           for name, (connector, tasks) in seen.items())
        return ConnectorsNotInState(f"the connectors were not {wanted} after {checks} checks ({states})")

    ready = all(in_state(connector, tasks, wanted) for connector, tasks in seen.values())
    states = {name: connector for name, (connector, _) in seen.items()}
    return next_round(ready, int(event.get("attempt", 0)), schedule, gave_up, states=states)


@step_handler
def mark_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """Record the lifecycle execution's outcome (`event["status"]`) and release the pipeline.

    With `errors` (the forward step that failed), the entry's last error names
    that step and its cause, and the result carries `Error` and `Cause` for
    the workflow's final Fail state.
    """
    status = PipelineStatus(event["status"])
    errors = event.get("errors") or {}
    if not errors:
        entry = registry.finish_lifecycle(spec.pipeline_id, event["execution_id"], status,
                                          current_step=event["state_name"])
        return {"pipeline_id": entry.pipeline_id, "status": entry.status.value}
    failure = describe_failure(errors, {})
    cause = failure["registry_cause"]
    for name, caught in (event.get("compensation_errors") or {}).items():
        # The undo of a half-done pause or resume failed: the connectors may not be in the status recorded.
        cause += (f" | {name} failed too, the connectors may not be {status.value}: {caught.get('Error', '')}: "
                  f"{error_message(caught.get('Cause', ''))}")
    registry.finish_lifecycle(spec.pipeline_id, event["execution_id"], status, error=failure["Error"], cause=cause,
                              current_step=failure["step"])
    return {"step": failure["step"], "status": status.value, "Error": failure["Error"], "Cause": failure["Cause"]}
