"""The canary: one row written at the source and looked for at the sink, proving the pipeline end to end.

The row goes into the pipeline's heartbeat table, which is in the
publication; Debezium turns it into an event on the heartbeat table's topic,
and the sink connector writes it to the sink table for that table. Finding
the row there shows slot, publication, Debezium, Kafka and the sink all work.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import sql

from lambdas.source.tables import table_identifier
from lambdas.spec import PipelineSpec

CANARY_PREFIX = "canary-"
# Tokens end up in a row id and in log lines: keep them short and plain.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def canary_row_id(token: str) -> str:
    """The heartbeat table row id for `token`: `canary-<token>`. Raises ValueError for a malformed token."""
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"canary token {token!r} must be 1-64 characters of letters, digits, '_' and '-'")
    return f"{CANARY_PREFIX}{token}"


def sink_table_name(spec: PipelineSpec) -> str:
    """`<sink schema>.<sink table>` where the heartbeat table's rows, and so the canary, land."""
    return f"{spec.sink.schema}.{spec.names.sink_table(spec.names.heartbeat_qualified)}"


def write_canary(conn: psycopg.Connection, spec: PipelineSpec, token: str) -> dict[str, Any]:
    """Upsert row `canary-<token>` into the pipeline's heartbeat table (on the source).

    Returns the row id and where to expect it: the Kafka topic and the sink
    table. Idempotent: writing the same token again only refreshes its
    timestamp (a new change event with the same key) and returns the same
    result. Raises ValueError for a malformed token before writing.
    """
    row_id = canary_row_id(token)
    names = spec.names
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (id, beat) VALUES (%s, now()) ON CONFLICT (id) DO UPDATE SET beat = EXCLUDED.beat"
        ).format(table_identifier(names.heartbeat_qualified)),
        [row_id],
    )
    return {
        "canary": row_id,
        "source_table": names.heartbeat_qualified,
        "topic": names.table_topic(names.heartbeat_qualified),
        "sink_table": sink_table_name(spec),
    }


def canary_arrived(sink_conn: psycopg.Connection, spec: PipelineSpec, token: str) -> bool:
    """Whether row `canary-<token>` has reached the sink table (`sink_conn` is to the sink database). Read-only.

    A sink table that does not exist yet (the sink connector creates it with
    the first event) means "not yet", not an error.
    """
    row_id = canary_row_id(token)
    query = sql.SQL("SELECT EXISTS (SELECT FROM {} WHERE id = %s)").format(table_identifier(sink_table_name(spec)))
    try:
        # Its own (sub)transaction, so a missing table leaves the caller's connection usable.
        with sink_conn.transaction():
            row = sink_conn.execute(query, [row_id]).fetchone()
    except psycopg.errors.UndefinedTable:
        return False
    return bool(row[0])


def drop_canary_sink_table(sink_conn: psycopg.Connection, spec: PipelineSpec) -> bool:
    """Drop the sink's copy of the heartbeat table (`sink_conn` is to the sink database); True if it existed.

    The table holds only heartbeats and canaries, created by the sink
    connector: it is cdcflow's, unlike the sink tables of captured tables,
    which hold the user's data and are never dropped. Idempotent.
    """
    table = table_identifier(sink_table_name(spec))
    existed = sink_conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table.as_string(sink_conn)]).fetchone()[0]
    sink_conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
    return bool(existed)
