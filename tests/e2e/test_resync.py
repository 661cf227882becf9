"""ResyncPipeline on the local stack: the rows a WHERE condition matches are delivered again, and only those.

A team provisions a pipeline of a 3,000-row table through the local API;
the sink's copy is then damaged by hand (every row's `item` overwritten).
`POST /pipelines/{id}/resync` with `qty = 3` re-delivers exactly the 300
matching rows through Debezium's incremental snapshot: the table's topic
gains one incremental-snapshot event for each matching id and for no other,
those sink rows are repaired, the damaged rows outside the condition stay
as they were, and the execution reports 300 matched and 300 delivered.
Conditions that could leave the WHERE clause, or that PostgreSQL refuses,
are 422s naming the table, and start nothing.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import requests
from kafka import KafkaConsumer, TopicPartition

from cdcflow.local.config import Endpoints, aws_environment
from lambdas import aws
from lambdas.spec import parse_spec
from tests.footprint import footprint
from tests.provision import engine_client, local_spec, signed_session, wait_for_execution
from tests.tenancy import team_request

pytestmark = pytest.mark.slow

PIPELINE_ID = "e2e_resync"
TEAM = "team-orders"
REQUESTER = "cdcflow-orders-requester"
TABLE = "public.e2e_resync_orders"
SINK_TABLE = "public.public_e2e_resync_orders"
ROWS = 3000
CONDITION = "qty = 3"
MATCHING = {n for n in range(1, ROWS + 1) if n % 10 == 3}
EXECUTION_TIMEOUT_SECONDS = 600
ARRIVAL_TIMEOUT_SECONDS = 120


def resolved_spec(stack: Endpoints) -> dict[str, Any]:
    return local_spec(stack, PIPELINE_ID, [TABLE], TEAM)


@pytest.fixture(scope="module")
def stack(local_stack: Endpoints) -> Endpoints:
    with psycopg.connect(local_stack.postgres.source_dsn(), autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} (id int PRIMARY KEY, item text NOT NULL, qty int NOT NULL)")
        conn.execute(f"INSERT INTO {TABLE} SELECT n, 'row-' || n, n %% 10 FROM generate_series(1, %s) n", [ROWS])
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


def sink_items(stack: Endpoints) -> dict[int, str]:
    with psycopg.connect(stack.postgres.sink_dsn(), autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s)", [SINK_TABLE]).fetchone()[0] is None:
            return {}
        return dict(conn.execute(f"SELECT id, item FROM {SINK_TABLE}").fetchall())


def incremental_snapshot_ids(stack: Endpoints, topic: str) -> list[int]:
    """The row ids of every incremental-snapshot event on `topic`, read to its current end."""
    consumer = KafkaConsumer(bootstrap_servers=stack.kafka.bootstrap_servers, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        consumer.seek_to_beginning(*partitions)
        ids = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    payload = json.loads(record.value)["payload"] if record.value else None
                    if payload and payload["op"] == "r" and payload["source"].get("snapshot") == "incremental":
                        ids.append(payload["after"]["id"])
        return ids
    finally:
        consumer.close()


def resync_executions(sfn: Any) -> list[str]:
    machine = next(m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]
                   if m["name"] == "ResyncPipeline")
    return [e["executionArn"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]]


@pytest.fixture(scope="module")
def active(stack: Endpoints, api: requests.Session, sfn: Any) -> dict[str, Any]:
    response = call(stack, api, "POST", "/pipelines", json=team_request(stack, resolved_spec(stack)))
    assert response.status_code == 202, response.text
    execution = wait_for_execution(sfn, response.json()["execution_arn"], EXECUTION_TIMEOUT_SECONDS)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_SECONDS
    while len(sink_items(stack)) < ROWS and time.monotonic() < deadline:
        time.sleep(1)
    assert len(sink_items(stack)) == ROWS
    return resolved_spec(stack)


@pytest.mark.parametrize(("condition", "reason"), [
    ("qty = 3) OR (true", "closes a parenthesis it did not open"),
    ("qty = 3; DELETE FROM public.e2e_resync_orders", "';'"),
    ("nope > 1", 'column "nope" does not exist'),
    ("qty", "argument of WHERE must be type boolean"),
])
def test_a_bad_condition_is_refused_before_anything_runs(stack, api, sfn, active, condition, reason) -> None:
    before = resync_executions(sfn)

    response = call(stack, api, "POST", f"/pipelines/{PIPELINE_ID}/resync", json={"where": {TABLE: condition}})

    assert response.status_code == 422, response.text
    assert response.json()["field"] == f"where.{TABLE}" and reason in response.json()["message"]
    assert resync_executions(sfn) == before
    pipeline = call(stack, api, "GET", f"/pipelines/{PIPELINE_ID}").json()
    assert pipeline["status"] == "ACTIVE" and pipeline.get("lifecycle_execution_arn") is None


def test_a_resync_with_a_condition_delivers_exactly_the_matching_rows_again(stack, api, sfn, active) -> None:
    topic = parse_spec(active).names.table_topic(TABLE)
    # The provisioning's backfill was an incremental snapshot too: each of its rows once.
    backfilled = Counter(incremental_snapshot_ids(stack, topic))
    assert set(backfilled.values()) <= {1}
    with psycopg.connect(stack.postgres.sink_dsn(), autocommit=True) as conn:
        conn.execute(f"UPDATE {SINK_TABLE} SET item = 'damaged'")

    response = call(stack, api, "POST", f"/pipelines/{PIPELINE_ID}/resync",
                    json={"tables": [TABLE], "where": {TABLE: CONDITION}})

    assert response.status_code == 202, response.text
    assert response.json()["tables"] == {TABLE: {"matched": len(MATCHING)}}
    execution = wait_for_execution(sfn, response.json()["execution_arn"], EXECUTION_TIMEOUT_SECONDS)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    report = json.loads(execution["output"])["MarkResynced"]
    assert report["tables"] == {TABLE: {"matched": len(MATCHING), "delivered": len(MATCHING)}}

    delivered = Counter(incremental_snapshot_ids(stack, topic)) - backfilled
    assert delivered == Counter(MATCHING)  # each matching row once more, no other row
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        repaired = {row_id for row_id, item in sink_items(stack).items() if item != "damaged"}
        if repaired == MATCHING:
            break
        time.sleep(1)
    items = sink_items(stack)
    assert {row_id for row_id, item in items.items() if item != "damaged"} == MATCHING
    assert all(items[row_id] == f"row-{row_id}" for row_id in MATCHING)
    pipeline = call(stack, api, "GET", f"/pipelines/{PIPELINE_ID}").json()
    assert pipeline["status"] == "ACTIVE" and pipeline["last_error"] is None
    assert pipeline.get("lifecycle_execution_arn") is None


def test_another_team_cannot_resync_the_pipeline(stack, sfn, active) -> None:
    before = resync_executions(sfn)
    with signed_session(stack, "cdcflow-payments-requester") as other:
        response = other.post(f"{stack.api.url}/pipelines/{PIPELINE_ID}/resync", json={}, timeout=30)

    assert response.status_code == 403, response.text
    assert resync_executions(sfn) == before


def test_teardown_leaves_nothing_behind(stack, api, sfn, active) -> None:
    response = call(stack, api, "DELETE", f"/pipelines/{PIPELINE_ID}")
    assert response.status_code == 202, response.text
    execution = wait_for_execution(sfn, response.json()["execution_arn"], EXECUTION_TIMEOUT_SECONDS)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in aws_environment(stack).items():
            patch.setenv(name, value)
        aws.reset_clients()
        try:
            assert footprint(parse_spec(active)).present() == {}
        finally:
            aws.reset_clients()
