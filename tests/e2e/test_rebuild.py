"""RebuildPipeline on the local stack: a pipeline whose slot was dropped comes back whole.

A team's pipeline streams a table; its replication slot is then dropped by
hand and rows are written while no slot exists (changes no connector will
ever decode). Reconciliation finds the pipeline BROKEN. `cdcflow resync
--rebuild` gives it a new slot and source connector, whose initial snapshot
delivers every row again: afterwards the sink holds exactly the source's
rows, including those written while the slot was gone, the pipeline is
ACTIVE, the next sweep finds nothing broken, and new changes stream. A
teardown then leaves nothing behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import requests

from cdcflow.local.config import Endpoints, aws_environment
from lambdas import aws
from lambdas.spec import parse_spec
from tests.footprint import footprint
from tests.provision import engine_client, local_spec, signed_session, wait_for_execution
from tests.slots import drop_slot_by_hand, sweep
from tests.tenancy import team_request

pytestmark = pytest.mark.slow

PIPELINE_ID = "e2e_rebuild"
TEAM = "team-orders"
REQUESTER = "cdcflow-orders-requester"
TABLE = "public.e2e_rebuild_orders"
SINK_TABLE = "public.public_e2e_rebuild_orders"
SLOT = f"cdcflow_{PIPELINE_ID}"
EXECUTION_TIMEOUT_SECONDS = 600
ARRIVAL_TIMEOUT_SECONDS = 120


def resolved_spec(stack: Endpoints) -> dict[str, Any]:
    return local_spec(stack, PIPELINE_ID, [TABLE], TEAM)


@pytest.fixture(scope="module")
def stack(local_stack: Endpoints) -> Endpoints:
    with psycopg.connect(local_stack.postgres.source_dsn(), autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} (id serial PRIMARY KEY, item text NOT NULL)")
    with psycopg.connect(local_stack.postgres.sink_dsn(), autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {SINK_TABLE}")
    return local_stack


@pytest.fixture(scope="module")
def api(stack: Endpoints) -> Iterator[requests.Session]:
    with signed_session(stack, REQUESTER) as session:
        yield session


@pytest.fixture(scope="module")
def sfn(stack: Endpoints) -> Any:
    return engine_client(stack)


def call(stack: Endpoints, api: requests.Session, method: str, path: str, **kwargs: Any) -> requests.Response:
    return api.request(method, stack.api.url + path, timeout=60, **kwargs)


def insert(stack: Endpoints, count: int, label: str) -> None:
    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        for n in range(count):
            conn.execute(f"INSERT INTO {TABLE} (item) VALUES (%s)", [f"{label}-{n}"])


def rows(dsn: str, table: str) -> dict[int, str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s)", [table]).fetchone()[0] is None:
            return {}
        return dict(conn.execute(f"SELECT id, item FROM {table}").fetchall())


def sink_catches_up(stack: Endpoints) -> tuple[dict[int, str], dict[int, str]]:
    """(source rows, sink rows) once they are equal, or when the wait is over."""
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_SECONDS
    while True:
        source, sink = rows(stack.postgres.source_dsn(), TABLE), rows(stack.postgres.sink_dsn(), SINK_TABLE)
        if source == sink or time.monotonic() > deadline:
            return source, sink
        time.sleep(1)


def cdcflow(stack: Endpoints, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cdcflow.cli", *arguments, "--api-url", stack.api.url, "--sfn-endpoint",
         stack.engine.url, "--profile", REQUESTER],
        check=False, capture_output=True, text=True, timeout=EXECUTION_TIMEOUT_SECONDS,
        env={**os.environ, "COLUMNS": "300"},
    )


@pytest.fixture(scope="module")
def broken(stack: Endpoints, api: requests.Session, sfn: Any) -> None:
    response = call(stack, api, "POST", "/pipelines", json=team_request(stack, resolved_spec(stack)))
    assert response.status_code == 202, response.text
    execution = wait_for_execution(sfn, response.json()["execution_arn"], EXECUTION_TIMEOUT_SECONDS)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    insert(stack, 50, "before")
    source, sink = sink_catches_up(stack)
    assert len(source) == 50 and sink == source
    assert sweep(PIPELINE_ID)["status"] == "ACTIVE"

    drop_slot_by_hand(stack, SLOT)
    insert(stack, 20, "while-no-slot")  # no slot holds these changes: streaming alone never delivers them
    swept = sweep(PIPELINE_ID)
    assert swept["status"] == "BROKEN", swept


def test_a_pipeline_not_registered_is_not_rebuilt(stack, api) -> None:
    response = call(stack, api, "POST", f"/pipelines/{PIPELINE_ID}/resync", json={"rebuild": True})
    assert response.status_code == 404, response.text


def test_a_rebuild_brings_every_row_back_and_the_pipeline_streams_again(stack, api, sfn, broken) -> None:
    insert(stack, 10, "broken")

    rebuilt = cdcflow(stack, "resync", PIPELINE_ID, "--rebuild")

    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "rebuilding" in rebuilt.stdout and "is ACTIVE" in rebuilt.stdout
    source, sink = sink_catches_up(stack)
    assert len(source) == 80 and sink == source  # the 20 written while no slot existed too
    pipeline = call(stack, api, "GET", f"/pipelines/{PIPELINE_ID}").json()
    assert pipeline["status"] == "ACTIVE" and pipeline["last_error"] is None
    assert pipeline.get("lifecycle_execution_arn") is None

    swept = sweep(PIPELINE_ID)
    assert swept["status"] == "ACTIVE" and not swept.get("broken"), swept
    insert(stack, 5, "after")
    source, sink = sink_catches_up(stack)
    assert len(source) == 85 and sink == source


def test_a_second_rebuild_is_refused_once_active(stack, api, broken) -> None:
    response = call(stack, api, "POST", f"/pipelines/{PIPELINE_ID}/resync", json={"rebuild": True})

    assert response.status_code == 409 and "only a BROKEN pipeline" in response.json()["message"], response.text


def test_teardown_leaves_nothing_behind(stack, api, sfn, broken) -> None:
    response = call(stack, api, "DELETE", f"/pipelines/{PIPELINE_ID}")
    assert response.status_code == 202, response.text
    execution = wait_for_execution(sfn, response.json()["execution_arn"], EXECUTION_TIMEOUT_SECONDS)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in aws_environment(stack).items():
            patch.setenv(name, value)
        aws.reset_clients()
        try:
            assert footprint(parse_spec(resolved_spec(stack))).present() == {}
        finally:
            aws.reset_clients()
