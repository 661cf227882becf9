"""ACTIVE means streaming: a pipeline over a large table streams first and copies the table as a tracked backfill.

On the real stack, a pipeline whose table holds 150,000 rows is provisioned
with the default `snapshot_mode` (backfill). The registry says ACTIVE while
the backfill is still RUNNING, the API reports its progress (rows copied of
rows estimated, tables read) as it moves, lifecycle requests meet a 409
naming the backfill, and rows inserted, updated and deleted during the copy
all reach the sink: at the end source and sink hold the same rows, none
missing and none twice. A DELETE during the backfill stops the provisioning
and tears everything down.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
import requests
from psycopg import sql

from cdcflow.local.config import Endpoints
from lambdas.spec import parse_spec
from tests.footprint import footprint
from tests.provision import api_auth, engine_client, wait_for_execution
from tests.tenancy import team_request

pytestmark = pytest.mark.slow

RUN = uuid.uuid4().hex[:6]
ROWS = 150_000
WAIT_SECONDS = 600  # a bound for a loaded two-core machine; reaching it fails the test, nothing is timed


def _make_table(stack: Endpoints, name: str) -> str:
    table = sql.Identifier("public", name)
    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, item text NOT NULL, qty int NOT NULL)")
                     .format(table))
        conn.execute(sql.SQL("INSERT INTO {} SELECT i, 'item ' || i || repeat('x', 100), i %% 97 "
                             "FROM generate_series(1, %s) AS i").format(table), [ROWS])
        conn.execute(sql.SQL("ANALYZE {}").format(table))
    return f"public.{name}"


def _post(stack: Endpoints, spec: dict[str, Any]) -> str:
    response = requests.post(f"{stack.api.url}/pipelines", json=team_request(stack, spec), auth=api_auth(stack),
                             timeout=30)
    assert response.status_code == 202, response.text
    return response.json()["execution_arn"]


def _describe(stack: Endpoints, pipeline_id: str) -> dict[str, Any]:
    response = requests.get(f"{stack.api.url}/pipelines/{pipeline_id}", auth=api_auth(stack), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _wait_until_backfilling(stack: Endpoints, pipeline_id: str) -> dict[str, Any]:
    """The pipeline as first seen ACTIVE; fails if it got there without a backfill running."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        pipeline = _describe(stack, pipeline_id)
        assert pipeline["status"] in ("PROVISIONING", "ACTIVE"), pipeline
        if pipeline["status"] == "ACTIVE":
            return pipeline
        time.sleep(0.2)
    raise AssertionError(f"{pipeline_id} did not become ACTIVE")


def _rows(dsn: str, table: sql.Composable) -> dict[int, tuple[str, int]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {row[0]: (row[1], row[2]) for row in conn.execute(sql.SQL("SELECT id, item, qty FROM {}").format(table))}


class Writer(threading.Thread):
    """Inserts new rows, updates copied and not yet copied ones, and deletes some, until stopped."""

    def __init__(self, dsn: str, table: str) -> None:
        super().__init__(daemon=True)
        self.dsn, self.table = dsn, sql.Identifier(*table.split("."))
        self.stop = threading.Event()
        self.batches = 0

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                n = self.batches
                conn.execute(sql.SQL("INSERT INTO {} VALUES (%s, 'new', 1)").format(self.table), [ROWS + 1 + n])
                # Rows near the start (read early) and near the end (read late) of the copy change.
                conn.execute(sql.SQL("UPDATE {} SET qty = qty + 1000, item = 'changed' WHERE id IN (%s, %s)")
                             .format(self.table), [1 + n * 7, ROWS - n * 7])
                conn.execute(sql.SQL("DELETE FROM {} WHERE id = %s").format(self.table), [ROWS // 2 + n])
                self.batches += 1
                time.sleep(0.05)


def test_a_large_table_is_copied_after_the_pipeline_streams_with_progress_and_nothing_lost(
    workflow_env, spec_for,
) -> None:
    stack = workflow_env
    pipeline_id = f"bf_{RUN}"
    table = _make_table(stack, f"e2e_backfill_{RUN}")
    spec = spec_for(pipeline_id, source={"tables": [table]})
    assert "snapshot_mode" not in (spec.get("debezium") or {})  # the default is the backfill
    execution_arn = _post(stack, spec)

    active = _wait_until_backfilling(stack, pipeline_id)
    assert active["backfill"]["status"] == "RUNNING", active["backfill"]
    writer = Writer(stack.postgres.source_dsn(), table)
    writer.start()
    paused = requests.post(f"{stack.api.url}/pipelines/{pipeline_id}/pause", auth=api_auth(stack), timeout=30)
    assert paused.status_code == 409 and "backfill" in paused.json()["message"], paused.text

    seen: list[dict[str, Any]] = []
    sfn = engine_client(stack)
    deadline = time.monotonic() + WAIT_SECONDS
    while sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the backfill did not end"
        pipeline = _describe(stack, pipeline_id)
        assert pipeline["status"] == "ACTIVE", pipeline
        seen.append(pipeline["backfill"])
        time.sleep(0.5)
    writer.stop.set()
    writer.join()

    execution = sfn.describe_execution(executionArn=execution_arn)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    moving = [b for b in seen if b["status"] == "RUNNING" and 0 < b.get("rows_copied", 0) < b.get("rows_estimated", 0)]
    assert moving, f"no progress between the start and the end was reported: {seen}"
    assert all(b["rows_estimated"] >= ROWS * 0.9 and b["tables"] == [table] for b in moving)
    done = _describe(stack, pipeline_id)
    assert done["status"] == "ACTIVE" and done.get("lifecycle_execution_arn") is None
    assert done["backfill"]["status"] == "DONE" and done["backfill"]["tables_done"] == [table], done["backfill"]
    assert done["backfill"]["rows_copied"] >= ROWS - writer.batches

    # Every change made during the copy arrived, and no row is missing or left over.
    sink_table = sql.Identifier("public", parse_spec(spec).names.sink_table(table))
    deadline = time.monotonic() + WAIT_SECONDS
    source = _rows(stack.postgres.source_dsn(), sql.Identifier(*table.split(".")))
    while (sink := _rows(stack.postgres.sink_dsn(), sink_table)) != source:
        assert time.monotonic() < deadline, (
            f"sink differs: {len(source)} rows at the source, {len(sink)} at the sink, "
            f"{len(set(source) ^ set(sink))} ids in one only")
        time.sleep(1)
    assert writer.batches > 0 and len(source) == ROWS


def test_a_delete_during_the_backfill_stops_it_and_leaves_nothing(workflow_env, spec_for) -> None:
    stack = workflow_env
    pipeline_id = f"bfdel_{RUN}"
    spec = spec_for(pipeline_id, source={"tables": [_make_table(stack, f"e2e_backfill_del_{RUN}")]})
    execution_arn = _post(stack, spec)
    assert _wait_until_backfilling(stack, pipeline_id)["backfill"]["status"] == "RUNNING"

    deleted = requests.delete(f"{stack.api.url}/pipelines/{pipeline_id}", auth=api_auth(stack), timeout=30)

    assert deleted.status_code == 202, deleted.text
    sfn = engine_client(stack)
    assert wait_for_execution(sfn, execution_arn)["status"] == "ABORTED"
    teardown = wait_for_execution(sfn, deleted.json()["execution_arn"])
    assert teardown["status"] == "SUCCEEDED", teardown.get("cause")
    assert _describe(stack, pipeline_id)["status"] == "DELETED"
    assert footprint(parse_spec(spec)).present() == {}
