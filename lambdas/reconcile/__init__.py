"""Reconcile: the scheduled check of every registered pipeline against what exists, and its repairs.

`handler` is the Lambda entry point an EventBridge schedule invokes; it
parses the event and calls `reconcile` (`sweep`), the plain function the CLI
and the tests call. One module per concern:

- `sweep`: one sweep, visiting each dependency once and recording each
  pipeline's status;
- `source`, `clusters`, `sinks`: what a sweep reads of (and repairs on) a
  source database, the Connect and Kafka clusters, and an OpenSearch sink;
- `policy`: the pure rules (drift, DEGRADED, stuck) and their settings;
- `orphans`: which `cdcflow` names belong to no live pipeline (pure);
  `repair` finds them across the sweep's inventories and deletes them;
- `health`: the health record kept on each registry entry between sweeps;
- `report`: the sweep's report and the metrics drawn from it;
- `targets`: grouping by dependency and naming a dependency's failure;
- `lease`: the lease that keeps two sweeps from running at once.
"""

from __future__ import annotations

from typing import Any

from lambdas.common.observability import invocation_log_keys, logger
from lambdas.common.redaction import install_root_filter
from lambdas.reconcile.lease import reconcile_lease
from lambdas.reconcile.policy import ReconcileSettings
from lambdas.reconcile.report import emit_metrics
from lambdas.reconcile.sweep import reconcile

__all__ = ["handler", "reconcile"]


def handler(event: Any, context: Any) -> dict[str, Any]:
    """The Lambda entry point: `{"repair": true}` deletes orphans; any other event (EventBridge's own) only reports.

    `{"repair": true, "pipelines": ["orders"]}` deletes only the orphans of
    the named pipeline ids. Logs the report once, emits its metrics, and
    returns it as JSON. Raises ValueError for a `repair` that is not a boolean
    or `pipelines` that is not a list of ids, and `ReconcileSettingsInvalid`
    for a bad `RECONCILE_*` variable, before anything is touched; raises
    `ReconcileAlreadyRunning` when another sweep holds the lease (the failed
    invocation goes to the function's on-failure destination after its retries).
    """
    install_root_filter()
    repair = _repair_requested(event)
    repair_only = _repair_scope(event)
    settings = ReconcileSettings.from_env()
    owner = f"the Reconcile function, request {getattr(context, 'aws_request_id', 'unknown')}"
    with invocation_log_keys(context, step="Reconcile"), reconcile_lease(owner):
        report = reconcile(repair=repair, settings=settings, repair_only=repair_only)
        document = report.to_dict()
        # CloudWatch Logs caps an event at 256 KB: the log line leaves out the healthy, unchanged pipelines.
        logger.info("Reconciliation finished", extra={"reconcile_report": _loggable(document)})
        emit_metrics(report)
    return document


def _repair_requested(event: Any) -> bool:
    if not isinstance(event, dict) or "repair" not in event:
        return False
    if not isinstance(event["repair"], bool):
        # A bad value in the event, as for `pipelines`: both are ValueError for the invoker.
        raise ValueError(f"repair: must be true or false, got {event['repair']!r}")  # noqa: TRY004
    return event["repair"]


def _repair_scope(event: Any) -> frozenset[str] | None:
    if not isinstance(event, dict) or "pipelines" not in event:
        return None
    pipelines = event["pipelines"]
    if not isinstance(pipelines, list) or not all(isinstance(p, str) and p for p in pipelines):
        raise ValueError(f"pipelines: must be a list of pipeline ids, got {pipelines!r}")
    return frozenset(pipelines)


def _loggable(document: dict[str, Any]) -> dict[str, Any]:
    def notable(pipeline: dict[str, Any]) -> bool:
        keys = ("restarted", "publication_added", "publication_removed", "problems", "notes", "errors")
        return pipeline["status"] != pipeline["previous_status"] or pipeline["status"] != "ACTIVE" or any(
            pipeline[key] for key in keys
        )

    return {**document, "pipelines": [pipeline for pipeline in document["pipelines"] if notable(pipeline)]}
