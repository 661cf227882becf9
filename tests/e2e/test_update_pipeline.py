"""UpdatePipeline on the local stack: a 50,000-row table added while it is written to, then removed again.

A team provisions a pipeline of one table through the local API, then
PATCHes its spec to add a table already holding 50,000 rows while a writer
inserts and updates rows of that table. The update snapshots the table
incrementally (Debezium's signal table, its notifications) and only ends once
the sink holds as many rows as the source; after the writer stops, the sink
holds exactly the source's rows and values (none lost, none twice), and the
pipeline is ACTIVE on the new spec with the old one in its history. A second
PATCH removes the table: its topic is gone, its sink table stays (as the
answer says), and rows written to it afterwards never reach the sink. The
teardown leaves nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import requests

from cdcflow.local.config import Endpoints, aws_environment
from lambdas import aws
from lambdas.kafka_topics import kafka_admin, list_topics_with_prefix
from lambdas.spec import parse_spec
from tests.footprint import footprint
from tests.provision import engine_client, local_spec, signed_session, wait_for_execution
from tests.tenancy import team_request

pytestmark = pytest.mark.slow

PIPELINE_ID = "e2e_update"
TEAM = "team-orders"
REQUESTER = "cdcflow-orders-requester"
FIRST = "public.e2e_update_orders"
ADDED = "public.e2e_update_lines"
ADDED_SINK = "public.public_e2e_update_lines"
ADDED_ROWS = 50_000
EXECUTION_TIMEOUT_SECONDS = 900
ARRIVAL_TIMEOUT_SECONDS = 180
QUIET_SECONDS = 6



@pytest.fixture(scope="module")
def stack(local_stack: Endpoints) -> Endpoints:
    with psycopg.connect(local_stack.postgres.source_dsn(), autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {ADDED}")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {FIRST} (id serial PRIMARY KEY, item text NOT NULL)")
        conn.execute(f"CREATE TABLE {ADDED} (id serial PRIMARY KEY, item text NOT NULL, qty int NOT NULL)")
        conn.execute(f"INSERT INTO {ADDED} (item, qty) SELECT 'line-' || n, n %% 97 FROM generate_series(1, %s) n",
                     [ADDED_ROWS])
    with psycopg.connect(local_stack.postgres.sink_dsn(), autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {ADDED_SINK}")
    # An earlier run stopped half-way may have left the added table's topic: its events would reach the new sink.
    leftover = parse_spec(resolved_spec(local_stack, [FIRST, ADDED]))
    with kafka_admin(leftover.kafka.bootstrap_servers) as admin:
        stale = [topic for topic in admin.list_topics() if topic == leftover.names.table_topic(ADDED)]
        if stale:
            admin.delete_topics(stale)
    return local_stack


@pytest.fixture(scope="module")
def sfn(stack: Endpoints) -> Any:
    return engine_client(stack)


@pytest.fixture(scope="module")
def api(stack: Endpoints) -> Iterator[requests.Session]:
    with signed_session(stack, REQUESTER) as session:
        yield session


def call(stack: Endpoints, api: requests.Session, method: str, path: str, **kwargs: Any) -> requests.Response:
    return api.request(method, stack.api.url + path, timeout=30, **kwargs)


def resolved_spec(stack: Endpoints, tables: list[str]) -> dict[str, Any]:
    return local_spec(stack, PIPELINE_ID, tables, TEAM)


def table_state(dsn: str, table: str) -> tuple[int, int, str]:
    """(rows, sum of qty, md5 of every row in id order): equal at both ends means the same rows, once each."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s)", [table]).fetchone()[0] is None:
            return 0, 0, ""
        return conn.execute(
            f"SELECT count(*), coalesce(sum(qty), 0), coalesce(md5(string_agg(id || ':' || item || ':' || qty, ',' "
            f"ORDER BY id)), '') FROM {table}"
        ).fetchone()


class Writer(threading.Thread):
    """Inserts new rows into the added table and updates existing ones until stopped."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn, self.stop, self.writes, self.error = dsn, threading.Event(), 0, None

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                while not self.stop.is_set():
                    conn.execute(f"INSERT INTO {ADDED} (item, qty) VALUES ('during', 1)")
                    conn.execute(f"UPDATE {ADDED} SET qty = qty + 1 WHERE id = %s",
                                 [1 + (self.writes * 7919) % ADDED_ROWS])
                    self.writes += 2
                    time.sleep(0.05)
        except Exception as error:  # noqa: BLE001 - reported by the test
            self.error = error


@pytest.fixture(scope="module")
def active(stack: Endpoints, api: requests.Session, sfn: Any) -> dict[str, Any]:
    request = team_request(stack, resolved_spec(stack, [FIRST]))
    response = call(stack, api, "POST", "/pipelines", json=request)
    assert response.status_code == 202, response.text
    execution = wait_for_execution(sfn, response.json()["execution_arn"], EXECUTION_TIMEOUT_SECONDS)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    return request


def test_a_table_added_while_written_reaches_the_sink_whole(stack, api, sfn, active) -> None:
    writer = Writer(stack.postgres.source_dsn())
    writer.start()
    try:
        time.sleep(1)
        response = call(stack, api, "PATCH", f"/pipelines/{PIPELINE_ID}",
                        json={"source": {"tables": [FIRST, ADDED]}})
        assert response.status_code == 202, response.text
        assert response.json()["changes"]["tables_added"] == [ADDED]
        held = call(stack, api, "GET", f"/pipelines/{PIPELINE_ID}").json()
        assert held["lifecycle_execution_arn"] == response.json()["execution_arn"]
        execution = wait_for_execution(sfn, response.json()["execution_arn"], EXECUTION_TIMEOUT_SECONDS)
    finally:
        writer.stop.set()
        writer.join(timeout=30)
    assert writer.error is None and writer.writes > 0
    assert execution["status"] == "SUCCEEDED", execution.get("cause")

    source = table_state(stack.postgres.source_dsn(), ADDED)
    assert source[0] > ADDED_ROWS  # the writer's inserts are there too
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_SECONDS
    while (sink := table_state(stack.postgres.sink_dsn(), ADDED_SINK)) != source and time.monotonic() < deadline:
        time.sleep(1)
    assert sink == source

    pipeline = call(stack, api, "GET", f"/pipelines/{PIPELINE_ID}").json()
    assert pipeline["status"] == "ACTIVE" and pipeline["last_error"] is None
    assert pipeline["spec"]["source"]["tables"] == [FIRST, ADDED]
    assert pipeline.get("lifecycle_execution_arn") is None
    [replaced] = pipeline["spec_history"]
    assert replaced["spec"]["source"]["tables"] == [FIRST] and replaced["by"].endswith(REQUESTER)


def test_an_unchanged_spec_starts_nothing(stack, api, active) -> None:
    response = call(stack, api, "PATCH", f"/pipelines/{PIPELINE_ID}", json={"source": {"tables": [FIRST, ADDED]}})

    assert response.status_code == 200 and "nothing to change" in response.json()["message"]


def test_a_removed_table_sends_no_more_events_and_its_sink_table_stays(stack, api, sfn, active) -> None:
    before = table_state(stack.postgres.sink_dsn(), ADDED_SINK)
    response = call(stack, api, "PATCH", f"/pipelines/{PIPELINE_ID}", json={"source": {"tables": [FIRST]}})
    assert response.status_code == 202, response.text
    assert response.json()["changes"]["sink_tables_left"] == [ADDED_SINK]
    execution = wait_for_execution(sfn, response.json()["execution_arn"], EXECUTION_TIMEOUT_SECONDS)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")

    names = parse_spec(resolved_spec(stack, [FIRST])).names
    assert names.table_topic(ADDED) not in list_topics_with_prefix(stack.kafka.bootstrap_servers,
                                                                  names.debezium_topic_prefix)
    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        conn.execute(f"INSERT INTO {ADDED} (item, qty) VALUES ('after-removal', 5)")
        conn.execute(f"INSERT INTO {FIRST} (item) VALUES ('still-captured')")
    time.sleep(QUIET_SECONDS)
    assert table_state(stack.postgres.sink_dsn(), ADDED_SINK) == before
    pipeline = call(stack, api, "GET", f"/pipelines/{PIPELINE_ID}").json()
    assert pipeline["status"] == "ACTIVE" and pipeline["spec"]["source"]["tables"] == [FIRST]


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
            assert footprint(parse_spec(resolved_spec(stack, [FIRST]))).present() == {}
        finally:
            aws.reset_clients()
