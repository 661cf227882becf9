"""An ACTIVE pipeline heals by itself after PostgreSQL, Kafka or Kafka Connect restarts, and loses no row.

A pipeline is provisioned through the stack's API and a writer inserts rows
into its source table for the whole scenario. Each service is then stopped
for about ten seconds and started again, while the writer keeps writing
(through a PostgreSQL outage its inserts fail and it reconnects). One
PostgreSQL server holds the source and the sink databases, so its restart
is the outage of both. Nobody acts: only the connectors' own retry settings
and the engine's scheduled reconciliation (its interval made short here
through `CDCFLOW_LOCAL_RECONCILE_INTERVAL_SECONDS`, as on AWS an EventBridge
rate) bring the pipeline back. The sink then holds every row the source
committed, each once, its ids equal to the source's. The two-minute bound
is what the test waits for; no speed is asserted.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from itertools import count

import psycopg
import pytest
from psycopg import sql

from cdcflow.local import stack
from cdcflow.local.config import Endpoints
from cdcflow.local.reconcile_schedule import INTERVAL_ENV
from lambdas.connect.client import ConnectClient
from lambdas.spec import parse_spec
from tests.provision import api_client, provision_and_wait

pytestmark = pytest.mark.slow

RUN = uuid.uuid4().hex[:6]
SOURCE_TABLE = f"public.heal_{RUN}"
INTERVAL_SECONDS = "5"
OUTAGE_SECONDS = 10
# Every row written must be at the sink within this bound after the service is back (waited for, not timed).
HEAL_SECONDS = 120
SETTLE_SECONDS = 180


def wait_for(description: str, probe, seconds: float = SETTLE_SECONDS, poll: float = 0.5):
    deadline = time.monotonic() + seconds
    while not (result := probe()):
        assert time.monotonic() < deadline, f"gave up waiting for {description}"
        time.sleep(poll)
    return result


def restart_engine() -> None:
    engine = next(service for service in stack.status() if service.name == "engine")
    if engine.pid is not None:
        os.kill(engine.pid, signal.SIGTERM)
        wait_for("the engine to stop", lambda: all(s.state == "down" for s in stack.status() if s.name == "engine"))
    stack.up()


class Writer:
    """Inserts rows with ids of its own, one every few milliseconds, until stopped; reconnects through outages.

    An insert whose commit the outage cut off may or may not have been
    committed, so the source table, not the writer, says which rows exist.
    """

    def __init__(self, dsn: str, table: str, ids: Iterator[int]) -> None:
        self.dsn, self.table, self.ids = dsn, table, ids
        self.stopped = threading.Event()
        self.committed = 0
        self.failures = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        insert = sql.SQL("INSERT INTO {} (id, item) VALUES (%s, %s)").format(sql.Identifier(*self.table.split(".")))
        conn = None
        while not self.stopped.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=2)
                row_id = next(self.ids)
                conn.execute(insert, (row_id, f"row {row_id}"))
                self.committed += 1
            except psycopg.OperationalError:
                self.failures += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.2)
                continue
            time.sleep(0.01)
        if conn is not None:
            conn.close()

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=30)


def ids_in(dsn: str, table: str, low: int, high: int) -> list[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]:
            return []
        query = sql.SQL("SELECT id FROM {} WHERE id >= %s AND id < %s ORDER BY id").format(
            sql.Identifier(*table.split(".")))
        return [row[0] for row in conn.execute(query, (low, high))]


def sink_count(dsn: str, table: str, low: int, high: int) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        query = sql.SQL("SELECT count(*) FROM {} WHERE id >= %s AND id < %s").format(sql.Identifier(*table.split(".")))
        return conn.execute(query, (low, high)).fetchone()[0]


def states(connect_url: str, connectors: list[str]) -> dict[str, list[str]]:
    with ConnectClient(connect_url) as client:
        return {name: [task["state"] for task in client.get_status(name)["tasks"]] for name in connectors}


@pytest.fixture(scope="module")
def active_pipeline(workflow_env: Endpoints, spec_for) -> Iterator[tuple[Endpoints, dict]]:
    """One ACTIVE pipeline over a table of its own, with the stack's engine reconciling every few seconds."""
    stack_endpoints = workflow_env
    with psycopg.connect(stack_endpoints.postgres.source_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (id bigint PRIMARY KEY, item text NOT NULL)").format(
            sql.Identifier(*SOURCE_TABLE.split("."))))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(INTERVAL_ENV, INTERVAL_SECONDS)
        restart_engine()
    spec = spec_for(f"heal_{RUN}", source={"tables": [SOURCE_TABLE]})
    try:
        assert provision_and_wait(stack_endpoints, spec)["status"] == "SUCCEEDED"
        yield stack_endpoints, spec
    finally:
        stack.up()
        api_client(stack_endpoints).teardown(spec["pipeline_id"], keep_topics=False, keep_index=False)
        with psycopg.connect(stack_endpoints.postgres.source_dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(*SOURCE_TABLE.split("."))))
        restart_engine()


ID_BLOCKS = count(1)


@pytest.mark.parametrize("service", ["postgres", "kafka", "connect"])
def test_a_restarted_service_leaves_the_pipeline_delivering_every_row_once(active_pipeline, service: str) -> None:
    stack_endpoints, spec = active_pipeline
    resolved = parse_spec(spec)
    names = resolved.names
    sink_table = f"{resolved.sink.schema}.{names.sink_table(SOURCE_TABLE)}"
    source_dsn, sink_dsn = stack_endpoints.postgres.source_dsn(), stack_endpoints.postgres.sink_dsn()
    low = next(ID_BLOCKS) * 1_000_000
    high = low + 1_000_000

    with Writer(source_dsn, SOURCE_TABLE, iter(range(low, high))) as writer:
        wait_for("the first rows at the sink", lambda: ids_in(sink_dsn, sink_table, low, high))
        stack.down(only=[service])
        time.sleep(OUTAGE_SECONDS)
        stack.up()
        back = writer.committed
        # The writer goes on after the restart: these rows too must arrive.
        wait_for("rows written after the restart", lambda: writer.committed > back + 50, seconds=60, poll=0.2)
    if service == "postgres":
        assert writer.failures > 0, "the writer met the outage"

    written = ids_in(source_dsn, SOURCE_TABLE, low, high)
    assert len(written) >= writer.committed > 0

    def delivered() -> bool:
        return ids_in(sink_dsn, sink_table, low, high) == written

    try:
        wait_for(f"every row written around the {service} restart at the sink", delivered, seconds=HEAL_SECONDS)
    except AssertionError:
        arrived = ids_in(sink_dsn, sink_table, low, high)
        missing = sorted(set(written) - set(arrived))
        raise AssertionError(
            f"after the {service} restart {len(arrived)} of {len(written)} rows arrived "
            f"(first missing: {missing[:5]}); tasks: {states(stack_endpoints.connect.url, [names.source_connector, names.sink_connector])}"
        ) from None
    # Once each: the sink's count is its ids' count, nothing twice and nothing else.
    assert sink_count(sink_dsn, sink_table, low, high) == len(written)
    assert states(stack_endpoints.connect.url, [names.source_connector, names.sink_connector]) == {
        names.source_connector: ["RUNNING"], names.sink_connector: ["RUNNING"]}
