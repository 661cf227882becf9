"""Values arrive as they left: a type matrix through a real pipeline (PostgreSQL, Debezium, JDBC sink, PostgreSQL).

One source row per value case (numerics of 50 digits and of free scale,
NaN and +-Infinity in numeric, double precision and real, timestamptz at
+-infinity, timestamp and date at -infinity, timestamps before the Gregorian
calendar's start, time zones, intervals,
arrays, an enum, a domain, json and jsonb, uuid, inet and cidr, and TOASTed
text and jsonb that updates do not touch, in a table of the default replica
identity; bytea, large or not, in a table of identity FULL, as pre-flight
requires). money and timetz are refused at
Preflight (tests/integration/test_source_capture_refusals.py); the cases
that still arrive changed are listed above CASES. Each case is compared value by
value, as PostgreSQL's text output of the same column at the source and at
the sink (both sessions in UTC), after the initial copy, after an update that
leaves the large value alone, after one that changes it, and after deletes.
A table whose values cannot be represented is refused at Preflight naming
the column and its type.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
import pytest
import requests
from psycopg import sql

from cdcflow.local.config import Endpoints
from tests.provision import api_auth, provision_and_wait

pytestmark = pytest.mark.slow

RUN = uuid.uuid4().hex[:6]
TABLE = f"e2e_types_{RUN}"
BYTES_TABLE = f"e2e_bytes_{RUN}"  # bytea needs REPLICA IDENTITY FULL (lambdas.source.tables.capture_refusals)
ARRIVAL_SECONDS = 120
LARGE = "".join(f"{i:08x}" for i in range(40_000))  # 320 kB of poorly compressible text: stored out of line

COLUMNS = """
    id int PRIMARY KEY,
    note text,
    n_free numeric,
    n_wide numeric(50, 20),
    f8 double precision,
    f4 real,
    ts timestamp,
    ts_p3 timestamp(3),
    tstz timestamptz,
    d date,
    t time,
    iv interval,
    int_arr int[],
    text_arr text[],
    mood {enum},
    mood_arr {enum}[],
    dom {domain},
    j json,
    jb jsonb,
    u uuid,
    ip inet,
    net cidr,
    large text,
    large_jb jsonb
"""

# id -> the one column the row exercises and its value, as SQL text. Not here, because they still arrive
# changed (Debezium 3.1 and its JDBC sink with the settings of lambdas.connect.*_config): timestamp 'infinity'
# as 294247-01-10 04:00:25.2; date 'infinity' as '-infinity'; a date BC read by a snapshot as the same date AD; a
# multi-dimensional text[] as Java object names. Timestamps before 1582-10-15 arrive as they left only through
# ExactJsonConverter (a snapshot read them on the Julian calendar: 0001-01-01 became 0001-12-30 BC).
# timetz (its offset becomes +00) is refused at Preflight, as money is.
CASES: dict[int, tuple[str, str]] = {
    1: ("n_free", "'NaN'"),
    2: ("n_free", "'Infinity'"),
    3: ("n_free", "'-Infinity'"),
    4: ("n_free", "'12345678901234567890.123456789012345678901234567890'"),
    5: ("n_wide", "'123456789012345678901234567890.12345678901234567890'"),
    6: ("n_wide", "'-0.00000000000000000001'"),
    7: ("f8", "'NaN'"),
    8: ("f8", "'Infinity'"),
    9: ("f8", "'-Infinity'"),
    10: ("f8", "'1.2345678901234567e-300'"),
    11: ("f4", "'3.4028235e+38'"),
    12: ("f4", "'-Infinity'"),
    15: ("f4", "'NaN'"),
    13: ("ts", "'-infinity'"),
    14: ("ts", "'2024-02-29 23:59:59.999999'"),
    16: ("ts_p3", "'2024-06-01 12:00:00.123'"),
    17: ("tstz", "'infinity'"),
    18: ("tstz", "'-infinity'"),
    19: ("tstz", "'2024-03-31 02:30:00.123456+05:45'"),
    21: ("d", "'-infinity'"),
    22: ("d", "'1900-01-01'"),
    23: ("t", "'23:59:59.999999'"),
    25: ("iv", "'1 year 2 mons 3 days 04:05:06.789'"),
    26: ("iv", "'-1 mons +40 days'"),
    30: ("int_arr", "'{1,NULL,-3}'"),
    31: ("text_arr", "'{\"a b\",\"c,d\",\"\"}'"),
    32: ("mood", "'happy'"),
    33: ("dom", "7"),
    27: ("mood_arr", "'{sad,happy}'"),
    34: ("j", "'{\"b\": 1,  \"a\": [true, null]}'"),
    35: ("jb", "'{\"b\": 1, \"a\": {\"c\": \"\\u00e9\"}}'"),
    36: ("u", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"),
    37: ("ip", "'192.168.0.1/24'"),
    38: ("ip", "'2001:db8::1'"),
    39: ("net", "'10.0.0.0/8'"),
    40: ("large", "%(large)s"),
    43: ("large_jb", "jsonb_build_object('k', %(large)s::text)"),
    41: ("note", "'ünïcödé 🐘'"),
    44: ("ts", "'0001-01-01 00:00:00'"),
    45: ("tstz", "'0001-01-01 00:00:00+00'"),
    46: ("d", "'0001-01-01'"),
    47: ("ts", "'1582-10-04 12:00:00.5'"),
    49: ("ts", "'0044-03-15 12:00:00 BC'"),
    50: ("tstz", "'1582-10-15 00:00:00+00'"),
}


BYTES_COLUMNS = "id int PRIMARY KEY, note text, b bytea, large_b bytea"
BYTES_CASES: dict[int, tuple[str, str]] = {
    29: ("b", r"'\x00ff10e2'"),
    42: ("large_b", "decode(%(large)s, 'hex')"),
}


def _names(table: str) -> dict[str, sql.Identifier]:
    return {"table": sql.Identifier("public", table), "enum": sql.Identifier("public", f"{table}_mood"),
            "domain": sql.Identifier("public", f"{table}_positive")}


@pytest.fixture(scope="module")
def source_table(workflow_env: Endpoints) -> str:
    names = _names(TABLE)
    with psycopg.connect(workflow_env.postgres.source_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TYPE {} AS ENUM ('sad', 'happy')").format(names["enum"]))
        conn.execute(sql.SQL("CREATE DOMAIN {} AS int CHECK (VALUE > 0)").format(names["domain"]))
        conn.execute(sql.SQL("CREATE TABLE {table} (" + COLUMNS + ")").format(**names))
        # Replica identity stays DEFAULT, as most tables have it: an update that leaves a TOASTed value alone
        # then carries no value for it.
        bytes_table = sql.Identifier("public", BYTES_TABLE)
        conn.execute(sql.SQL("CREATE TABLE {} (" + BYTES_COLUMNS + ")").format(bytes_table))
        conn.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(bytes_table))
        for table, cases in ((names["table"], CASES), (bytes_table, BYTES_CASES)):
            for row_id, (column, value) in cases.items():
                conn.execute(
                    sql.SQL("INSERT INTO {} (id, {}) VALUES (%(id)s, ").format(table, sql.Identifier(column))
                    + sql.SQL(value) + sql.SQL(")"),
                    {"id": row_id, "large": LARGE},
                )
    return f"public.{TABLE}"


# An interval travels as ISO 8601 text (interval.handling.mode=string) and the sink holds that text: its value
# is the interval it casts to.
SINK_AS_TEXT = {"iv": "{}::interval::text"}


def _rows(dsn: str, table: sql.Composable, columns: list[str], side: str) -> dict[int, dict[str, Any]]:
    """Each row's columns as PostgreSQL's text output (UTC), keyed by id."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET IntervalStyle = 'postgres'")
        conn.execute("SET extra_float_digits = 1")
        query = sql.SQL("SELECT id, {} FROM {}").format(
            sql.SQL(", ").join(sql.SQL(SINK_AS_TEXT.get(c, "{}::text") if side == "sink" else "{}::text").format(
                sql.Identifier(c)) for c in columns), table)
        return {row[0]: dict(zip(columns, row[1:], strict=True)) for row in conn.execute(query)}


def _source_columns(stack: Endpoints, table: str) -> list[str]:
    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 1 AND NOT attisdropped "
            "ORDER BY attnum", [f"public.{table}"]).fetchall()
    return [row[0] for row in rows]


def _wait_until_equal(stack: Endpoints, table: str) -> tuple[dict, dict]:
    columns = _source_columns(stack, table)
    sink_table = sql.Identifier("public", f"public_{table}")
    deadline = time.monotonic() + ARRIVAL_SECONDS
    while True:
        source = _rows(stack.postgres.source_dsn(), sql.Identifier("public", table), columns, "source")
        try:
            sink = _rows(stack.postgres.sink_dsn(), sink_table, columns, "sink")
        except psycopg.errors.UndefinedTable:
            sink = {}
        except psycopg.errors.UndefinedColumn:
            sink = {}
        if source == sink or time.monotonic() > deadline:
            return source, sink
        time.sleep(1)


def _shown(value: str | None) -> str | None:
    """A value as a failure shows it: the large ones by their length and start."""
    return value if value is None or len(value) < 60 else f"{len(value)} chars: {value[:40]}..."


def _differences(source: dict, sink: dict) -> dict[int, dict[str, tuple[Any, Any]]]:
    out: dict[int, dict[str, tuple[Any, Any]]] = {}
    for row_id in sorted(set(source) | set(sink)):
        left, right = source.get(row_id), sink.get(row_id)
        if left is None or right is None:
            out[row_id] = {"(row)": (left is not None, right is not None)}
            continue
        changed = {c: (left[c], right.get(c)) for c in left if left[c] != right.get(c)}
        if changed:
            out[row_id] = {c: (_shown(a), _shown(b)) for c, (a, b) in changed.items()}
    return out


@pytest.fixture(scope="module")
def pipeline(workflow_env: Endpoints, spec_for: Any, source_table: str) -> Any:
    pipeline_id = f"vf_{RUN}"
    execution = provision_and_wait(workflow_env, spec_for(pipeline_id, source={"tables": [source_table, f"public.{BYTES_TABLE}"]}))
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    yield pipeline_id
    requests.delete(f"{workflow_env.api.url}/pipelines/{pipeline_id}", auth=api_auth(workflow_env), timeout=30)


def _differences_everywhere(stack: Endpoints) -> dict[str, dict]:
    """Each table's differences between source and sink, once they are equal or the arrival time has passed."""
    out = {}
    for table in (TABLE, BYTES_TABLE):
        differences = _differences(*_wait_until_equal(stack, table))
        if differences:
            out[table] = differences
    return out


def _ids(stack: Endpoints, table: str) -> list[int]:
    return sorted(_wait_until_equal(stack, table)[0])


def test_every_value_arrives_unchanged_through_copy_updates_and_deletes(workflow_env, pipeline) -> None:
    stack = workflow_env
    assert _ids(stack, TABLE) == sorted(CASES) and _ids(stack, BYTES_TABLE) == sorted(BYTES_CASES)
    assert _differences_everywhere(stack) == {}, "after the initial copy"

    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        # Inserted while streaming, then an update that leaves the large values alone (they stay TOASTed).
        for table in (TABLE, BYTES_TABLE):
            columns = sql.SQL(", ").join(map(sql.Identifier, _source_columns(stack, table)))
            name = sql.Identifier("public", table)
            conn.execute(sql.SQL("INSERT INTO {} SELECT id + 100, {} FROM {}").format(name, columns, name))
            conn.execute(sql.SQL("UPDATE {} SET note = 'touched ' || id").format(name))
    assert _differences_everywhere(stack) == {}, \
        "after inserts while streaming and an update not touching the large values"

    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("UPDATE {} SET large = reverse(large), large_jb = jsonb_build_object('k', reverse(%s)) "
                             "WHERE large IS NOT NULL OR large_jb IS NOT NULL")
                     .format(sql.Identifier("public", TABLE)), [LARGE])
        conn.execute(sql.SQL("UPDATE {} SET large_b = decode(reverse(%s), 'hex') WHERE large_b IS NOT NULL")
                     .format(sql.Identifier("public", BYTES_TABLE)), [LARGE])
        for table in (TABLE, BYTES_TABLE):
            conn.execute(sql.SQL("DELETE FROM {} WHERE id % 2 = 0").format(sql.Identifier("public", table)))
    for table, cases in ((TABLE, CASES), (BYTES_TABLE, BYTES_CASES)):
        assert _ids(stack, table) == sorted(i for i in (*cases, *(c + 100 for c in cases)) if i % 2)
    assert _differences_everywhere(stack) == {}, "after an update of the large values and deletes"
