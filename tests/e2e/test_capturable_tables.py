"""Every table a user can name is capturable, and TRUNCATE does what the spec says, on the real stack.

Pipeline A captures a mixed-case table in a schema whose name has a space
(`"Sales Dept"."Orders Pending"`), a table without a primary key keyed by
the columns the spec chooses (`sink.key_columns`), and a table that is then
truncated (`sink.truncate: apply`, the default): the sink table empties.
Pipeline B captures the same truncated table into another sink schema with
`sink.truncate: ignore`: its rows stay. Both sink schemas are missing
before the provisions (Preflight creates them). A table without a primary
key and no chosen key, or with a geometric column, is refused at Preflight
naming the table, the column and its type.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
import requests
from psycopg import sql

from cdcflow.local.config import Endpoints
from tests.provision import api_auth, provision_and_wait

pytestmark = pytest.mark.slow

RUN = uuid.uuid4().hex[:6]
MIXED = ("Sales Dept", f"Orders Pending {RUN}")
NO_KEY = ("public", f"e2e_nokey_{RUN}")
TRUNCATED = ("public", f"e2e_trunc_{RUN}")
GEOMETRY = ("public", f"e2e_geometry_{RUN}")
SCHEMA_A, SCHEMA_B = f"cap_a_{RUN}", f"cap_b_{RUN}"
ARRIVAL_SECONDS = 120


def qualified(table: tuple[str, str]) -> str:
    return ".".join(table)


def sink_name(schema: str, table: tuple[str, str]) -> sql.Identifier:
    return sql.Identifier(schema, f"{table[0]}_{table[1]}")


@pytest.fixture(scope="module")
def source_tables(workflow_env: Endpoints) -> None:
    with psycopg.connect(workflow_env.postgres.source_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(MIXED[0])))
        conn.execute(sql.SQL('CREATE TABLE {} ("Order Id" int PRIMARY KEY, "Item Name" text)').format(
            sql.Identifier(*MIXED)))
        conn.execute(sql.SQL("CREATE TABLE {} (code text NOT NULL, qty int)").format(sql.Identifier(*NO_KEY)))
        conn.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(sql.Identifier(*NO_KEY)))
        conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, v text)").format(sql.Identifier(*TRUNCATED)))
        conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, spot point)").format(sql.Identifier(*GEOMETRY)))
        conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 'Lamp')").format(sql.Identifier(*MIXED)))
        conn.execute(sql.SQL("INSERT INTO {} VALUES ('a', 1), ('b', 2)").format(sql.Identifier(*NO_KEY)))
        conn.execute(sql.SQL("INSERT INTO {} SELECT g, 'row ' || g FROM generate_series(1, 5) g").format(
            sql.Identifier(*TRUNCATED)))


def sink_rows(stack: Endpoints, table: sql.Identifier, order: str) -> list[tuple] | None:
    with psycopg.connect(stack.postgres.sink_dsn(), autocommit=True) as conn:
        try:
            return conn.execute(sql.SQL("SELECT * FROM {} ORDER BY {}").format(table, sql.Identifier(order))).fetchall()
        except psycopg.errors.UndefinedTable:
            return None


def wait_for_rows(stack: Endpoints, table: sql.Identifier, order: str, expected: list[tuple]) -> list[tuple] | None:
    deadline = time.monotonic() + ARRIVAL_SECONDS
    while True:
        rows = sink_rows(stack, table, order)
        if rows == expected or time.monotonic() > deadline:
            return rows
        time.sleep(1)


@pytest.fixture(scope="module")
def pipelines(workflow_env: Endpoints, spec_for: Any, source_tables: None) -> Any:
    stack = workflow_env
    with psycopg.connect(stack.postgres.sink_dsn(), autocommit=True) as conn:
        for schema in (SCHEMA_A, SCHEMA_B):
            assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone() is None
    specs = {
        f"cap_a_{RUN}": spec_for(f"cap_a_{RUN}", source={"tables": [qualified(MIXED), qualified(NO_KEY),
                                                                      qualified(TRUNCATED)]},
                                 sink={"schema": SCHEMA_A, "key_columns": {qualified(NO_KEY): ["code"]}}),
        f"cap_b_{RUN}": spec_for(f"cap_b_{RUN}", source={"tables": [qualified(TRUNCATED)]},
                                 sink={"schema": SCHEMA_B, "truncate": "ignore"}),
    }
    with ThreadPoolExecutor(2) as pool:
        executions = dict(zip(specs, pool.map(lambda spec: provision_and_wait(stack, spec), specs.values())))
    for pipeline_id, execution in executions.items():
        assert execution["status"] == "SUCCEEDED", f"{pipeline_id}: {execution.get('cause')}"
    yield executions
    for pipeline_id in specs:
        requests.delete(f"{stack.api.url}/pipelines/{pipeline_id}", auth=api_auth(stack), timeout=30)


def test_a_mixed_case_table_in_a_schema_with_a_space_arrives_under_its_own_spelling(workflow_env, pipelines):
    stack = workflow_env
    table = sink_name(SCHEMA_A, MIXED)
    assert wait_for_rows(stack, table, "Order Id", [(1, "Lamp")]) == [(1, "Lamp")]
    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("INSERT INTO {} VALUES (2, 'Desk'), (3, 'Chair')").format(sql.Identifier(*MIXED)))
        conn.execute(sql.SQL('UPDATE {} SET "Item Name" = \'Big Desk\' WHERE "Order Id" = 2').format(
            sql.Identifier(*MIXED)))
        conn.execute(sql.SQL('DELETE FROM {} WHERE "Order Id" = 1').format(sql.Identifier(*MIXED)))
    expected = [(2, "Big Desk"), (3, "Chair")]
    assert wait_for_rows(stack, table, "Order Id", expected) == expected


def test_a_table_without_a_primary_key_is_keyed_by_the_chosen_columns(workflow_env, pipelines):
    stack = workflow_env
    table = sink_name(SCHEMA_A, NO_KEY)
    assert wait_for_rows(stack, table, "code", [("a", 1), ("b", 2)]) == [("a", 1), ("b", 2)]
    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("UPDATE {} SET qty = 10 WHERE code = 'a'").format(sql.Identifier(*NO_KEY)))
        conn.execute(sql.SQL("DELETE FROM {} WHERE code = 'b'").format(sql.Identifier(*NO_KEY)))
        conn.execute(sql.SQL("INSERT INTO {} VALUES ('c', 3)").format(sql.Identifier(*NO_KEY)))
    expected = [("a", 10), ("c", 3)]
    assert wait_for_rows(stack, table, "code", expected) == expected
    with psycopg.connect(stack.postgres.sink_dsn(), autocommit=True) as conn:
        key = conn.execute(
            "SELECT array_agg(a.attname::text) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
            [table.as_string(conn)]).fetchone()[0]
    assert key == ["code"]


def test_truncate_is_applied_or_ignored_as_each_pipeline_says_into_two_sink_schemas(workflow_env, pipelines):
    stack = workflow_env
    every_row = [(i, f"row {i}") for i in range(1, 6)]
    for schema in (SCHEMA_A, SCHEMA_B):
        assert wait_for_rows(stack, sink_name(schema, TRUNCATED), "id", every_row) == every_row, schema
    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(*TRUNCATED)))
        conn.execute(sql.SQL("INSERT INTO {} VALUES (9, 'after')").format(sql.Identifier(*TRUNCATED)))
    # A row written after the TRUNCATE is behind it in the stream: once it arrives, the TRUNCATE was handled.
    assert wait_for_rows(stack, sink_name(SCHEMA_A, TRUNCATED), "id", [(9, "after")]) == [(9, "after")]
    assert wait_for_rows(stack, sink_name(SCHEMA_B, TRUNCATED), "id", [*every_row, (9, "after")]) == [
        *every_row, (9, "after")]


@pytest.mark.parametrize("case", ["no_key", "geometry"])
def test_a_table_that_cannot_be_captured_unchanged_is_refused_at_preflight_naming_it(
        workflow_env, spec_for, source_tables, case):
    table, named = {"no_key": (NO_KEY, "sink.key_columns"), "geometry": (GEOMETRY, "'spot' of type point")}[case]
    pipeline_id = f"cap_{case[:2]}_{RUN}"
    execution = provision_and_wait(workflow_env, spec_for(pipeline_id, source={"tables": [qualified(table)]}))
    assert execution["status"] == "FAILED"
    assert execution["error"] == "TablesNotCapturable"
    assert qualified(table) in execution["cause"] and named in execution["cause"]
    entry = requests.get(f"{workflow_env.api.url}/pipelines/{pipeline_id}", auth=api_auth(workflow_env),
                         timeout=30).json()
    assert entry["current_step"] == "Preflight"
