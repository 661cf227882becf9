"""Operating pipelines: the API client, following an execution step by step, reconciling.

`step_rows` turns a Step Functions execution history into one row per state
visit, with its status, attempts, timing and error; `follow_execution` polls
the history and reports each change as it happens. Both work the same against
AWS and the local engine: they only read `GetExecutionHistory`.

`reconcile_locally` runs one reconciliation sweep in this process against the
local stack; `reconcile_on_aws` invokes the deployed Reconcile function. Both
return the sweep's report as JSON, which `reconcile_findings` reads.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import boto3
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from cdcflow.catalogue import by_key

DEFAULT_API_URL = "http://127.0.0.1:8700"
DEFAULT_SFN_ENDPOINT = "http://127.0.0.1:8600"
API_TIMEOUT_SECONDS = 30

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


class ServiceUnreachable(Exception):
    """The API or the Step Functions endpoint did not answer; the message names the URL."""


class ApiRefused(Exception):
    """The API answered with a 4xx: the request was wrong; nothing was started."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(body.get("message") or f"HTTP {status}")
        self.status = status
        self.body = body


class ServiceFailed(Exception):
    """The API answered with a 5xx."""


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


_EXECUTE_API_HOST = re.compile(r"^https://[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")


@dataclass
class PipelinesApi:
    """A client of the pipelines API. Signs requests with SigV4 when given an AWS session."""

    base_url: str
    session: boto3.Session | None = None

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._http = requests.Session()

    def _request(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, body: Any = None
    ) -> dict[str, Any]:
        url = self.base_url + path
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        prepared = requests.Request(method, url, params=params, data=data, headers=headers).prepare()
        if self.session is not None:
            self._sign(prepared)
        try:
            response = self._http.send(prepared, timeout=API_TIMEOUT_SECONDS)
        except requests.RequestException as error:
            raise ServiceUnreachable(
                f"cannot reach the pipelines API at {self.base_url}: {type(error).__name__}"
            ) from None
        try:
            document = response.json()
        except ValueError:
            document = {"message": response.text[:500]}
        if response.status_code >= 500:
            request_id = document.get("request_id")
            raise ServiceFailed(
                f"the pipelines API at {self.base_url} failed with HTTP {response.status_code}"
                + (f" (request id {request_id})" if request_id else "")
            )
        if response.status_code >= 400:
            raise ApiRefused(response.status_code, document if isinstance(document, dict) else {})
        return document

    def _sign(self, prepared: requests.PreparedRequest) -> None:
        assert self.session is not None
        credentials = self.session.get_credentials()
        if credentials is None:
            raise ServiceUnreachable("no AWS credentials found to sign requests to the pipelines API")
        match = _EXECUTE_API_HOST.match(self.base_url)
        region = match.group(1) if match else (self.session.region_name or "us-east-1")
        aws_request = AWSRequest(
            method=prepared.method, url=prepared.url, data=prepared.body, headers=dict(prepared.headers)
        )
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(aws_request)
        prepared.headers.update(dict(aws_request.headers))

    def provision(self, spec: Any) -> dict[str, Any]:
        return self._request("POST", "/pipelines", body=spec)

    def list_pipelines(
        self,
        *,
        status: str | None = None,
        owner: str | None = None,
        limit: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        params = {"status": status, "owner": owner, "limit": str(limit) if limit else None, "next_token": next_token}
        return self._request("GET", "/pipelines", params={k: v for k, v in params.items() if v is not None})

    def describe(self, pipeline_id: str) -> dict[str, Any]:
        return self._request("GET", f"/pipelines/{quote(pipeline_id, safe='')}")

    def teardown(self, pipeline_id: str, *, keep_topics: bool) -> dict[str, Any]:
        return self._request(
            "DELETE",
            f"/pipelines/{quote(pipeline_id, safe='')}",
            params={"keep_topics": "true" if keep_topics else "false"},
        )

    def answer_approval(self, pipeline_id: str, *, approved: bool, comment: str | None) -> dict[str, Any]:
        decision: dict[str, Any] = {"approved": approved}
        if comment:
            decision["comment"] = comment
        return self._request("POST", f"/pipelines/{quote(pipeline_id, safe='')}/approval", body=decision)


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


# -- reconciliation ----------------------------------------------------------------

RECONCILE_FUNCTION = by_key("Reconcile")
# A sweep may take the function's whole timeout: wait that long for its answer, and never
# retry a synchronous invocation that may still be running.
_RECONCILE_INVOKE_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 1},
    connect_timeout=10,
    read_timeout=RECONCILE_FUNCTION.timeout_seconds + 60,
)


def reconcile_event(repair: bool, repair_only: Iterable[str] | None) -> dict[str, Any]:
    """The Reconcile function's event: `{"repair": ...}`, with `"pipelines"` when the repair is limited to some ids."""
    event: dict[str, Any] = {"repair": repair}
    if repair_only is not None:
        event["pipelines"] = sorted(set(repair_only))
    return event


def reconcile_locally(
    environment: Mapping[str, str], *, repair: bool, repair_only: Iterable[str] | None = None
) -> dict[str, Any]:
    """Run one sweep in this process with `environment` (the local stack's, as its engine sees it); the report.

    Blocks for the sweep. Sets `environment` in this process's environment, as
    the sweep's modules read their tables, endpoints and thresholds from it.
    Raises `ReconcileSettingsInvalid` for a bad `RECONCILE_*` variable and the
    AWS client's error when the registry cannot be read; any other failure is
    in the report.
    """
    # The sweep's dependencies (psycopg, kafka-python, Powertools) load only when a sweep runs here.
    from lambdas import aws
    from lambdas.common.observability import logger
    from lambdas.reconcile import reconcile
    from lambdas.reconcile_policy import ReconcileSettings

    os.environ.update(environment)
    aws.reset_clients()
    # The handlers' JSON log lines belong on stderr here: stdout carries the report.
    logger.registered_handler.setStream(sys.stderr)
    settings = ReconcileSettings.from_env()
    only = frozenset(repair_only) if repair_only is not None else None
    return reconcile(repair=repair, settings=settings, repair_only=only).to_dict()


def reconcile_on_aws(
    session: boto3.Session,
    *,
    repair: bool,
    repair_only: Iterable[str] | None = None,
    function_name: str = RECONCILE_FUNCTION.function_name,
) -> dict[str, Any]:
    """Invoke the deployed Reconcile function synchronously; its report.

    Blocks until the sweep ends (up to the function's timeout). Raises
    `ServiceFailed` naming the function's error when the invocation failed.
    """
    client = session.client("lambda", config=_RECONCILE_INVOKE_CONFIG)
    response = client.invoke(
        FunctionName=function_name,
        InvocationType="RequestResponse",
        Payload=json.dumps(reconcile_event(repair, repair_only)).encode(),
    )
    document = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        error = document if isinstance(document, dict) else {}
        raise ServiceFailed(
            f"the {function_name} function failed: "
            f"{error.get('errorType', response['FunctionError'])}: {error.get('errorMessage', '')}".rstrip(": ")
        )
    if not isinstance(document, dict) or "summary" not in document:
        raise ServiceFailed(f"the {function_name} function returned no reconcile report")
    return document


def reconcile_findings(report: Mapping[str, Any]) -> list[str]:
    """What a sweep found that needs a person's attention, one line each; empty when all is well.

    Drift counts even when the sweep repaired it (a restarted connector, a
    re-aligned publication, a deleted orphan): something changed that should not have.
    """
    findings = []
    for pipeline in report["pipelines"]:
        pipeline_id = pipeline["pipeline_id"]
        if pipeline["status"] != "ACTIVE":
            findings.append(
                f"{pipeline_id} is {pipeline['status']}: {'; '.join(pipeline['problems']) or 'no reason given'}"
            )
        if pipeline["restarted"]:
            findings.append(f"{pipeline_id}: restarted {', '.join(pipeline['restarted'])}")
        if pipeline["publication_added"] or pipeline["publication_removed"]:
            findings.append(f"{pipeline_id}: publication re-aligned")
    for orphan in report["orphans"]:
        outcome = "deleted" if orphan["deleted"] else "left in place"
        findings.append(f"orphan {orphan['kind']} {orphan['name']} at {orphan['location']} ({outcome})")
    for stuck in report["stuck"]:
        findings.append(f"{stuck['pipeline_id']} stuck in {stuck['status']} for {stuck['minutes_since_update']} min")
    return findings


def reconcile_incomplete(report: Mapping[str, Any]) -> bool:
    """True when the sweep could not check or repair something (a source, cluster or AWS API it could not use)."""
    return bool(report["errors"]) or any(pipeline["errors"] for pipeline in report["pipelines"])
