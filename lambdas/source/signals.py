"""Debezium signalling: incremental snapshots started through the pipeline's signal table, followed by its notifications.

The signal table `cdcflow.signal_<id>` (`id, type, data`, the shape Debezium
requires) is created with the pipeline's heartbeat table, is a member of the
pipeline's publication, and is named in the source connector's
`signal.data.collection`. A row inserted there travels the replication stream
like any change; when Debezium reads an `execute-snapshot` row it snapshots
the named tables in chunks while streaming goes on, writing its watermarks to
the same table (so the replication role may SELECT and INSERT there).

Progress comes back on the pipeline's notification topic (the connector's
`notification.enabled.channels=sink`): every incremental snapshot
notification carries the signal's id, `TABLE_SCAN_COMPLETED` once per table
with a `status` and `total_rows_scanned`, and `COMPLETED` at the end.
`snapshot_progress` turns those into what a wait-loop needs.

Resync reuses `send_execute_snapshot` with a condition per table (Debezium's
`additional-conditions`); a condition goes into the signal as data and is
applied by Debezium as a WHERE clause, so the caller must have had it checked
(`lambdas.resync`) before sending it. `send_stop_snapshot` ends a snapshot
early (a resync's compensation).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kafka.errors as kafka_errors
import psycopg
from kafka import KafkaConsumer, TopicPartition
from psycopg import sql

from lambdas.errors import KafkaUnavailable, StepError
from lambdas.kafka_security import admin_client_options, kafka_security
from lambdas.source.connection import server_address
from lambdas.source.tables import split_table, table_identifier
from lambdas.spec import PipelineSpec

EXECUTE_SNAPSHOT = "execute-snapshot"
STOP_SNAPSHOT = "stop-snapshot"
INCREMENTAL_SNAPSHOT = "Incremental Snapshot"  # the notifications' aggregate_type
# Statuses of TABLE_SCAN_COMPLETED that mean the table's rows were all read (EMPTY: it had none).
SCAN_SUCCEEDED = frozenset({"SUCCEEDED", "EMPTY"})
# (column, type): Debezium reads the first three columns as id, type and data.
SIGNAL_COLUMNS = [("id", "character varying(64)"), ("type", "character varying(32)"), ("data", "text")]
NOTIFICATION_READ_TIMEOUT_SECONDS = 10.0
_SIGNAL_NAMESPACE = uuid.UUID("6c1f8a57-2a4b-4d1e-9a53-0c2f3e0b7d11")


class SignalTableMismatch(StepError):
    """A table with the signal table's name exists in another shape, so Debezium could not read signals from it."""


class SnapshotTablesNotCaptured(StepError):
    """An incremental snapshot was asked for a table the pipeline does not capture."""


class SnapshotFailed(StepError):
    """Debezium ended a table's incremental snapshot without reading it (no primary key, SQL error, aborted...)."""


def ensure_signal_table(conn: psycopg.Connection, spec: PipelineSpec) -> dict[str, Any]:
    """Create `cdcflow.signal_<id>` if absent and grant the replication role its use; the caller's transaction.

    Call inside a transaction holding the schema lock (`ensure_heartbeat_table`
    does). An existing table of another shape raises `SignalTableMismatch`.
    Idempotent.
    """
    names = spec.names
    conn.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} (id varchar(64) PRIMARY KEY, type varchar(32) NOT NULL, data text)")
        .format(table_identifier(names.signal_qualified))
    )
    columns = conn.execute(
        """
        SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
        WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum
        """,
        [names.signal_qualified],
    ).fetchall()
    if [tuple(column) for column in columns][:3] != SIGNAL_COLUMNS:
        found = ", ".join(f"{name} {type_}" for name, type_ in columns)
        raise SignalTableMismatch(
            f"table {names.signal_qualified} in database {conn.info.dbname!r} on {server_address(conn)} has columns "
            f"({found}), not (id varchar(64), type varchar(32), data text); drop it and run again"
        )
    granted = grant_signal_access(conn, spec)
    return {"table": names.signal_qualified, "granted_to": names.replication_role if granted else None}


def grant_signal_access(conn: psycopg.Connection, spec: PipelineSpec) -> bool:
    """Grant the replication role SELECT and INSERT on the signal table (Debezium reads it and writes its
    watermarks there), if both exist; returns whether they do. Idempotent."""
    names = spec.names
    both_exist = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s) AND to_regclass(%s) IS NOT NULL",
        [names.replication_role, names.signal_qualified],
    ).fetchone()[0]
    if not both_exist:
        return False
    role = sql.Identifier(names.replication_role)
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(names.heartbeat_schema), role))
    conn.execute(sql.SQL("GRANT SELECT, INSERT ON TABLE {} TO {}").format(
        table_identifier(names.signal_qualified), role))
    return True


def drop_signal_table(conn: psycopg.Connection, spec: PipelineSpec) -> bool:
    """Drop the signal table (which takes it out of the publication); True if it existed. Idempotent."""
    qualified = spec.names.signal_qualified
    existed = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [qualified]).fetchone()[0]
    if existed:
        conn.execute(sql.SQL("DROP TABLE {}").format(table_identifier(qualified)))
    return bool(existed)


def signal_id_for(execution_id: str, state_name: str) -> str:
    """The signal's id for one workflow step: the same on every retry of that step, another for the next run."""
    return str(uuid.uuid5(_SIGNAL_NAMESPACE, f"{execution_id}/{state_name}"))


def snapshot_signal_data(tables: Iterable[str], conditions: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The `data` of an `execute-snapshot` signal: an incremental snapshot of `tables`, each optionally
    limited by its condition (Debezium's `additional-conditions`, one `filter` per data collection)."""
    tables = list(dict.fromkeys(tables))
    if not tables:
        raise ValueError("an incremental snapshot needs at least one table")
    conditions = dict(conditions or {})
    unknown = sorted(set(conditions) - set(tables))
    if unknown:
        raise ValueError(f"conditions name tables outside the snapshot: {', '.join(unknown)}")
    data: dict[str, Any] = {"type": "incremental", "data-collections": [debezium_collection(t) for t in tables]}
    if conditions:
        data["additional-conditions"] = [
            {"data-collection": re.escape(debezium_collection(table)), "filter": conditions[table]}
            for table in tables if table in conditions
        ]
    return data


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_$]+")


def debezium_collection(table: str) -> str:
    """`schema.table` as a signal names it for Debezium: a part with other characters (a space) double-quoted.

    Debezium matches each name as a pattern against its tables' `schema.table`
    and parses what matched; a name with a space does not parse, so it is sent
    quoted (`"Sales Dept"."Orders"`), which matches no pattern and parses as
    the table. A condition's `data-collection` is then that text, escaped.
    """
    return ".".join(part if _PLAIN_NAME.fullmatch(part) else '"' + part.replace('"', '""') + '"'
                    for part in split_table(table))


def send_execute_snapshot(
    conn: psycopg.Connection, spec: PipelineSpec, signal_id: str, tables: Iterable[str],
    conditions: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Insert an `execute-snapshot` signal for `tables` into the signal table; return what was asked.

    Every table must be one the pipeline captures (`SnapshotTablesNotCaptured`
    otherwise: Debezium would ignore it). Idempotent per `signal_id`: a retry
    with the same id finds the row and sends nothing more (`sent` is False).
    """
    tables = list(dict.fromkeys(tables))
    foreign = sorted(set(tables) - set(spec.source.tables))
    if foreign:
        raise SnapshotTablesNotCaptured(
            f"pipeline {spec.pipeline_id!r} does not capture {', '.join(foreign)}; add the tables to its spec first"
        )
    sent = _insert_signal(conn, spec, signal_id, EXECUTE_SNAPSHOT, snapshot_signal_data(tables, conditions))
    return {"signal_id": signal_id, "tables": tables, "conditions": dict(conditions or {}), "sent": sent}


def _insert_signal(conn: psycopg.Connection, spec: PipelineSpec, signal_id: str, kind: str,
                   data: dict[str, Any]) -> bool:
    """Insert one signal row; False when a row of that id is there already (a retry)."""
    with conn.transaction():
        return conn.execute(
            sql.SQL("INSERT INTO {} (id, type, data) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING").format(
                table_identifier(spec.names.signal_qualified)),
            [signal_id, kind, json.dumps(data, separators=(",", ":"))],
        ).rowcount == 1


def send_stop_snapshot(conn: psycopg.Connection, spec: PipelineSpec, signal_id: str, tables: Iterable[str]) -> dict[str, Any]:
    """Insert a `stop-snapshot` signal: Debezium drops `tables` from the incremental snapshot it runs (rows already
    sent stay sent). Idempotent per `signal_id`."""
    tables = list(dict.fromkeys(tables))
    data = {"type": "incremental", "data-collections": [debezium_collection(table) for table in tables]}
    return {"signal_id": signal_id, "tables": tables,
            "sent": _insert_signal(conn, spec, signal_id, STOP_SNAPSHOT, data)}


@dataclass
class SnapshotProgress:
    """What the notifications of one incremental snapshot said: per table, its status and rows scanned."""

    signal_id: str
    tables: list[str]
    scanned: dict[str, dict[str, Any]] = field(default_factory=dict)  # table -> {"status", "rows"}
    started: bool = False
    completed: bool = False
    aborted: bool = False

    @property
    def failed(self) -> dict[str, str]:
        """Tables whose scan ended without reading them, with Debezium's status."""
        return {table: seen["status"] for table, seen in self.scanned.items() if seen["status"] not in SCAN_SUCCEEDED}

    @property
    def done(self) -> bool:
        """Every table's scan ended (or Debezium said the snapshot completed)."""
        return self.completed or all(table in self.scanned for table in self.tables)

    @property
    def rows_scanned(self) -> int:
        return sum(int(seen.get("rows") or 0) for seen in self.scanned.values())

    def to_dict(self) -> dict[str, Any]:
        return {"signal_id": self.signal_id, "tables": self.tables, "scanned": self.scanned, "started": self.started,
                "completed": self.completed, "aborted": self.aborted, "rows_scanned": self.rows_scanned}


def notification_payload(value: Any) -> dict[str, Any] | None:
    """A notification record's value (bytes or text, JSON with or without the schema envelope) as a dict."""
    if value is None:
        return None
    try:
        document = json.loads(value.decode() if isinstance(value, bytes | bytearray) else value)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(document, dict) and isinstance(document.get("payload"), dict) and "schema" in document:
        document = document["payload"]
    return document if isinstance(document, dict) else None


def _table_of(identifier: str, tables: list[str]) -> str | None:
    """The requested table a notification's data collection names (it may carry the database in front)."""
    identifier = identifier.replace('"', "")
    for table in tables:
        if identifier == table or identifier.endswith("." + table):
            return table
    return None


def snapshot_progress(notifications: Iterable[Mapping[str, Any]], signal_id: str, tables: list[str]) -> SnapshotProgress:
    """Fold the notifications (in topic order) of the incremental snapshot started by signal `signal_id`."""
    progress = SnapshotProgress(signal_id=signal_id, tables=list(tables))
    for note in notifications:
        if note.get("aggregate_type") != INCREMENTAL_SNAPSHOT or note.get("id") != signal_id:
            continue
        kind = note.get("type")
        extra = note.get("additional_data") or {}
        if kind == "STARTED":
            progress.started = True
        elif kind == "TABLE_SCAN_COMPLETED":
            table = _table_of(str(extra.get("scanned_collection", "")), progress.tables)
            if table is not None:
                progress.scanned[table] = {"status": str(extra.get("status", "")),
                                           "rows": int(extra.get("total_rows_scanned") or 0)}
        elif kind == "COMPLETED":
            progress.completed = True
        elif kind == "ABORTED":
            progress.aborted = True
    return progress


def read_notifications(
    spec: PipelineSpec, *, timeout_seconds: float = NOTIFICATION_READ_TIMEOUT_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> list[dict[str, Any]]:
    """Every notification on the pipeline's notification topic, oldest first (empty when it has none).

    Reads from the beginning to the end offsets found when it starts, with no
    consumer group (nothing is committed). Raises `KafkaUnavailable` when the
    cluster does not answer, or the end is not reached, within `timeout_seconds`.
    """
    topic = spec.names.notification_topic
    servers = spec.kafka.bootstrap_servers
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=servers.split(","), client_id="cdcflow-notifications", group_id=None,
            enable_auto_commit=False, request_timeout_ms=int(timeout_seconds * 1000) + 1000,
            **admin_client_options(kafka_security(spec.kafka)),
        )
    except kafka_errors.KafkaError as exc:
        raise KafkaUnavailable(f"Kafka at {servers} did not answer while reading {topic}: {exc}") from exc
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, partition) for partition in sorted(partitions)]
        if not assigned:
            return []
        consumer.assign(assigned)
        ends = consumer.end_offsets(assigned)
        consumer.seek_to_beginning(*assigned)
        notes: list[dict[str, Any]] = []
        deadline = clock() + timeout_seconds
        while any(consumer.position(tp) < ends[tp] for tp in assigned):
            if clock() >= deadline:
                raise KafkaUnavailable(f"topic {topic} on {servers} was not read to its end within "
                                       f"{timeout_seconds:g} s")
            for records in consumer.poll(timeout_ms=500).values():
                notes.extend(note for note in (notification_payload(r.value) for r in records) if note is not None)
        return notes
    except kafka_errors.KafkaError as exc:
        raise KafkaUnavailable(f"Kafka at {servers} failed while reading {topic}: {exc}") from exc
    finally:
        consumer.close()
