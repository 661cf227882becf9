"""The local stack reconciles on a schedule, as EventBridge does on AWS: a FAILED task is restarted by nobody.

The engine service is started again with a short interval
(`CDCFLOW_LOCAL_RECONCILE_INTERVAL_SECONDS`), a pipeline is provisioned
through the API, and its sink task is made to fail for real (the sink
table refuses a row with a constraint the source does not have). Once the
constraint is gone, nothing but the schedule runs reconciliation: the task
runs again, the row arrives, and the engine's log names the restart. At the end the engine is started again with
the default interval.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from cdcflow.local import stack
from cdcflow.local.config import Endpoints, config_from_env
from cdcflow.local.reconcile_schedule import INTERVAL_ENV
from lambdas.connect.client import ConnectClient
from lambdas.spec import parse_spec
from tests.provision import api_client, provision_and_wait

pytestmark = pytest.mark.slow

RUN = uuid.uuid4().hex[:6]
INTERVAL_SECONDS = "4"
# Generous bounds for a shared two-core machine; reaching one fails the test, nothing is timed.
SETTLE_SECONDS = 180


def wait_for(description: str, probe, poll: float = 0.2):
    deadline = time.monotonic() + SETTLE_SECONDS
    while not (result := probe()):
        assert time.monotonic() < deadline, f"gave up waiting for {description}"
        time.sleep(poll)
    return result


def restart_engine() -> None:
    engine = next(service for service in stack.status() if service.name == "engine")
    if engine.pid is not None:
        os.kill(engine.pid, signal.SIGTERM)
        wait_for("the engine to stop",
                 lambda: all(s.state == "down" for s in stack.status() if s.name == "engine"))
    stack.up()


@pytest.fixture
def scheduled_engine(workflow_env: Endpoints) -> Iterator[Endpoints]:
    """The stack's engine running the schedule every few seconds; the default interval again afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(INTERVAL_ENV, INTERVAL_SECONDS)
        restart_engine()
    try:
        yield workflow_env
    finally:
        restart_engine()


def task_states(connect_url: str, connector: str) -> list[str]:
    with ConnectClient(connect_url) as client:
        return [task["state"] for task in client.get_status(connector)["tasks"]]


def scheduled_sweeps(log, offset: int) -> list[str]:
    """The lines the schedule wrote to the engine's log after `offset`, one per sweep."""
    with log.open("rb") as lines:
        lines.seek(offset)
        written = lines.read().decode(errors="replace")
    return [line for line in written.splitlines() if line.startswith("scheduled reconcile")]


def sink_row(dsn: str, table: str, row_id: int) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        schema, name = table.split(".")
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]
        query = sql.SQL("SELECT EXISTS (SELECT FROM {} WHERE id = %s)").format(sql.Identifier(schema, name))
        return bool(exists and conn.execute(query, (row_id,)).fetchone()[0])


def test_a_failed_task_is_restarted_by_the_schedule_without_anyone_running_reconcile(scheduled_engine, spec_for):
    stack_endpoints = scheduled_engine
    spec = spec_for(f"sched_{RUN}")
    assert provision_and_wait(stack_endpoints, spec)["status"] == "SUCCEEDED"
    resolved = parse_spec(spec)
    names = resolved.names
    captured = resolved.source.tables[0]
    sink_table = f"{resolved.sink.schema}.{names.sink_table(captured)}"
    sink_dsn = stack_endpoints.postgres.sink_dsn()
    connect_url = stack_endpoints.connect.url
    log = config_from_env().log_path("engine")
    log_before = log.stat().st_size
    constraint = sql.Identifier(f"sched_{RUN}_qty")
    try:
        with psycopg.connect(stack_endpoints.postgres.source_dsn(), autocommit=True) as source:
            first = source.execute(sql.SQL("INSERT INTO {} (item, qty) VALUES ('first', 1) RETURNING id").format(
                sql.Identifier(*captured.split(".")))).fetchone()[0]
            wait_for("the first row at the sink", lambda: sink_row(sink_dsn, sink_table, first))
            # The sink refuses the next row for good (a constraint the source does not have): its task fails.
            with psycopg.connect(sink_dsn, autocommit=True) as sink:
                sink.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK (qty >= 0) NOT VALID").format(
                    sql.Identifier(*sink_table.split(".")), constraint))
            refused = source.execute(sql.SQL("INSERT INTO {} (item, qty) VALUES ('refused', -1) RETURNING id").format(
                sql.Identifier(*captured.split(".")))).fetchone()[0]
        try:
            wait_for("the sink task to fail", lambda: "FAILED" in task_states(connect_url, names.sink_connector))
        finally:
            with psycopg.connect(sink_dsn, autocommit=True) as sink:  # the operator fixes the cause
                sink.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}").format(
                    sql.Identifier(*sink_table.split(".")), constraint))

        # Nobody runs reconcile: only the schedule can restart the failed task.
        wait_for("the refused row at the sink", lambda: sink_row(sink_dsn, sink_table, refused), poll=0.5)

        assert task_states(connect_url, names.sink_connector) == ["RUNNING"]
        # The sweep that restarted it says so in the engine's log once it has finished.
        wait_for("the scheduled sweep's report of the restart",
                 lambda: any(names.sink_connector in line for line in scheduled_sweeps(log, log_before)), poll=0.5)
    finally:
        api_client(stack_endpoints).teardown(spec["pipeline_id"], keep_topics=False, keep_index=False)
