"""A change-data-capture round trip through the local stack, with no cdcflow workflow.

A Debezium PostgreSQL source connector captures a fresh table in the `source`
database, a Debezium JDBC sink connector writes its topic into the `sink`
database, and three statements (insert, update, delete) must come out the other
end: as change events in Kafka and as rows in the sink. Everything it creates
(connectors, slot, publication, tables, topic) is removed afterwards, also on failure.
"""

import json
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import requests
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.errors import UnknownTopicOrPartitionError
from psycopg import sql

from cdcflow.local.config import Endpoints
from cdcflow.local.fetch import CONNECT_PLUGINS

Progress = Callable[[str], None]

POSTGRES_CONNECTOR = CONNECT_PLUGINS["debezium-connector-postgres"]
JDBC_SINK_CONNECTOR = CONNECT_PLUGINS["debezium-connector-jdbc"]
CONNECTOR_RUNNING_WITHIN_SECONDS = 120
CHANGES_ARRIVE_WITHIN_SECONDS = 120
CLEANUP_WITHIN_SECONDS = 30
PAUSE_SECONDS = 0.5

# What the scenario does to the source table, and so what must arrive.
EXPECTED_OPERATIONS = ("c", "c", "u", "d")
EXPECTED_SINK_ROWS = ((1, "apple", 4),)


class SmokeFailed(Exception):
    """The round trip did not complete; the message says which step and what was seen."""


@dataclass(frozen=True)
class ChangeEvent:
    """One Debezium change event: `op` is c (insert), u (update) or d (delete)."""

    op: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True)
class SmokeResult:
    source_table: str
    topic: str
    events: tuple[ChangeEvent, ...]
    sink_rows: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class _Names:
    run_id: str

    @property
    def table(self) -> str:
        return f"smoke_orders_{self.run_id}"

    @property
    def slot(self) -> str:
        return f"smoke_{self.run_id}"

    @property
    def publication(self) -> str:
        return f"smoke_{self.run_id}"

    @property
    def topic_prefix(self) -> str:
        return f"smoke_{self.run_id}"

    @property
    def topic(self) -> str:
        return f"{self.topic_prefix}.public.{self.table}"

    @property
    def source_connector(self) -> str:
        return f"smoke-{self.run_id}-source"

    @property
    def sink_connector(self) -> str:
        return f"smoke-{self.run_id}-sink"


def _quiet(_message: str) -> None:
    pass


def _wait_until(check: Callable[[], Any], within_seconds: float, failure: Callable[[], str]) -> Any:
    """Call `check` until it returns something truthy; raise SmokeFailed(failure()) when time runs out."""
    deadline = time.monotonic() + within_seconds
    while True:
        outcome = check()
        if outcome:
            return outcome
        if time.monotonic() > deadline:
            raise SmokeFailed(failure())
        time.sleep(PAUSE_SECONDS)


def source_connector_config(endpoints: Endpoints, names: _Names) -> dict[str, str]:
    pg = endpoints.postgres
    return {
        "connector.class": POSTGRES_CONNECTOR,
        "tasks.max": "1",
        "plugin.name": "pgoutput",
        "database.hostname": pg.host,
        "database.port": str(pg.port),
        "database.user": pg.admin_user,
        # Resolved by the worker's Secrets Manager ConfigProvider, as the pipelines' own connectors are.
        "database.password": f"${{secretsmanager:{endpoints.aws.source_admin_secret}:password}}",
        "database.sslmode": "verify-full",
        "database.sslrootcert": str(pg.ca_file),
        "database.dbname": pg.source_database,
        "topic.prefix": names.topic_prefix,
        "table.include.list": f"public.{names.table}",
        "slot.name": names.slot,
        "publication.name": names.publication,
        "publication.autocreate.mode": "disabled",
        # The table is empty when the connector starts; changes are made only once it streams.
        "snapshot.mode": "no_data",
    }


def sink_connector_config(endpoints: Endpoints, names: _Names) -> dict[str, str]:
    pg = endpoints.postgres
    return {
        "connector.class": JDBC_SINK_CONNECTOR,
        "tasks.max": "1",
        "topics": names.topic,
        "connection.url": (
            f"jdbc:postgresql://{pg.host}:{pg.port}/{pg.sink_database}?sslmode=verify-full&sslrootcert={pg.ca_file}"
        ),
        "connection.username": pg.admin_user,
        "connection.password": f"${{secretsmanager:{endpoints.aws.sink_admin_secret}:password}}",
        "insert.mode": "upsert",
        "delete.enabled": "true",
        "primary.key.mode": "record_key",
        "schema.evolution": "basic",
        "collection.name.format": names.table,
    }


def _connector_state(connect_url: str, name: str) -> tuple[str, str | None]:
    """("RUNNING" when the connector and all its tasks run, else a summary) and the first task trace line."""
    response = requests.get(f"{connect_url}/connectors/{name}/status", timeout=10)
    if response.status_code == 404:
        return "not registered yet", None
    response.raise_for_status()
    status = response.json()
    states = [status["connector"]["state"]] + [task["state"] for task in status.get("tasks", [])]
    trace = next((task.get("trace") for task in status.get("tasks", []) if task.get("trace")), None)
    if len(states) > 1 and all(state == "RUNNING" for state in states):
        return "RUNNING", None
    return "/".join(states), trace.splitlines()[0] if trace else None


def _start_connector(connect_url: str, name: str, config: dict[str, str], progress: Progress) -> None:
    progress(f"creating connector {name}")
    response = requests.put(f"{connect_url}/connectors/{name}/config", json=config, timeout=30)
    if response.status_code >= 400:
        raise SmokeFailed(f"Kafka Connect refused connector {name}: {response.status_code} {response.text[:300]}")
    seen: list[tuple[str, str | None]] = []

    def running() -> bool:
        state, trace = _connector_state(connect_url, name)
        seen.append((state, trace))
        if "FAILED" in state:
            raise SmokeFailed(f"connector {name} failed: {trace or state}")
        return state == "RUNNING"

    _wait_until(
        running,
        CONNECTOR_RUNNING_WITHIN_SECONDS,
        lambda: f"connector {name} not RUNNING within {CONNECTOR_RUNNING_WITHIN_SECONDS}s (last state {seen[-1][0]})",
    )


def _slot_is_streaming(conn: psycopg.Connection, slot: str) -> bool:
    row = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
    return bool(row and row[0])


def _read_events(bootstrap_servers: str, topic: str, count: int) -> list[ChangeEvent]:
    """The first `count` change events of `topic` (tombstones skipped). May block up to the arrival bound."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        client_id="cdcflow-smoke",
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        metadata_max_age_ms=1000,
    )
    events: list[ChangeEvent] = []
    try:

        def collected() -> bool:
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    if record.value is not None:
                        payload = json.loads(record.value)["payload"]
                        events.append(ChangeEvent(payload["op"], payload["before"], payload["after"]))
            return len(events) >= count

        _wait_until(
            collected,
            CHANGES_ARRIVE_WITHIN_SECONDS,
            lambda: (
                f"{len(events)} of {count} change events arrived on {topic} "
                f"within {CHANGES_ARRIVE_WITHIN_SECONDS}s (ops {[event.op for event in events]})"
            ),
        )
    finally:
        consumer.close()
    return events


def _sink_rows(conn: psycopg.Connection, table: str) -> tuple[tuple[Any, ...], ...] | None:
    try:
        rows = conn.execute(
            sql.SQL("SELECT id, item, quantity FROM {} ORDER BY id").format(sql.Identifier("public", table))
        ).fetchall()
    except psycopg.errors.UndefinedTable:
        return None
    return tuple(tuple(row) for row in rows)


@contextmanager
def _cleanup(endpoints: Endpoints, names: _Names, progress: Progress) -> Iterator[None]:
    try:
        yield
    finally:
        progress("removing the smoke test's connectors, slot, publication, tables and topic")
        for name in (names.sink_connector, names.source_connector):
            requests.delete(f"{endpoints.connect.url}/connectors/{name}", timeout=30)
        with psycopg.connect(endpoints.postgres.source_dsn(), autocommit=True) as conn:
            _drop_slot(conn, names.slot)
            conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(names.publication)))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("public", names.table)))
        with psycopg.connect(endpoints.postgres.sink_dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("public", names.table)))
        admin = KafkaAdminClient(bootstrap_servers=endpoints.kafka.bootstrap_servers, client_id="cdcflow-smoke")
        try:
            admin.delete_topics([names.topic])
        except UnknownTopicOrPartitionError:
            pass
        finally:
            admin.close()


def _drop_slot(conn: psycopg.Connection, slot: str) -> None:
    """Drop the slot once the deleted connector's walsender has let go of it. Safe when it does not exist."""

    def released() -> bool:
        row = conn.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
        return row is None or row[0] is None

    _wait_until(released, CLEANUP_WITHIN_SECONDS, lambda: f"replication slot {slot} still in use after cleanup")
    conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (slot,))


def run_smoke(endpoints: Endpoints, progress: Progress = _quiet) -> SmokeResult:
    """Run the round trip and return the change events read from Kafka and the rows found in the sink.

    Blocks for up to a few minutes (bounded waits); raises SmokeFailed naming the step that did not happen.
    Leaves nothing behind.
    """
    names = _Names(secrets.token_hex(4))
    table = sql.Identifier("public", names.table)
    with (
        _cleanup(endpoints, names, progress),
        psycopg.connect(endpoints.postgres.source_dsn(), autocommit=True) as source,
        psycopg.connect(endpoints.postgres.sink_dsn(), autocommit=True) as sink,
    ):
        progress(f"creating table public.{names.table} and publication {names.publication} in the source database")
        source.execute(
            sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, item text NOT NULL, quantity integer)").format(table)
        )
        source.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(sql.Identifier(names.publication), table))
        _start_connector(
            endpoints.connect.url, names.source_connector, source_connector_config(endpoints, names), progress
        )
        _wait_until(
            lambda: _slot_is_streaming(source, names.slot),
            CONNECTOR_RUNNING_WITHIN_SECONDS,
            lambda: f"replication slot {names.slot} not streaming within {CONNECTOR_RUNNING_WITHIN_SECONDS}s",
        )
        _start_connector(endpoints.connect.url, names.sink_connector, sink_connector_config(endpoints, names), progress)

        progress("inserting two rows, updating one, deleting the other")
        source.execute(sql.SQL("INSERT INTO {} VALUES (1, 'apple', 3), (2, 'pear', 5)").format(table))
        source.execute(sql.SQL("UPDATE {} SET quantity = 4 WHERE id = 1").format(table))
        source.execute(sql.SQL("DELETE FROM {} WHERE id = 2").format(table))

        progress(f"reading change events from {names.topic}")
        events = _read_events(endpoints.kafka.bootstrap_servers, names.topic, len(EXPECTED_OPERATIONS))
        progress("waiting for the sink table to match")
        seen: list[tuple[tuple[Any, ...], ...] | None] = [None]

        def sink_matches() -> bool:
            seen[0] = _sink_rows(sink, names.table)
            return seen[0] == EXPECTED_SINK_ROWS

        _wait_until(
            sink_matches,
            CHANGES_ARRIVE_WITHIN_SECONDS,
            lambda: (
                f"sink table public.{names.table} holds {seen[0]} after {CHANGES_ARRIVE_WITHIN_SECONDS}s, "
                f"expected {EXPECTED_SINK_ROWS}"
            ),
        )
        return SmokeResult(f"public.{names.table}", names.topic, tuple(events), seen[0])
