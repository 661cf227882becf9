"""Reconcile: compare what the registry says should exist with what does, and repair.

An EventBridge schedule invokes `handler`; `reconcile` is the plain function
behind it (the CLI and the tests call it directly). One sweep:

1. reads every registry entry (paged) and the health records of earlier sweeps;
2. visits each source database, Connect cluster and Kafka cluster named by any
   entry once, whatever the number of pipelines on it: takes its inventory,
   re-aligns publications whose tables differ from the spec, restarts FAILED
   connectors and tasks of ACTIVE and DEGRADED pipelines;
3. decides each such pipeline's status (`lambdas.reconcile_policy.assess`)
   and records it with the health record on the registry entry;
4. finds orphans (`lambdas.reconcile_orphans`) and, only with `repair=True`,
   deletes them with the workflows' compensations;
5. reports entries stuck in PROVISIONING or DELETING.

A source or cluster that cannot be reached is reported with the pipelines it
affects and the sweep goes on; those pipelines keep their status. The sweep
is safe to run again at any moment: a second run finds nothing more to
repair. It blocks for as long as its dependencies take to answer, each call
bounded by its client's timeout.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import psycopg
from botocore.exceptions import BotoCoreError, ClientError
from kafka.errors import KafkaError

from lambdas import registry, secrets

# The registry keeps specs with their unset optionals as nulls; the API's document form leaves them out.
from lambdas.api import spec_document
from lambdas.common.failures import translate
from lambdas.common.observability import invocation_log_keys, logger
from lambdas.common.redaction import install_root_filter, redact
from lambdas.connect.client import ConnectClient
from lambdas.connect.deploy import delete_connector
from lambdas.errors import StepError
from lambdas.reconcile_clusters import delete_orphan_topics, list_topics, observe_connectors
from lambdas.reconcile_orphans import (
    Orphan,
    ResourceKind,
    expected_location,
    expected_names,
    find_orphans,
    source_database,
    source_server,
)
from lambdas.reconcile_policy import (
    LIVE_STATUSES,
    RECONCILED_STATUSES,
    ConnectorObservation,
    HealthRecord,
    ReconcileSettings,
    SlotObservation,
    assess,
    is_stuck,
)
from lambdas.reconcile_report import (
    PipelineReport,
    ReconcileReport,
    StuckExecution,
    TargetError,
    TargetKind,
    count_statuses,
    emit_metrics,
)
from lambdas.reconcile_source import SourceInventory, drop_orphans, open_source, realign_publication, take_inventory
from lambdas.reconcile_state import read_health_records, save_assessment
from lambdas.registry import PipelineStatus, RegistryEntry
from lambdas.spec import PipelineSpec, parse_spec

REGISTRY_PAGE_SIZE = 100
# boto3 clients are thread-safe; each write touches its own pipeline's entry and report.
RECORD_WORKERS = 8
# Deleted in this order, so nothing still uses what is removed: connectors stop reading
# before their slot goes, the slot's walsender ends before its role is dropped.
_REPAIR_ORDER: tuple[ResourceKind, ...] = (
    "connector", "slot", "publication", "heartbeat_table", "role", "topic", "secret",
)
_SOURCE_KINDS: tuple[ResourceKind, ...] = ("slot", "publication", "heartbeat_table", "role")
# What a dependency may raise when it cannot be used; anything else is a bug and ends the sweep.
_TARGET_ERRORS = (StepError, psycopg.Error, BotoCoreError, ClientError, KafkaError)

T = TypeVar("T")


@dataclass
class _Pipeline:
    """A registered pipeline with its parsed spec, and the report of it being reconciled."""

    entry: RegistryEntry
    spec: PipelineSpec
    report: PipelineReport | None = None  # set for ACTIVE and DEGRADED pipelines
    connectors: list[ConnectorObservation] | None = None
    slot: SlotObservation | None = None
    unrepaired_drift: list[str] = field(default_factory=list)


def reconcile(
    repair: bool = False,
    now: datetime | None = None,
    settings: ReconcileSettings | None = None,
    repair_only: Collection[str] | None = None,
) -> ReconcileReport:
    """Run one sweep over every registered pipeline; return its report.

    Connectors and tasks found FAILED are restarted and publications
    re-aligned on every run; orphans are only deleted with `repair=True`, and
    with `repair_only` only the orphans of those pipeline ids (so an operator
    can repair what they reviewed, and nothing else). `now` is the sweep's
    clock (defaults to the current time). Raises only when the registry itself
    cannot be read; every other failure is in the report.
    """
    settings = settings or ReconcileSettings()
    now = now or datetime.now(UTC)
    started = time.monotonic()
    report = ReconcileReport(started_at=now.isoformat(timespec="seconds"), repair=repair)
    entries = _registered_entries()
    report.registered = len(entries)
    health = read_health_records()
    pipelines = _parse(entries, report)

    inventories = _sweep_sources(pipelines, report)
    connectors = _sweep_connect(pipelines, report)
    topics = _sweep_kafka(pipelines, report)
    replication_secrets = _attempt(report, "secrets", "secretsmanager", [], secrets.list_cdcflow_secrets)

    reconciled = [pipeline for pipeline in pipelines if pipeline.report is not None]

    def record(pipeline: _Pipeline) -> None:
        _record(pipeline, health.get(pipeline.entry.pipeline_id, HealthRecord()), settings, now)

    # One conditional write per pipeline: written side by side, they cost a fraction of the sweep.
    with ThreadPoolExecutor(max_workers=RECORD_WORKERS) as pool:
        for _ in pool.map(record, reconciled):
            pass
    report.pipelines = [pipeline.report for pipeline in reconciled if pipeline.report is not None]

    live_specs = [pipeline.spec for pipeline in pipelines if pipeline.entry.status in LIVE_STATUSES]
    statuses_by_id = {entry.pipeline_id: entry.status for entry in entries}
    orphans = _find_orphans(inventories, connectors, topics, replication_secrets, live_specs, statuses_by_id)
    report.orphans = _still_orphaned(orphans)
    if repair:
        chosen = [o for o in report.orphans if repair_only is None or o.pipeline_id in repair_only]
        report.orphans = _delete_orphans(report.orphans, chosen, pipelines)

    report.stuck = _stuck(entries, now, settings)
    final_status = {p.pipeline_id: p.status for p in report.pipelines}
    report.status_counts = count_statuses([final_status.get(e.pipeline_id, e.status) for e in entries])
    report.finished_at = (now + timedelta(seconds=time.monotonic() - started)).isoformat(timespec="seconds")
    return report


def handler(event: Any, context: Any) -> dict[str, Any]:
    """The Lambda entry point: `{"repair": true}` deletes orphans; any other event (EventBridge's own) only reports.

    `{"repair": true, "pipelines": ["orders"]}` deletes only the orphans of
    the named pipeline ids. Logs the report once, emits its metrics, and
    returns it as JSON. Raises ValueError for a `repair` that is not a boolean
    or `pipelines` that is not a list of ids, and `ReconcileSettingsInvalid`
    for a bad `RECONCILE_*` variable, before anything is touched.
    """
    install_root_filter()
    repair = _repair_requested(event)
    repair_only = _repair_scope(event)
    settings = ReconcileSettings.from_env()
    with invocation_log_keys(context, step="Reconcile"):
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
        raise ValueError(f"repair: must be true or false, got {event['repair']!r}")
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


# -- the registry -----------------------------------------------------------


def _registered_entries() -> list[RegistryEntry]:
    entries: list[RegistryEntry] = []
    start_key = None
    while True:
        page = registry.list_entries(limit=REGISTRY_PAGE_SIZE, start_key=start_key)
        entries += page.entries
        if page.next_key is None:
            return sorted(entries, key=lambda entry: entry.pipeline_id)
        start_key = page.next_key


def _parse(entries: list[RegistryEntry], report: ReconcileReport) -> list[_Pipeline]:
    pipelines = []
    for entry in entries:
        try:
            spec = parse_spec(spec_document(entry.spec))
        except StepError as exc:
            report.errors.append(TargetError("registry", entry.pipeline_id, _describe(exc), (entry.pipeline_id,)))
            continue
        pipeline = _Pipeline(entry, spec)
        if entry.status in RECONCILED_STATUSES:
            pipeline.report = PipelineReport(entry.pipeline_id, entry.status, entry.status)
        pipelines.append(pipeline)
    return pipelines


def _record(pipeline: _Pipeline, previous: HealthRecord, settings: ReconcileSettings, now: datetime) -> None:
    """Decide the pipeline's status from what the sweep saw and store it with its health record."""
    report = pipeline.report
    assert report is not None
    entry = pipeline.entry
    assessment = assess(
        entry.status, previous, settings, now,
        connectors=pipeline.connectors,
        slot=pipeline.slot,
        restarts_made=len(report.restarted),
        other_problems=pipeline.unrepaired_drift,
    )
    report.failed_sweeps = assessment.health.failed_sweeps
    report.restarts_in_window = len(assessment.health.restarts)
    report.problems = list(assessment.problems)
    try:
        saved = save_assessment(
            entry.pipeline_id, entry.execution_arn, assessment.health, assessment.status, entry.status, now,
            assessment.problems,
        )
    except (BotoCoreError, ClientError) as exc:
        report.errors.append(f"the registry entry could not be updated: {_describe(exc)}")
        return
    if saved:
        report.status = assessment.status
    else:
        report.notes.append("the registry entry changed during the sweep; its status was left to the newer change")


# -- the source databases ----------------------------------------------------


def _sweep_sources(pipelines: list[_Pipeline], report: ReconcileReport) -> dict[str, SourceInventory]:
    """Visit every source database once; returns the inventory of each one that answered."""
    inventories: dict[str, SourceInventory] = {}
    for location, group in _group(pipelines, lambda p: source_database(p.spec)):
        reconciled = [pipeline for pipeline in group if pipeline.report is not None]
        try:
            with open_source(_admin_spec(group)) as conn:
                inventory = take_inventory(conn)
                for pipeline in reconciled:
                    _check_source(conn, inventory, pipeline)
        except _TARGET_ERRORS as exc:
            _unreachable(report, "source", location, reconciled, exc)
            continue
        inventories[location] = inventory
    return inventories


def _check_source(conn: psycopg.Connection, inventory: SourceInventory, pipeline: _Pipeline) -> None:
    report = pipeline.report
    assert report is not None
    names = pipeline.spec.names
    pipeline.slot = inventory.slots.get(names.replication_slot) or SlotObservation(names.replication_slot, exists=False)
    report.slot_active = pipeline.slot.active if pipeline.slot.exists else None
    report.slot_lag_bytes = pipeline.slot.lag_bytes
    if pipeline.slot.exists and not pipeline.slot.active:
        report.notes.append(f"replication slot {names.replication_slot} is inactive: no connector is reading it")
    try:
        added, removed = realign_publication(conn, pipeline.spec, names.publication in inventory.publications)
    except _TARGET_ERRORS as exc:
        report.errors.append(f"publication {names.publication} could not be re-aligned: {_describe(exc)}")
        pipeline.unrepaired_drift.append(f"publication {names.publication} may differ from the spec")
        return
    report.publication_added, report.publication_removed = added, removed


def _admin_spec(group: list[_Pipeline]) -> PipelineSpec:
    """The spec whose admin secret opens the database: a live pipeline's first, as a deleted one's may be gone."""
    return min(group, key=lambda p: (p.entry.status not in LIVE_STATUSES, p.entry.pipeline_id)).spec


# -- Kafka Connect and Kafka ---------------------------------------------------


def _sweep_connect(pipelines: list[_Pipeline], report: ReconcileReport) -> dict[str, dict[str, Any]]:
    """Visit every Connect cluster once: read all statuses, restart what FAILED. Returns the statuses per cluster."""
    by_cluster: dict[str, dict[str, Any]] = {}
    for url, group in _group(pipelines, lambda p: p.spec.connect.url):
        reconciled = [pipeline for pipeline in group if pipeline.report is not None]
        with ConnectClient(url) as client:
            try:
                statuses = client.list_with_statuses()
            except _TARGET_ERRORS as exc:
                _unreachable(report, "connect", url, reconciled, exc)
                continue
            by_cluster[url] = statuses
            for pipeline in reconciled:
                _check_connectors(client, statuses, pipeline)
    return by_cluster


def _check_connectors(client: ConnectClient, statuses: dict[str, Any], pipeline: _Pipeline) -> None:
    report = pipeline.report
    assert report is not None
    names = pipeline.spec.names
    pipeline.connectors = observe_connectors(statuses, [names.source_connector, names.sink_connector])
    report.source_connector, report.sink_connector = (connector.state for connector in pipeline.connectors)
    for connector in pipeline.connectors:
        if connector.state == "PAUSED":
            report.notes.append(f"connector {connector.name} is paused")
        if not connector.failed:
            continue
        what = f"tasks {', '.join(map(str, connector.failed_tasks))}" if connector.failed_tasks else "the connector"
        report.notes.append(f"connector {connector.name} FAILED ({what}): {connector.trace_summary or 'no trace'}")
        try:
            client.restart(connector.name, include_tasks=True, only_failed=True)
        except _TARGET_ERRORS as exc:
            report.errors.append(f"connector {connector.name} could not be restarted: {_describe(exc)}")
            continue
        report.restarted.append(connector.name)


def _sweep_kafka(pipelines: list[_Pipeline], report: ReconcileReport) -> dict[str, list[str]]:
    """List the topics of every Kafka cluster once."""
    topics: dict[str, list[str]] = {}
    for bootstrap, group in _group(pipelines, lambda p: p.spec.kafka.bootstrap_servers):
        affected = [pipeline for pipeline in group if pipeline.report is not None]
        listed = _attempt(report, "kafka", bootstrap, affected, partial(list_topics, bootstrap))
        if listed is not None:
            topics[bootstrap] = listed
    return topics


# -- orphans --------------------------------------------------------------------


def _find_orphans(
    inventories: dict[str, SourceInventory],
    connector_statuses_by_cluster: dict[str, dict[str, Any]],
    topics: dict[str, list[str]],
    replication_secrets: list[str] | None,
    live_specs: list[PipelineSpec],
    statuses: dict[str, PipelineStatus],
) -> list[Orphan]:
    orphans: list[Orphan] = []
    roles_by_server: dict[str, set[str]] = defaultdict(set)
    for location, inventory in inventories.items():
        orphans += find_orphans("slot", location, inventory.slots, live_specs, statuses)
        orphans += find_orphans("publication", location, inventory.publications, live_specs, statuses)
        orphans += find_orphans("heartbeat_table", location, inventory.heartbeat_tables, live_specs, statuses)
        roles_by_server[location.rsplit("/", 1)[0]].update(inventory.roles)
    for server, roles in roles_by_server.items():
        orphans += find_orphans("role", server, roles, live_specs, statuses)
    for url, connectors in connector_statuses_by_cluster.items():
        orphans += find_orphans("connector", url, connectors, live_specs, statuses)
    for bootstrap, names in topics.items():
        orphans += find_orphans("topic", bootstrap, names, live_specs, statuses)
    if replication_secrets is not None:
        orphans += find_orphans("secret", "secretsmanager", replication_secrets, live_specs, statuses)
    return orphans


def _still_orphaned(orphans: list[Orphan]) -> list[Orphan]:
    """`orphans` less those whose pipeline was registered (or re-provisioned) while the sweep ran.

    Each pipeline id is read again with a strongly consistent read, so a
    provisioning that started after the registry was listed keeps what it
    has already created.
    """
    kept = []
    entries: dict[str, RegistryEntry | None] = {}
    for orphan in orphans:
        if orphan.pipeline_id not in entries:
            entries[orphan.pipeline_id] = registry.get(orphan.pipeline_id)
        entry = entries[orphan.pipeline_id]
        if entry is not None and entry.status in LIVE_STATUSES:
            spec = parse_spec(spec_document(entry.spec))
            owned = orphan.name in expected_names(orphan.kind, spec)
            if owned and expected_location(orphan.kind, spec) == orphan.location:
                continue
        kept.append(orphan)
    return kept


def _delete_orphans(orphans: list[Orphan], chosen: list[Orphan], pipelines: list[_Pipeline]) -> list[Orphan]:
    """Delete the `chosen` orphans with the matching compensations; returns `orphans`, those marked deleted or with their error."""
    outcomes: dict[tuple[str, str, str], Orphan] = {}
    by_kind: dict[ResourceKind, list[Orphan]] = defaultdict(list)
    for orphan in chosen:
        by_kind[orphan.kind].append(orphan)
    specs_by_location = _source_specs(pipelines)
    for kind in _REPAIR_ORDER:
        for location, group in _group(by_kind.get(kind, []), lambda orphan: orphan.location):
            for orphan in _delete_group(kind, location, group, specs_by_location):
                outcomes[(orphan.kind, orphan.location, orphan.name)] = orphan
    return [outcomes.get((orphan.kind, orphan.location, orphan.name), orphan) for orphan in orphans]


def _delete_group(
    kind: ResourceKind, location: str, orphans: list[Orphan], specs_by_location: dict[str, PipelineSpec]
) -> list[Orphan]:
    """Delete orphans of one kind at one location; each comes back marked deleted or with its error."""
    names = [orphan.name for orphan in orphans]
    try:
        if kind == "connector":
            with ConnectClient(location) as client:
                errors = _each(names, lambda name: delete_connector(client, name))
        elif kind == "topic":
            errors = delete_orphan_topics(location, names)
        elif kind == "secret":
            errors = _each(names, secrets.delete_secret)
        else:
            # A role belongs to the server: it is dropped through any database of that server cdcflow knows.
            spec = _server_spec(location, specs_by_location) if kind == "role" else specs_by_location[location]
            with open_source(spec) as conn:
                errors = drop_orphans(conn, kind, {orphan.name: orphan.pipeline_id for orphan in orphans}, spec)
    except _TARGET_ERRORS as exc:
        errors = dict.fromkeys(names, _describe(exc))
    return [replace(orphan, deleted=errors.get(orphan.name) is None, error=errors.get(orphan.name)) for orphan in orphans]


def _each(names: list[str], delete: Callable[[str], object]) -> dict[str, str | None]:
    """Call `delete` for every name; returns each name's error (None when it succeeded)."""
    errors: dict[str, str | None] = {}
    for name in names:
        try:
            delete(name)
            errors[name] = None
        except _TARGET_ERRORS as exc:
            errors[name] = _describe(exc)
    return errors


def _source_specs(pipelines: list[_Pipeline]) -> dict[str, PipelineSpec]:
    """For each source database location, the spec whose admin secret opens it."""
    return {location: _admin_spec(group) for location, group in _group(pipelines, lambda p: source_database(p.spec))}


def _server_spec(server: str, specs_by_location: dict[str, PipelineSpec]) -> PipelineSpec:
    return next(spec for location, spec in sorted(specs_by_location.items()) if source_server(spec) == server)


# -- stuck executions and helpers ----------------------------------------------


def _stuck(entries: list[RegistryEntry], now: datetime, settings: ReconcileSettings) -> list[StuckExecution]:
    stuck = []
    for entry in entries:
        if is_stuck(entry.status, entry.updated_at, now, settings):
            minutes = int((now - datetime.fromisoformat(entry.updated_at)).total_seconds() // 60)
            stuck.append(StuckExecution(
                entry.pipeline_id, entry.status, entry.execution_arn, entry.current_step, entry.updated_at, minutes,
            ))
    return stuck


def _group(items: Iterable[T], key: Callable[[T], str]) -> Iterator[tuple[str, list[T]]]:
    """`items` grouped by `key`, groups in key order, items in their original order."""
    groups: dict[str, list[T]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    yield from sorted(groups.items())


def _attempt(
    report: ReconcileReport, target: TargetKind, location: str, affected: list[_Pipeline], call: Callable[[], T]
) -> T | None:
    """`call()`, or None with the failure reported against `affected`."""
    try:
        return call()
    except _TARGET_ERRORS as exc:
        _unreachable(report, target, location, affected, exc)
        return None


def _unreachable(
    report: ReconcileReport, target: TargetKind, location: str, affected: list[_Pipeline], exc: BaseException
) -> None:
    description = _describe(exc)
    report.errors.append(TargetError(target, location, description, tuple(p.entry.pipeline_id for p in affected)))
    for pipeline in affected:
        if pipeline.report is not None:
            pipeline.report.errors.append(f"{target} {location} could not be checked: {description}")


def _describe(exc: BaseException) -> str:
    """`ClassName: message` of the named error `exc` stands for, with known secrets masked."""
    named = translate(exc)
    return redact(f"{type(named).__name__}: {named}")
