"""The steps of UpdatePipeline: take a running pipeline from its registered spec to a new one, or back.

The execution input carries both specs: `spec` (the new one, which the step
payload passes to every task) and `previous_spec`. Most steps are the
provisioning's idempotent `ensure` functions applied to one spec or the
other: run with the new spec they move the pipeline forward, run with the
previous spec (`"restore": true`) they are the compensations, so a failure
at any step leaves the publication, grants, topics and connector configs as
they were. Only what the update created is removed again (the topics of
added tables, SELECT on added tables); the signal table, once there, stays
with the pipeline (teardown drops it).

Tables added are checked before anything changes (they exist and have a
primary key or a usable replica identity, `TablesWithoutReplicaIdentity`
naming them), snapshotted incrementally through Debezium's signal table, and
counted at the sink against the source once their snapshot completed.
Tables removed leave the include list and the publication, then (unless
`keep_topics`) their topics go; their sink tables stay, as the result says.
"""

from __future__ import annotations

from typing import Any

import kafka.errors as kafka_errors
from psycopg import sql

from lambdas import registry
from lambdas.common import step_handler
from lambdas.connect.client import ConnectClient
from lambdas.connect.credentials import login_from_secret
from lambdas.connect.deploy import put_connector
from lambdas.connect.secret_refs import SecretLogin
from lambdas.connect.sink_config import sink_config
from lambdas.connect.source_config import debezium_source_config
from lambdas.errors import StepError
from lambdas.kafka_security import kafka_security
from lambdas.kafka_topics import ADMIN_TIMEOUT_MS, ensure_topics, kafka_admin, pipeline_topics
from lambdas.opensearch import document_count, ensure_indices, pipeline_indices
from lambdas.registry import PipelineStatus
from lambdas.resync import ResyncRequest, check_conditions
from lambdas.source.connection import connect_admin, connect_sink, server_address
from lambdas.source.heartbeat import heartbeat_action_query
from lambdas.source.publication import ensure_publication
from lambdas.source.signals import (
    SnapshotFailed, ensure_signal_table, read_notifications, send_execute_snapshot, signal_id_for, snapshot_progress,
)
from lambdas.source.tables import (
    PRIVILEGES_LOCK, TablesWithoutReplicaIdentity, lock_resource, require_tables, schemas_of, table_identifier,
    table_list, tables_without_replica_identity,
)
from lambdas.spec import PipelineSpec, parse_spec
from lambdas.spec_update import diff
from lambdas.wait_loop import next_round, schedule_of


class SnapshotNotCompleted(StepError):
    """The incremental snapshot of the added tables did not complete within the wait-loop's rounds."""


class RowCountsDiffer(StepError):
    """After the snapshot, the sink did not hold as many rows as the source for an added table."""


def previous_of(event: dict[str, Any]) -> PipelineSpec:
    """The spec the pipeline ran on before the update (the execution input's `previous_spec`)."""
    return parse_spec(event["previous_spec"])


def target_of(spec: PipelineSpec, event: dict[str, Any]) -> PipelineSpec:
    """The spec a step moves the pipeline to: the new one, or the previous one for a compensation."""
    return previous_of(event) if event.get("restore") else spec


def added_tables(spec: PipelineSpec, event: dict[str, Any]) -> list[str]:
    return list(diff(previous_of(event), spec).tables_added)


def check_added_tables(conn: Any, tables: list[str]) -> None:
    """Raise `TablesNotFound` / `TablesWithoutReplicaIdentity` naming the added tables that cannot be published."""
    require_tables(conn, tables)
    unidentified = tables_without_replica_identity(conn, tables)
    if unidentified:
        raise TablesWithoutReplicaIdentity(
            f"tables to add without a primary key or replica identity in database {conn.info.dbname!r} on "
            f"{server_address(conn)}: {', '.join(unidentified)}; once published, UPDATE and DELETE on them would "
            "fail. Add a primary key, or set REPLICA IDENTITY FULL or USING INDEX, then update again"
        )


@step_handler
def prepare_source_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """PrepareSource: check the added tables, make sure the signal table exists, grant SELECT on the added tables.

    Nothing is changed when a table cannot be added. Idempotent.
    """
    previous = previous_of(event)
    change = diff(previous, spec)
    added = list(change.tables_added)
    names = spec.names
    with connect_admin(spec.source) as conn:
        with conn.transaction():
            lock_resource(conn, PRIVILEGES_LOCK)
            if added:
                check_added_tables(conn, added)
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(names.heartbeat_schema)))
            signal = ensure_signal_table(conn, spec)  # pipelines provisioned before signalling get it here
            if added:
                role = sql.Identifier(names.replication_role)
                for schema in schemas_of(added):
                    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), role))
                conn.execute(sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(table_list(added), role))
    return {"change": change.to_dict(previous, bool(event.get("keep_topics"))), "signal_table": signal["table"],
            "granted": added}


def _select_grants(conn: Any, role_name: str, grant: list[str], revoke: list[str]) -> dict[str, list[str]]:
    """GRANT SELECT on `grant`, REVOKE it on `revoke` (those that exist), if the role exists. Idempotent."""
    lock_resource(conn, PRIVILEGES_LOCK)
    if not conn.execute("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)", [role_name]).fetchone()[0]:
        return {"granted": [], "revoked": []}
    role = sql.Identifier(role_name)

    def present(tables: list[str]) -> list[str]:
        return [table for table in tables if conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()[0]]

    granted, revoked = present(grant), present(revoke)
    for schema in schemas_of(granted):
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), role))
    if granted:
        conn.execute(sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(table_list(granted), role))
    if revoked:
        conn.execute(sql.SQL("REVOKE SELECT ON TABLE {} FROM {}").format(table_list(revoked), role))
    return {"granted": granted, "revoked": revoked}


@step_handler
def restore_grants_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """RestoreGrants (compensation): SELECT on exactly the previous spec's tables again (the added ones' taken back,
    the removed ones' given back). A no-op when nothing changed."""
    previous = previous_of(event)
    change = diff(previous, spec)
    with connect_admin(spec.source) as conn, conn.transaction():
        return _select_grants(conn, spec.names.replication_role, list(change.tables_removed),
                              list(change.tables_added))


@step_handler
def revoke_removed_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """RevokeRemovedTables: the replication role no longer reads the tables the update removed."""
    removed = list(diff(previous_of(event), spec).tables_removed)
    if not removed:
        return {"granted": [], "revoked": []}
    with connect_admin(spec.source) as conn, conn.transaction():
        return _select_grants(conn, spec.names.replication_role, [], removed)


@step_handler
def align_publication_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """AlignPublication / RestorePublication: the publication holds exactly the target spec's tables."""
    target = target_of(spec, event)
    with connect_admin(target.source) as conn:
        return ensure_publication(conn, target)


@step_handler
def create_topics_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """CreateAddedTopics: the added tables' topics (and any the pipeline lacks), with the spec's settings."""
    return ensure_topics(spec)


def delete_named_topics(spec: PipelineSpec, topics: list[str]) -> list[str]:
    """Delete those of `topics` that exist; returns them. Idempotent."""
    if not topics:
        return []
    with kafka_admin(spec.kafka.bootstrap_servers, kafka_security(spec.kafka)) as admin:
        present = [topic for topic in topics if topic in set(admin.list_topics())]
        if not present:
            return []
        result = admin.delete_topics(present, timeout_ms=ADMIN_TIMEOUT_MS, raise_errors=False)
        for outcome in result["topics"]:
            error = kafka_errors.for_code(outcome["error_code"])
            if error not in (kafka_errors.NoError, kafka_errors.UnknownTopicOrPartitionError):
                raise error(f"deleting topic {outcome['name']}")
    return present


@step_handler
def delete_added_topics_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """DeleteAddedTopics (compensation): the topics of the tables the update would have added."""
    previous = previous_of(event)
    extra = [topic for topic in pipeline_topics(spec) if topic not in set(pipeline_topics(previous))]
    return {"deleted": delete_named_topics(spec, extra)}


@step_handler
def delete_removed_topics_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """DeleteRemovedTopics: the removed tables' topics, unless `keep_topics`. Their sink tables stay."""
    previous = previous_of(event)
    removed = [topic for topic in pipeline_topics(previous) if topic not in set(pipeline_topics(spec))]
    if event.get("keep_topics"):
        return {"deleted": [], "kept": removed}
    return {"deleted": delete_named_topics(spec, removed), "kept": []}


@step_handler
def recreate_removed_topics_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """RecreateRemovedTopics (compensation): the previous spec's topics exist again (empty if they were deleted)."""
    return ensure_topics(previous_of(event))


@step_handler
def put_source_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """UpdateSourceConnector / RestoreSourceConnector: the source connector's config for the target spec, in place."""
    target = target_of(spec, event)
    secret = target.names.replication_secret
    login = SecretLogin(login_from_secret(secret).username, secret)
    config = debezium_source_config(target, login, heartbeat_action_query(target))
    with ConnectClient(target.connect.url) as client:
        return put_connector(client, target.names.source_connector, config)


@step_handler
def put_sink_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """UpdateSinkConnector / RestoreSinkConnector: the sink connector's config (its topics) for the target spec."""
    target = target_of(spec, event)
    login = login_from_secret(target.sink.secret) if target.sink.secret else None
    if target.sink.type == "opensearch":
        ensure_indices(target.sink.url, pipeline_indices(target), login)
    reference = SecretLogin(login.username, target.sink.secret) if login is not None and target.sink.secret else None
    with ConnectClient(target.connect.url) as client:
        return put_connector(client, target.names.sink_connector, sink_config(target, reference))


@step_handler
def start_snapshot_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """StartSnapshot: an `execute-snapshot` signal for the added tables (none: nothing is sent).

    The signal id comes from the execution and state, so a retry sends nothing more.
    """
    added = added_tables(spec, event)
    if not added:
        return {"signal_id": None, "tables": [], "sent": False}
    with connect_admin(spec.source) as conn:
        return send_execute_snapshot(conn, spec, signal_id_for(event["execution_id"], event["state_name"]), added)


@step_handler(idempotent=False)  # polled by a wait-loop: each call must look again
def check_snapshot_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """One check of the loop that waits for the incremental snapshot's notifications to say every table was read.

    A table Debezium could not read, or an aborted snapshot, ends the loop at once with `SnapshotFailed`.
    """
    signal_id, tables, schedule = event.get("signal_id"), list(event.get("tables") or []), schedule_of(event)
    attempt = int(event.get("attempt", 0))
    if not signal_id or not tables:
        return next_round(True, attempt, schedule, lambda checks: SnapshotNotCompleted(""), rows_scanned=0,
                          source_counts={})
    progress = snapshot_progress(read_notifications(spec), signal_id, tables)
    if progress.failed or progress.aborted:
        reasons = ", ".join(f"{table}: {status}" for table, status in progress.failed.items()) or "aborted"
        raise SnapshotFailed(f"Debezium did not snapshot the added tables of pipeline {spec.pipeline_id!r} "
                             f"(signal {signal_id}): {reasons}")

    def gave_up(checks: int) -> SnapshotNotCompleted:
        waiting = [table for table in tables if table not in progress.scanned]
        return SnapshotNotCompleted(
            f"the incremental snapshot {signal_id} of {', '.join(tables)} had not completed after {checks} checks "
            f"(started: {progress.started}; not yet read: {', '.join(waiting) or 'none'}); look at the source "
            f"connector {spec.names.source_connector}'s log"
        )

    # Once every table was read, the source's rows at that moment are what the sink must reach (RowsCounted);
    # for a resync, the rows its conditions match.
    counts = source_counts(spec, tables, event.get("conditions")) if progress.done else {}
    return next_round(progress.done, attempt, schedule, gave_up, rows_scanned=progress.rows_scanned,
                      scanned=progress.scanned, source_counts=counts)


def source_counts(spec: PipelineSpec, tables: list[str], conditions: dict[str, str] | None = None) -> dict[str, int]:
    """Rows at the source for each table, or those its condition matches (checked as `lambdas.resync` does)."""
    request = ResyncRequest(tuple(tables), dict(conditions or {}))
    with connect_admin(spec.source) as conn:
        return check_conditions(conn, request)


def sink_counts(spec: PipelineSpec, tables: list[str]) -> dict[str, int]:
    """Rows (documents) at the sink for each captured table; 0 for a sink table not created yet."""
    names = spec.names
    if spec.sink.type == "opensearch":
        login = login_from_secret(spec.sink.secret) if spec.sink.secret else None
        return {table: document_count(spec.sink.url, names.table_topic(table), login) for table in tables}
    counts = {}
    with connect_sink(spec.sink) as conn:
        for table in tables:
            target = sql.Identifier(spec.sink.schema, names.sink_table(table))
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [target.as_string(conn)]).fetchone()[0]
            counts[table] = (conn.execute(sql.SQL("SELECT count(*) FROM {}").format(target)).fetchone()[0]
                             if exists else 0)
    return counts


@step_handler(idempotent=False)  # polled by a wait-loop: each call must look again
def check_counts_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """One check of the loop that waits until the sink holds, for every added table, as many rows as the source held
    when the snapshot completed (`expected`; fewer if rows were deleted since).

    Writes that go on meanwhile keep the source ahead of the sink by a moment, so the sink is not asked to equal
    the source as it is now, only to have caught up with the snapshot.
    """
    tables, schedule = list(event.get("tables") or []), schedule_of(event)
    expected = {table: int(count) for table, count in (event.get("expected") or {}).items()}
    attempt = int(event.get("attempt", 0))
    if not tables:
        return next_round(True, attempt, schedule, lambda checks: RowCountsDiffer(""), counts={})
    at_source, at_sink = source_counts(spec, tables), sink_counts(spec, tables)
    counts = {table: {"source": at_source[table], "sink": at_sink[table],
                      "wanted": min(expected.get(table, at_source[table]), at_source[table])} for table in tables}

    def gave_up(checks: int) -> RowCountsDiffer:
        behind = "; ".join(f"{table}: source {seen['source']}, sink {seen['sink']} (wanted {seen['wanted']})"
                           for table, seen in counts.items() if seen["sink"] < seen["wanted"])
        return RowCountsDiffer(f"after {checks} checks the sink still holds fewer rows than the source for the "
                               f"added tables ({behind})")

    ready = all(seen["sink"] >= seen["wanted"] for seen in counts.values())
    return next_round(ready, attempt, schedule, gave_up, counts=counts)


@step_handler
def mark_updated_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """MarkUpdated: the new spec becomes the registered one (the previous joins the history); the pipeline is
    released, ACTIVE. Idempotent."""
    entry = registry.finish_lifecycle(spec.pipeline_id, event["execution_id"], PipelineStatus.ACTIVE,
                                      current_step=event["state_name"], new_spec=spec,
                                      updated_by=event.get("requested_by"))
    return {"pipeline_id": entry.pipeline_id, "status": entry.status.value, "spec_fingerprint": entry.spec_fingerprint,
            "spec_versions": len(entry.spec_history) + 1}
