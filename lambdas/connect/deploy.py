"""Deploy, check and delete a pipeline's connectors on Kafka Connect.

`put_connector` and `delete_connector` are each other's compensation; both
are idempotent. `check_connector` is the Check of the wait-loops that follow
each put.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lambdas.connect.client import UNRESOLVABLE_REFERENCE, ConnectClient
from lambdas.connect.errors import ConnectorConfigInvalid, ConnectorFailed, ConnectorNotFound, ConnectorNotReady
from lambdas.connect.traces import MAX_SUMMARY_CHARS, summarise_trace
from lambdas.errors import ConnectUnavailable
from lambdas.spec import PipelineSpec
from lambdas.wait_loop import Schedule, next_round, settle

logger = logging.getLogger(__name__)

DELETE_TIMEOUT_SECONDS = 30.0
DELETE_POLL_SECONDS = 0.5

ReadinessState = Literal["RUNNING", "PENDING", "FAILED"]


@dataclass(frozen=True)
class TaskStatus:
    task_id: int
    state: str  # as Connect reports it: RUNNING, FAILED, PAUSED, UNASSIGNED, RESTARTING
    worker_id: str | None


@dataclass(frozen=True)
class Readiness:
    """Where a connector stands.

    `state` is RUNNING when the connector and at least one task run and no task
    is in any other state, FAILED when the connector or any task failed, and
    PENDING otherwise (starting, rebalancing, restarting, paused).
    """

    state: ReadinessState
    connector_state: str
    tasks: tuple[TaskStatus, ...]
    trace_summary: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "connector_state": self.connector_state,
            "tasks": [{"id": t.task_id, "state": t.state, "worker_id": t.worker_id} for t in self.tasks],
            "trace_summary": self.trace_summary,
        }


def put_connector(client: ConnectClient, name: str, config: Mapping[str, str]) -> dict[str, Any]:
    """Create connector `name` with `config`, or bring an existing one to `config`.

    Idempotent: when the stored config already equals `config`, nothing is
    sent, so a running connector is not restarted; the result says whether
    anything changed. The result holds no config values.

    An unchanged config may still resolve to new values: it holds secret
    references, which the worker reads when it starts the connector. So an
    unchanged connector that FAILED (say, while its secret was missing) is
    restarted, with its failed tasks, and the result says `restarted`.
    """
    stored = client.get_config(name)
    desired = {key: str(value) for key, value in config.items()}
    if stored is not None and _without_name(stored) == _without_name(desired):
        if connector_readiness(client, name).state == "FAILED":
            client.restart(name, include_tasks=True, only_failed=True)
            logger.info("Connector %s had FAILED with this config: restarted", name)
            return {"connector": name, "changed": False, "created": False, "restarted": True}
        return {"connector": name, "changed": False, "created": False}
    client.put_config(name, desired)
    logger.info("Connector %s %s", name, "created" if stored is None else "reconfigured")
    return {"connector": name, "changed": True, "created": stored is None}


def connector_readiness(client: ConnectClient, name: str) -> Readiness:
    """The connector's readiness from Connect's status endpoint. Does not block.

    A connector whose config is stored but whose status is not yet published
    (the moment after a put) is PENDING; one that does not exist at all raises
    `ConnectorNotFound`.
    """
    try:
        status = client.get_status(name)
    except ConnectorNotFound:
        if client.get_config(name) is None:
            raise
        return Readiness(state="PENDING", connector_state="UNASSIGNED", tasks=())
    connector = status.get("connector", {})
    connector_state = connector.get("state", "UNASSIGNED")
    tasks = tuple(
        TaskStatus(task_id=task.get("id", -1), state=task.get("state", "UNASSIGNED"), worker_id=task.get("worker_id"))
        for task in status.get("tasks", [])
    )
    traces = []
    if connector_state == "FAILED" and connector.get("trace"):
        traces.append(("connector", connector["trace"]))
    traces += [(f"task {task['id']}", task["trace"]) for task in status.get("tasks", []) if task.get("trace")]
    if connector_state == "FAILED" or any(task.state == "FAILED" for task in tasks):
        return Readiness("FAILED", connector_state, tasks, _summarise(traces) or "no trace reported")
    if connector_state == "RUNNING" and tasks and all(task.state == "RUNNING" for task in tasks):
        return Readiness("RUNNING", connector_state, tasks)
    return Readiness("PENDING", connector_state, tasks)


def check_connector(
    client: ConnectClient, name: str, attempt: int, schedule: Schedule, *, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """One Check of a connector wait-loop; `attempt` is the number of checks made before this one.

    Settles for up to the schedule's settle time (a connector usually starts
    within it). Returns `{"ready", "attempt": attempt + 1, "wait_seconds",
    "state"}`, the shape the loop's Choice and Wait read. Raises
    `ConnectorFailed` (with the redacted trace summary) when the connector or
    a task FAILED, and `ConnectorNotReady` when it is still pending after the
    last allowed check.
    """
    readiness = settle(lambda: connector_readiness(client, name), lambda seen: seen.state != "PENDING", schedule,
                       sleep=sleep)
    if readiness.state == "FAILED":
        raise ConnectorFailed(f"connector {name} failed: {readiness.trace_summary}")

    def gave_up(checks: int) -> ConnectorNotReady:
        task_states = ", ".join(f"task {t.task_id} {t.state}" for t in readiness.tasks) or "no tasks"
        return ConnectorNotReady(
            f"connector {name} not RUNNING after {checks} checks: connector {readiness.connector_state}, {task_states}"
        )

    return next_round(readiness.state == "RUNNING", attempt, schedule, gave_up, state=readiness.state)


def delete_connector(
    client: ConnectClient,
    name: str,
    *,
    timeout_seconds: float = DELETE_TIMEOUT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Delete connector `name` and block until Connect no longer has it.

    Returns True if it existed, False if there was nothing to delete (a
    missing connector is success). A deletion makes the cluster rebalance, so
    Connect answering "unavailable" while we wait is expected and waited out.
    Raises `ConnectUnavailable` if the connector is still present, or Connect
    still unavailable, after `timeout_seconds`; calling again is safe.
    """
    existed = client.delete(name)
    deadline = clock() + timeout_seconds
    while True:
        try:
            if client.get_config(name) is None:
                break
            still = f"connector {name} still present"
        except ConnectUnavailable as exc:
            still = str(exc)
        if clock() >= deadline:
            raise ConnectUnavailable(f"{still} {timeout_seconds:g} s after its deletion")
        sleep(DELETE_POLL_SECONDS)
    if existed:
        logger.info("Connector %s deleted", name)
    return existed


def delete_pipeline_connectors(client: ConnectClient, spec: PipelineSpec, **wait: Any) -> list[str]:
    """Delete the pipeline's sink, then its source connector; returns the names that existed.

    The sink goes first so it stops reading before its topics lose their
    producer. Only connectors the cluster lists are touched: the list is
    served from the worker's memory, while stopping one writes to Kafka, so
    a rollback with no connector to remove does not wait on a Kafka outage.
    Idempotent; `wait` is passed to `delete_connector`.
    """
    existing = set(client.list_connectors())
    names = [name for name in (spec.names.sink_connector, spec.names.source_connector) if name in existing]
    for name in names:
        forget_offsets(client, name, **wait)
    return [name for name in names if delete_connector(client, name, **wait)]


def forget_offsets(
    client: ConnectClient,
    name: str,
    *,
    timeout_seconds: float = DELETE_TIMEOUT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Stop connector `name` and delete its stored offsets; True if it existed and its offsets were reset.

    Connect keeps a deleted connector's offsets, and a connector created
    later under the same name would resume from them: Debezium would skip
    the initial snapshot of a re-provisioned pipeline. Offsets can only be
    reset once the connector is STOPPED, so this stops it and retries the
    reset while the stop (and the rebalance it causes) completes. Idempotent;
    raises `ConnectUnavailable` if the reset is still refused after
    `timeout_seconds`.

    The worker resolves the config's secret references to reset offsets. When
    a referenced secret is gone (deleted out of order, a local moto server
    restarted) no retry can reset them: the offsets are left, with a warning,
    so the connector can still be deleted, and False is returned. (Connect
    validates every config put, so the reference cannot be swapped for a
    stand-in either: validation would log in with it.)
    """
    if not client.stop(name):
        return False
    deadline = clock() + timeout_seconds
    while True:
        try:
            client.reset_offsets(name)
            return True
        except (ConnectUnavailable, ConnectorConfigInvalid) as exc:  # 400 until STOPPED, 409 during a rebalance
            if UNRESOLVABLE_REFERENCE in str(exc):
                logger.warning("The offsets of connector %s are kept: %s", name, exc)
                return False
            if clock() >= deadline:
                raise ConnectUnavailable(
                    f"the offsets of connector {name} could not be reset within {timeout_seconds:g} s: {exc}"
                ) from None
        sleep(DELETE_POLL_SECONDS)


def _without_name(config: Mapping[str, str]) -> dict[str, str]:
    """Connect adds the connector's `name` to its stored config; it is not part of what we put."""
    return {key: value for key, value in config.items() if key != "name"}


def _summarise(traces: list[tuple[str, str]]) -> str:
    parts = [f"{where}: {summarise_trace(trace)}" for where, trace in traces]
    summary = "; ".join(parts)
    return summary if len(summary) <= MAX_SUMMARY_CHARS else summary[: MAX_SUMMARY_CHARS - 1] + "…"
