"""One reconciliation sweep: compare what the registry says should exist with what does, and repair.

`reconcile` is the plain function behind the Reconcile Lambda handler
(`lambdas.reconcile.handler`); the CLI and the tests call it directly. One
sweep:

1. reads every registry entry (paged) and the health records of earlier sweeps;
2. visits each source database, Connect cluster and Kafka cluster named by any
   entry once, whatever the number of pipelines on it: takes its inventory,
   re-aligns publications whose tables differ from the spec, restarts FAILED
   connectors and tasks of ACTIVE and DEGRADED pipelines (a PAUSED pipeline's
   connectors are left as they are, and its slot's retained WAL is reported);
3. decides each such pipeline's status (`lambdas.reconcile.policy.assess`)
   and records it with the health record on the registry entry;
4. finds orphans (`lambdas.reconcile.repair`) and, only with `repair=True`,
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
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import psycopg
from botocore.exceptions import BotoCoreError, ClientError

from lambdas import alarms, registry, secrets
from lambdas.connect.client import ConnectClient
from lambdas.errors import StepError
from lambdas.executions import has_ended
from lambdas.reconcile.clusters import committed_lsn, list_topics, observe_connectors
from lambdas.reconcile.health import read_health_records, save_assessment
from lambdas.reconcile.orphans import source_database
from lambdas.reconcile.policy import (
    LIVE_STATUSES,
    RECONCILED_STATUSES,
    ConnectorObservation,
    HealthRecord,
    ReconcileSettings,
    SlotObservation,
    assess,
    is_stuck,
    slot_broken,
)
from lambdas.reconcile.repair import delete_orphans, find_all_orphans, still_orphaned
from lambdas.reconcile.report import (
    PipelineReport,
    alarm_metrics,
    ReconcileReport,
    StuckExecution,
    TargetError,
    TargetKind,
    count_statuses,
)
from lambdas.reconcile.sinks import missing_sink_indices
from lambdas.reconcile.source import SourceInventory, open_source, realign_publication, take_inventory
from lambdas.reconcile.targets import TARGET_ERRORS, describe, grouped
from lambdas.registry import PipelineStatus, RegistryEntry
from lambdas.source.heartbeat import HEARTBEAT_ROW_ID
from lambdas.source.inventory import heartbeat_age_seconds
from lambdas.spec import PipelineSpec, parse_spec, spec_document

REGISTRY_PAGE_SIZE = 100
# boto3 clients are thread-safe; each write touches its own pipeline's entry and report.
RECORD_WORKERS = 8

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
    server_started_at: str | None = None  # the source server's start, for the slot's statistics
    connector_lsn: int | None = None  # where the source connector's committed offsets resume from
    previous: HealthRecord = field(default_factory=HealthRecord)
    broken: str | None = None  # why the slot cannot be trusted (`slot_broken`), once the sweep knows
    held: bool = False  # a lifecycle execution that is still running holds the entry (`_held`)


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
    for pipeline in pipelines:
        pipeline.previous = health.get(pipeline.entry.pipeline_id, HealthRecord())

    inventories = _sweep_sources(pipelines, report)
    connectors = _sweep_connect(pipelines, report)
    _sweep_sinks(pipelines, report)
    topics = _sweep_kafka(pipelines, report)
    replication_secrets = _attempt(report, "secrets", "secretsmanager", [], secrets.list_cdcflow_secrets)

    reconciled = [pipeline for pipeline in pipelines if pipeline.report is not None]

    def record(pipeline: _Pipeline) -> None:
        _record(pipeline, pipeline.previous, settings, now)
        _alarm_states(pipeline, now)

    # One conditional write per pipeline: written side by side, they cost a fraction of the sweep.
    with ThreadPoolExecutor(max_workers=RECORD_WORKERS) as pool:
        for _ in pool.map(record, reconciled):
            pass
    report.pipelines = [pipeline.report for pipeline in reconciled if pipeline.report is not None]

    live_specs = [pipeline.spec for pipeline in pipelines if pipeline.entry.status in LIVE_STATUSES]
    statuses_by_id = {entry.pipeline_id: entry.status for entry in entries}
    orphans = find_all_orphans(inventories, connectors, topics, replication_secrets, live_specs, statuses_by_id)
    # A pipeline held by a lifecycle execution (an update adding tables) owns more than its registered spec names.
    held = {pipeline.entry.pipeline_id for pipeline in pipelines if pipeline.held}
    orphans = [orphan for orphan in orphans if orphan.pipeline_id not in held]
    report.orphans = still_orphaned(orphans)
    if repair:
        chosen = [o for o in report.orphans if repair_only is None or o.pipeline_id in repair_only]
        report.orphans = delete_orphans(report.orphans, chosen, _source_specs(pipelines))

    report.stuck = _stuck(entries, now, settings)
    final_status = {p.pipeline_id: p.status for p in report.pipelines}
    report.status_counts = count_statuses([final_status.get(e.pipeline_id, e.status) for e in entries])
    report.finished_at = (now + timedelta(seconds=time.monotonic() - started)).isoformat(timespec="seconds")
    return report


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
            report.errors.append(TargetError("registry", entry.pipeline_id, describe(exc), (entry.pipeline_id,)))
            continue
        pipeline = _Pipeline(entry, spec, held=_held(entry))
        if entry.status in RECONCILED_STATUSES:
            pipeline.report = PipelineReport(entry.pipeline_id, entry.status, entry.status)
        pipelines.append(pipeline)
    return pipelines


def _held(entry: RegistryEntry) -> bool:
    """Whether a lifecycle execution still running holds `entry`.

    A claim whose execution ended without releasing it (an update that was
    stopped, so ran no compensation) holds nothing: the sweep then aligns the
    pipeline to its registered spec again and finds what the update left as
    orphans. A claim whose execution cannot be read counts as held.
    """
    if not entry.lifecycle_execution_arn:
        return False
    try:
        return not has_ended(entry.lifecycle_execution_arn)
    except (BotoCoreError, ClientError):
        return True


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
        broken=_broken(pipeline),
        execution_arn=entry.execution_arn,
        server_started_at=pipeline.server_started_at,
    )
    report.broken = assessment.health.broken if assessment.status is PipelineStatus.BROKEN else None
    report.slot_inactive_minutes = _minutes_since(assessment.health.slot_inactive_since, now)
    report.failed_sweeps = assessment.health.failed_sweeps
    report.restarts_in_window = len(assessment.health.restarts)
    report.problems = list(assessment.problems)
    try:
        saved = save_assessment(
            entry.pipeline_id, entry.execution_arn, assessment.health, assessment.status, entry.status, now,
            assessment.problems,
        )
    except (BotoCoreError, ClientError) as exc:
        report.errors.append(f"the registry entry could not be updated: {describe(exc)}")
        return
    if saved:
        report.status = assessment.status
    else:
        report.notes.append("the registry entry changed during the sweep; its status was left to the newer change")


def _broken(pipeline: _Pipeline) -> str | None:
    """Why the pipeline's slot cannot be trusted, from what the sweep has seen so far (`slot_broken`)."""
    if pipeline.broken is None:
        pipeline.broken = slot_broken(
            pipeline.slot, pipeline.previous, execution_arn=pipeline.entry.execution_arn,
            server_started_at=pipeline.server_started_at, connector_lsn=pipeline.connector_lsn,
        ) or None
    return pipeline.broken


def _minutes_since(at: str | None, now: datetime) -> int | None:
    return None if at is None else max(0, int((now - datetime.fromisoformat(at)).total_seconds() // 60))


def _alarm_states(pipeline: _Pipeline, now: datetime) -> None:
    """Where nothing evaluates CloudWatch alarms (the local stack), evaluate this sweep's values and set them."""
    report = pipeline.report
    assert report is not None
    if not alarms.evaluating_locally():
        return
    states = alarms.evaluate(pipeline.spec, alarm_metrics(report))
    report.alarms = {key: state for key, (state, _) in states.items()}
    try:
        missing = alarms.record_states(pipeline.entry.pipeline_id, states)
    except (BotoCoreError, ClientError) as exc:
        report.errors.append(f"the alarms could not be set: {describe(exc)}")
        return
    if missing:
        report.notes.append(f"no alarm {', '.join(missing)}: provisioned before its alarms existed")


# -- the source databases ----------------------------------------------------


def _sweep_sources(pipelines: list[_Pipeline], report: ReconcileReport) -> dict[str, SourceInventory]:
    """Visit every source database once; returns the inventory of each one that answered."""
    inventories: dict[str, SourceInventory] = {}
    for location, group in grouped(pipelines, lambda p: source_database(p.spec)):
        reconciled = [pipeline for pipeline in group if pipeline.report is not None]
        try:
            with open_source(_admin_spec(group)) as conn:
                inventory = take_inventory(conn)
                for pipeline in reconciled:
                    _check_source(conn, inventory, pipeline)
        except TARGET_ERRORS as exc:
            # Every pipeline on this source is named, FAILED ones too: its outage is theirs, not the sweep's.
            _unreachable(report, "source", location, group, exc)
            continue
        inventories[location] = inventory
    return inventories


def _check_source(conn: psycopg.Connection, inventory: SourceInventory, pipeline: _Pipeline) -> None:
    report = pipeline.report
    assert report is not None
    names = pipeline.spec.names
    pipeline.slot = inventory.slots.get(names.replication_slot) or SlotObservation(names.replication_slot, exists=False)
    pipeline.server_started_at = inventory.server_started_at
    report.slot_active = pipeline.slot.active if pipeline.slot.exists else None
    report.slot_lag_bytes = pipeline.slot.lag_bytes
    report.wal_status = pipeline.slot.wal_status
    if pipeline.entry.status is not PipelineStatus.PAUSED:  # a paused pipeline's heartbeat stops as asked
        try:
            report.heartbeat_age_seconds = heartbeat_age_seconds(conn, names.heartbeat_qualified, HEARTBEAT_ROW_ID)
        except TARGET_ERRORS as exc:
            report.errors.append(f"heartbeat table {names.heartbeat_qualified} could not be read: {describe(exc)}")
    if pipeline.entry.status is PipelineStatus.BROKEN:
        return  # kept as found for the rebuild: no re-alignment
    if pipeline.slot.exists and pipeline.entry.status is PipelineStatus.PAUSED:
        retained = "an unknown amount" if pipeline.slot.lag_bytes is None else f"{pipeline.slot.lag_bytes} bytes"
        report.notes.append(f"replication slot {names.replication_slot} retains {retained} of WAL while the "
                            "pipeline is PAUSED")
    elif pipeline.slot.exists and not pipeline.slot.active:
        report.notes.append(f"replication slot {names.replication_slot} is inactive: no connector is reading it")
    if pipeline.held:
        # An update holding the pipeline is moving its publication to another spec: the registered one is the old.
        report.notes.append(f"publication {names.publication} left as it is while execution "
                            f"{pipeline.entry.lifecycle_execution_arn} holds the pipeline")
        return
    try:
        added, removed = realign_publication(conn, pipeline.spec, names.publication in inventory.publications)
    except TARGET_ERRORS as exc:
        report.errors.append(f"publication {names.publication} could not be re-aligned: {describe(exc)}")
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
    for url, group in grouped(pipelines, lambda p: p.spec.connect.url):
        reconciled = [pipeline for pipeline in group if pipeline.report is not None]
        with ConnectClient(url) as client:
            try:
                statuses = client.list_with_statuses()
            except TARGET_ERRORS as exc:
                _unreachable(report, "connect", url, group, exc)
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
    if pipeline.slot is not None and pipeline.slot.exists and names.source_connector in statuses:
        try:
            pipeline.connector_lsn = committed_lsn(client.offsets(names.source_connector))
        except TARGET_ERRORS as exc:
            report.errors.append(f"the offsets of connector {names.source_connector} could not be read: "
                                 f"{describe(exc)}")
    if pipeline.entry.status is PipelineStatus.PAUSED:
        return  # paused as its team asked: nothing to restart (`assess` reports what is not PAUSED)
    if _broken(pipeline) or pipeline.entry.status is PipelineStatus.BROKEN:
        # A restart would let Debezium create a slot from the current WAL position and hide the loss.
        report.notes.append("connectors are not restarted: the replication slot cannot be trusted")
        return
    for connector in pipeline.connectors:
        if connector.state == "PAUSED":
            report.notes.append(f"connector {connector.name} is paused")
        if not connector.failed:
            continue
        what = f"tasks {', '.join(map(str, connector.failed_tasks))}" if connector.failed_tasks else "the connector"
        report.notes.append(f"connector {connector.name} FAILED ({what}): {connector.trace_summary or 'no trace'}")
        try:
            client.restart(connector.name, include_tasks=True, only_failed=True)
        except TARGET_ERRORS as exc:
            report.errors.append(f"connector {connector.name} could not be restarted: {describe(exc)}")
            continue
        report.restarted.append(connector.name)


def _sweep_sinks(pipelines: list[_Pipeline], report: ReconcileReport) -> None:
    """Visit every OpenSearch sink once: each reconciled pipeline's indices must exist."""
    searched = [p for p in pipelines if p.spec.sink.type == "opensearch" and p.report is not None]
    for url, group in grouped(searched, lambda p: p.spec.sink.url or ""):
        for index, pipeline in enumerate(group):
            try:
                missing = missing_sink_indices(pipeline.spec)
            except TARGET_ERRORS as exc:
                # Unreachable for one is unreachable for the rest of this sink.
                _unreachable(report, "sink", url, group[index:], exc)
                break
            pipeline.unrepaired_drift.extend(f"index {name} is missing at the OpenSearch sink" for name in missing)


def _sweep_kafka(pipelines: list[_Pipeline], report: ReconcileReport) -> dict[str, list[str]]:
    """List the topics of every Kafka cluster once."""
    topics: dict[str, list[str]] = {}
    for bootstrap, group in grouped(pipelines, lambda p: p.spec.kafka.bootstrap_servers):
        listed = _attempt(report, "kafka", bootstrap, group, partial(list_topics, bootstrap))
        if listed is not None:
            topics[bootstrap] = listed
    return topics


def _source_specs(pipelines: list[_Pipeline]) -> dict[str, PipelineSpec]:
    """For each source database location, the spec whose admin secret opens it."""
    return {location: _admin_spec(group) for location, group in grouped(pipelines, lambda p: source_database(p.spec))}


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


def _attempt(
    report: ReconcileReport, target: TargetKind, location: str, affected: list[_Pipeline], call: Callable[[], T]
) -> T | None:
    """`call()`, or None with the failure reported against `affected`."""
    try:
        return call()
    except TARGET_ERRORS as exc:
        _unreachable(report, target, location, affected, exc)
        return None


def _unreachable(
    report: ReconcileReport, target: TargetKind, location: str, affected: list[_Pipeline], exc: BaseException
) -> None:
    description = describe(exc)
    report.errors.append(TargetError(target, location, description, tuple(p.entry.pipeline_id for p in affected)))
    for pipeline in affected:
        if pipeline.report is not None:
            pipeline.report.errors.append(f"{target} {location} could not be checked: {description}")
