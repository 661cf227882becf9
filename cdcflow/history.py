"""Following an execution step by step, from its Step Functions history.

`step_rows` turns a Step Functions execution history into one row per state
visit, with its status, attempts, timing and error; `follow_execution` polls
the history and reports each change as it happens; `event_rows` lists the
events for the `history` command. All work the same against AWS and the local
engine: they only read `GetExecutionHistory`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import boto3
import requests
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from cdcflow.errors import ServiceUnreachable

DEFAULT_SFN_ENDPOINT = "http://127.0.0.1:8600"

# Step statuses.
RUNNING = "running"
SUCCEEDED = "succeeded"
CAUGHT = "caught"  # failed, and a Catch routed the workflow on (to the compensations)
FAILED = "failed"
ABORTED = "aborted"

_ATTEMPT_EVENTS = frozenset({"LambdaFunctionScheduled", "TaskScheduled", "ActivityScheduled"})
_SUCCESS_EVENTS = frozenset({"LambdaFunctionSucceeded", "TaskSucceeded", "ActivitySucceeded"})
_ERROR_EVENTS = frozenset(
    {
        "LambdaFunctionFailed",
        "LambdaFunctionTimedOut",
        "LambdaFunctionStartFailed",
        "LambdaFunctionScheduleFailed",
        "TaskFailed",
        "TaskTimedOut",
        "TaskStartFailed",
        "TaskSubmitFailed",
        "ActivityFailed",
        "ActivityTimedOut",
        "ActivityScheduleFailed",
        "EvaluationFailed",
    }
)
_CLOSING_EVENTS = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionTimedOut": "TIMED_OUT",
    "ExecutionAborted": "ABORTED",
}


@dataclass(frozen=True)
class StepRow:
    """One visit of the workflow to a state."""

    name: str
    state_type: str
    entered_at: datetime
    status: str = RUNNING
    exited_at: datetime | None = None
    attempts: int = 0
    error: str | None = None
    cause: str | None = None

    @property
    def duration(self) -> timedelta | None:
        return self.exited_at - self.entered_at if self.exited_at else None


@dataclass(frozen=True)
class ExecutionOutcome:
    status: str  # RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED
    error: str | None = None
    cause: str | None = None
    closed_at: datetime | None = None

    @property
    def closed(self) -> bool:
        return self.status != "RUNNING"


def _details(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """An event's details: `stateEnteredEventDetails` for every `*StateEntered` (likewise
    exited), else under `<eventType with a lower-case first letter>EventDetails`."""
    kind = event["type"]
    if kind.endswith("StateEntered"):
        return event.get("stateEnteredEventDetails") or {}
    if kind.endswith("StateExited"):
        return event.get("stateExitedEventDetails") or {}
    return event.get(f"{kind[0].lower()}{kind[1:]}EventDetails") or {}


def step_rows(events: Iterable[Mapping[str, Any]]) -> list[StepRow]:
    """One row per state visit, in order, from an execution's history events (oldest first).

    A task's attempts count its scheduled invocations (retries included); a
    failed attempt that is later retried successfully leaves no error. A
    state that failed but was exited is `caught`; the states still open when
    the execution closes take its fate (`failed`, or `aborted`).
    """
    rows: list[StepRow] = []
    running: list[int] = []  # indices of the rows still open, oldest first
    for event in events:
        kind = event["type"]
        details = _details(event)
        if kind.endswith("StateEntered"):
            running.append(len(rows))
            rows.append(
                StepRow(
                    name=details["name"], state_type=kind.removesuffix("StateEntered"), entered_at=event["timestamp"]
                )
            )
        elif not running:
            continue
        elif kind.endswith("StateExited"):
            index = next((i for i in reversed(running) if rows[i].name == details.get("name")), running[-1])
            running.remove(index)
            row = rows[index]
            rows[index] = replace(row, status=CAUGHT if row.error else SUCCEEDED, exited_at=event["timestamp"])
        elif kind in _ATTEMPT_EVENTS:
            rows[running[-1]] = replace(rows[running[-1]], attempts=rows[running[-1]].attempts + 1)
        elif kind in _SUCCESS_EVENTS:
            rows[running[-1]] = replace(rows[running[-1]], error=None, cause=None)
        elif kind in _ERROR_EVENTS:
            rows[running[-1]] = replace(
                rows[running[-1]], error=details.get("error") or kind, cause=details.get("cause")
            )
        elif kind in _CLOSING_EVENTS:
            fate = {"ExecutionSucceeded": SUCCEEDED, "ExecutionAborted": ABORTED}.get(kind, FAILED)
            for index in running:
                row = rows[index]
                rows[index] = replace(
                    row,
                    status=fate,
                    exited_at=event["timestamp"],
                    error=row.error or details.get("error"),
                    cause=row.cause or details.get("cause"),
                )
            running.clear()
    return rows


def execution_outcome(events: Iterable[Mapping[str, Any]]) -> ExecutionOutcome:
    """RUNNING until the history holds a closing event; then its status, error and cause."""
    for event in events:
        status = _CLOSING_EVENTS.get(event["type"])
        if status:
            details = _details(event)
            return ExecutionOutcome(
                status=status, error=details.get("error"), cause=details.get("cause"), closed_at=event["timestamp"]
            )
    return ExecutionOutcome(status="RUNNING")


def _sfn_call(endpoint: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except (EndpointConnectionError, requests.ConnectionError) as error:
        raise ServiceUnreachable(f"cannot reach Step Functions at {endpoint}: {error}") from None


def fetch_new_events(stepfunctions: Any, execution_arn: str, after_id: int) -> list[dict[str, Any]]:
    """The history events with ids above `after_id`, oldest first.

    Asks for the history newest first and stops at the first page reaching
    an event already seen, so polling a long execution costs a page, not the
    whole history. A server that ignores `reverseOrder` (moto does) is read
    to the end instead.
    """
    endpoint = stepfunctions.meta.endpoint_url
    new_events: list[dict[str, Any]] = []
    arguments: dict[str, Any] = {"executionArn": execution_arn, "reverseOrder": True, "maxResults": 200}
    while True:
        page = _sfn_call(endpoint, lambda: stepfunctions.get_execution_history(**arguments))
        events = page["events"]
        new_events += [event for event in events if event["id"] > after_id]
        newest_first = len(events) < 2 or events[0]["id"] > events[-1]["id"]
        reached_seen = bool(events) and newest_first and events[-1]["id"] <= after_id
        if reached_seen or not page.get("nextToken"):
            return sorted(new_events, key=lambda event: event["id"])
        arguments["nextToken"] = page["nextToken"]


@dataclass(frozen=True)
class StepChange:
    """What a follower reports: a state entered, retried, or exited."""

    kind: str  # "entered", "retried" or "exited"
    row: StepRow


def _changes(reported: dict[int, StepRow], rows: list[StepRow]) -> Iterator[StepChange]:
    for index, row in enumerate(rows):
        before = reported.get(index)
        if before == row:
            continue
        if before is None:
            yield StepChange("entered", row)
        if row.status == RUNNING and row.attempts > max(1, before.attempts if before else 1):
            yield StepChange("retried", row)
        if row.status != RUNNING:
            yield StepChange("exited", row)
        reported[index] = row


def follow_execution(
    stepfunctions: Any,
    execution_arn: str,
    report: Callable[[StepChange], None],
    *,
    poll_seconds: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> ExecutionOutcome:
    """Report every step change of an execution until it closes, and return how it ended.

    Blocks while the execution runs, polling every `poll_seconds`. Steps that
    happened before the call are reported first, so following a closed
    execution replays it.
    """
    events: list[dict[str, Any]] = []
    reported: dict[int, StepRow] = {}
    while True:
        events += fetch_new_events(stepfunctions, execution_arn, events[-1]["id"] if events else 0)
        for change in _changes(reported, step_rows(events)):
            report(change)
        outcome = execution_outcome(events)
        if outcome.closed:
            return outcome
        sleep(poll_seconds)


def full_history(stepfunctions: Any, execution_arn: str) -> list[dict[str, Any]]:
    """Every event of an execution, oldest first."""
    return fetch_new_events(stepfunctions, execution_arn, 0)


# A follower polls every second: a dead endpoint should be reported, not retried for long.
_SFN_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30)


def stepfunctions_client(endpoint: str | None, session: boto3.Session) -> Any:
    """A Step Functions client: on `endpoint` (the local engine), or on AWS when it is None."""
    if endpoint is None:
        return session.client("stepfunctions", config=_SFN_CONFIG)
    # The local engine accepts any credentials; these keep boto3 from searching for real ones.
    return session.client(
        "stepfunctions",
        endpoint_url=endpoint,
        region_name=session.region_name or "us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=_SFN_CONFIG,
    )


def cause_message(cause: str | None) -> str | None:
    """The readable part of a failure's cause: a Lambda error's `errorMessage`, else the cause itself."""
    if not cause:
        return cause
    try:
        document = json.loads(cause)
    except ValueError:
        return cause
    if isinstance(document, dict) and isinstance(document.get("errorMessage"), str):
        return document["errorMessage"]
    return cause


@dataclass(frozen=True)
class EventRow:
    """One history event as the `history` command lists it."""

    event_id: int
    timestamp: datetime
    elapsed: timedelta
    event_type: str
    state: str | None
    detail: str | None


def event_rows(events: Iterable[Mapping[str, Any]]) -> list[EventRow]:
    """The history as a list: each event with the time since the execution started and the state it belongs to."""
    rows: list[EventRow] = []
    started: datetime | None = None
    state: str | None = None
    for event in events:
        started = started or event["timestamp"]
        details = _details(event)
        if event["type"].endswith("StateEntered"):
            state = details.get("name")
        error = details.get("error")
        detail = f"{error}: {cause_message(details.get('cause')) or ''}".rstrip(": ") if error else None
        rows.append(
            EventRow(
                event_id=event["id"],
                timestamp=event["timestamp"],
                elapsed=event["timestamp"] - started,
                event_type=event["type"],
                state=state if not event["type"].startswith("Execution") else None,
                detail=detail,
            )
        )
        if event["type"].endswith("StateExited"):
            state = None
    return rows
