"""Running a reconciliation sweep: here against the local stack, or by invoking the deployed function.

`reconcile_locally` runs one sweep in this process against the local stack;
`reconcile_on_aws` invokes the deployed Reconcile function. Both return the
sweep's report as JSON, which `reconcile_findings` and `reconcile_incomplete`
read.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

import boto3
from botocore.config import Config

from statemachines.catalogue import by_key
from cdcflow.errors import ServiceFailed

RECONCILE_FUNCTION = by_key("Reconcile")
# How long a local sweep waits for one that holds the reconcile lease (the stack's scheduled sweep, which
# takes seconds) before it gives up, and how often it asks again.
LEASE_WAIT_SECONDS = 60.0
LEASE_POLL_SECONDS = 0.5
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
    Raises `ReconcileSettingsInvalid` for a bad `RECONCILE_*` variable,
    `ServiceFailed` when another sweep holds the reconcile lease for longer
    than `LEASE_WAIT_SECONDS`, and the
    AWS client's error when the registry cannot be read; any other failure is
    in the report.
    """
    # The sweep's dependencies (psycopg, kafka-python, Powertools) load only when a sweep runs here.
    from lambdas import aws
    from lambdas.common.observability import logger
    from lambdas.reconcile.lease import ReconcileAlreadyRunning, reconcile_lease
    from lambdas.reconcile.policy import ReconcileSettings
    from lambdas.reconcile.sweep import reconcile

    os.environ.update(environment)
    aws.reset_clients()
    # The handlers' JSON log lines belong on stderr here: stdout carries the report.
    logger.registered_handler.setStream(sys.stderr)
    settings = ReconcileSettings.from_env()
    only = frozenset(repair_only) if repair_only is not None else None
    # The same lease as the deployed function's: this sweep and another on these tables never overlap.
    # The local stack's own scheduled sweep holds it for a few seconds a minute: wait for that one to end.
    deadline = time.monotonic() + LEASE_WAIT_SECONDS
    while True:
        try:
            with reconcile_lease(f"cdcflow reconcile, pid {os.getpid()} on {socket.gethostname()}"):
                return reconcile(repair=repair, settings=settings, repair_only=only).to_dict()
        except ReconcileAlreadyRunning as error:
            if time.monotonic() >= deadline:
                raise ServiceFailed(str(error)) from None
            time.sleep(LEASE_POLL_SECONDS)


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
        if pipeline["errors"]:
            # Its own dependency down or a repair refused: a finding about this pipeline, not a gap in the sweep.
            findings.append(f"{pipeline_id} could not be checked or repaired: {'; '.join(pipeline['errors'])}")
        if pipeline["restarted"]:
            findings.append(f"{pipeline_id}: restarted {', '.join(pipeline['restarted'])}")
        breaching = sorted(alarm for alarm, state in (pipeline.get("alarms") or {}).items() if state == "ALARM")
        if breaching:
            findings.append(f"{pipeline_id}: alarm {', '.join(breaching)} in ALARM")
        if pipeline["publication_added"] or pipeline["publication_removed"]:
            findings.append(f"{pipeline_id}: publication re-aligned")
    reported = {pipeline["pipeline_id"] for pipeline in report["pipelines"]}
    for error in report["errors"]:
        # Pipelines not reconciled (FAILED, PROVISIONING, ...) whose dependency is down: named here, not a gap.
        unlisted = [name for name in error["pipelines"] if name not in reported]
        if _error_scope(error) == "pipelines" and unlisted:
            findings.append(f"{error['target']} {error['location']} is unreachable ({error['error']}); "
                            f"it serves {', '.join(unlisted)} (not live as recorded)")
    for orphan in report["orphans"]:
        outcome = "deleted" if orphan["deleted"] else "left in place"
        findings.append(f"orphan {orphan['kind']} {orphan['name']} at {orphan['location']} ({outcome})")
    for stuck in report["stuck"]:
        findings.append(f"{stuck['pipeline_id']} stuck in {stuck['status']} for {stuck['minutes_since_update']} min")
    return findings


def reconcile_incomplete(report: Mapping[str, Any]) -> bool:
    """True when the sweep itself could not check something: the registry, an AWS API, or a dependency
    that no pipeline names (an orphan scan). A pipeline's own unreachable source, cluster or sink is a
    finding about that pipeline (`reconcile_findings`), so one dead pipeline does not hide the others' health.
    """
    return any(_error_scope(error) == "sweep" for error in report["errors"])


def _error_scope(error: Mapping[str, Any]) -> str:
    # Reports from a Reconcile function older than the `scope` field: the same rule, applied here.
    if "scope" in error:
        return str(error["scope"])
    return "pipelines" if error["target"] in ("source", "connect", "kafka", "sink") and error["pipelines"] else "sweep"
