"""The local stack's reconciliation schedule: what EventBridge's rule does on AWS, in the engine service.

On AWS an EventBridge rule (`infra/schedule.py`, `reconcileSchedule`) invokes
the Reconcile function on a rate with its own scheduled event, which only
reports and restarts what failed (it deletes no orphans). Locally the engine
service, which runs the stack's Lambda handlers, invokes the same handler
with the same kind of event every `CDCFLOW_LOCAL_RECONCILE_INTERVAL_SECONDS`
(default 60; 0 turns the schedule off), the first time one interval after
it starts. A sweep that finds another holding the reconcile lease is
skipped, as the deployed function's invocation fails then; any other failure
is logged and the schedule goes on.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from statemachines.catalogue import by_key

INTERVAL_ENV = "CDCFLOW_LOCAL_RECONCILE_INTERVAL_SECONDS"
DEFAULT_INTERVAL_SECONDS = 60.0
RECONCILE_FUNCTION = by_key("Reconcile")
# The request ids of the scheduled invocations: the lease such a sweep holds names it ("..., request local-...").
REQUEST_ID_PREFIX = "local-schedule-"


def interval_from_env(environ: Mapping[str, str]) -> float | None:
    """The schedule's interval in seconds, None when it is off; ValueError naming the variable when malformed."""
    raw = environ.get(INTERVAL_ENV)
    if raw is None or raw == "":
        return DEFAULT_INTERVAL_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"{INTERVAL_ENV}={raw!r} is not a number of seconds (0 turns the schedule off)") from None
    if seconds < 0 or seconds != seconds:
        raise ValueError(f"{INTERVAL_ENV}={raw!r} must be 0 (off) or a positive number of seconds")
    return seconds or None


def scheduled_event(now: datetime) -> dict[str, Any]:
    """The event an EventBridge schedule delivers (the Reconcile handler only reports and restarts on it)."""
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": "us-east-1", "resources": [], "detail": {},
    }


def _invoke_reconcile(event: dict[str, Any]) -> dict[str, Any]:
    from lambdas.reconcile import handler
    from localsfn.lambdas import LambdaContext

    arn = f"arn:aws:lambda:us-east-1:000000000000:function:{RECONCILE_FUNCTION.function_name}"
    context = LambdaContext(arn, RECONCILE_FUNCTION.timeout_seconds)
    context.aws_request_id = f"{REQUEST_ID_PREFIX}{uuid.uuid4()}"
    return handler(event, context)


def forget_dead_sweep() -> bool:
    """Release the reconcile lease when a scheduled sweep of the last engine holds it; True if it did.

    The schedule runs in the engine's process, so such a sweep died with it
    (a SIGKILL, or a SIGTERM in the middle of a sweep); left in place, its
    lease would hold every sweep off until it expires (16 minutes). A lease
    of anyone else (`cdcflow reconcile`) is left alone.
    """
    from botocore.exceptions import ClientError

    from lambdas import aws
    from lambdas.reconcile.lease import LEASE_ID, _table

    client = aws.client("dynamodb")
    held = client.get_item(TableName=_table(), Key={"id": {"S": LEASE_ID}}, ConsistentRead=True).get("Item")
    if not held or f"request {REQUEST_ID_PREFIX}" not in held.get("owner", {}).get("S", ""):
        return False
    try:
        client.delete_item(
            TableName=_table(), Key={"id": {"S": LEASE_ID}}, ConditionExpression="#token = :token",
            ExpressionAttributeNames={"#token": "token"}, ExpressionAttributeValues={":token": held["token"]},
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


class ReconcileSchedule:
    """A daemon thread that runs a sweep every `interval` seconds until `stop()`.

    `sweep(event)` is the Reconcile handler by default; `log` receives one line per sweep.
    """

    def __init__(
        self, interval: float, *, sweep: Callable[[dict[str, Any]], dict[str, Any]] = _invoke_reconcile,
        log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    ) -> None:
        self.interval = interval
        self.sweeps = 0
        self._sweep = sweep
        self._log = log
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconcile-schedule", daemon=True)

    def start(self) -> ReconcileSchedule:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self._stopped.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            self.run_once()

    def run_once(self) -> None:
        """One scheduled sweep; never raises (a failed sweep is logged, the next one comes on time)."""
        from lambdas.reconcile.lease import ReconcileAlreadyRunning

        self.sweeps += 1
        try:
            report = self._sweep(scheduled_event(datetime.now(UTC)))
        except ReconcileAlreadyRunning as error:
            self._log(f"scheduled reconcile skipped: {error}")
            return
        except Exception as error:  # noqa: BLE001 - the schedule outlives one failed sweep, as EventBridge's does
            self._log(f"scheduled reconcile failed: {type(error).__name__}: {error}")
            return
        restarted = sorted({name for pipeline in report.get("pipelines", []) for name in pipeline.get("restarted", [])})
        self._log("scheduled reconcile: " + json.dumps({"pipelines": len(report.get("pipelines", [])),
                                                       "restarted": restarted}))


def start_from_env(environ: Mapping[str, str]) -> ReconcileSchedule | None:
    """Start the schedule `environ` asks for (see `interval_from_env`); None when it is off."""
    interval = interval_from_env(environ)
    if interval is None:
        return None
    return ReconcileSchedule(interval).start()
