"""Resync requests: which of a running pipeline's tables to snapshot again, and which of their rows.

`POST /pipelines/{id}/resync` names tables the pipeline captures (none: all
of them) and, for each, optionally a WHERE condition. Debezium applies a
condition inside its own chunk queries, run by the replication role, so a
condition is accepted only when

- it is one expression: no statement separator, no comment, no dollar
  quoting, and its parentheses never close more than it opened (so it
  cannot end the WHERE clause and append a UNION or another clause), and
- PostgreSQL parsed and planned it against the table as a boolean, in a
  read-only transaction with a short statement timeout (`EXPLAIN`, which
  plans without running anything), then counted the rows it matches.

Both checks run before any workflow starts, so a bad condition is a 422
naming the table and PostgreSQL's own message. The condition travels to
Debezium wrapped in parentheses (`resync_filter`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from lambdas.errors import StepError
from lambdas.source.tables import table_identifier
from lambdas.spec import PipelineSpec

MAX_CONDITION_LENGTH = 2000
# How long PostgreSQL may take to plan a condition, and to count the rows it matches.
PLAN_TIMEOUT_MS = 2000
COUNT_TIMEOUT_MS = 30_000


class ResyncRefused(StepError):
    """A resync request names a table the pipeline does not capture, or a condition PostgreSQL would not accept."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ResyncRequest:
    """What to snapshot again: tables in the pipeline's order, and the condition of those that have one."""

    tables: tuple[str, ...]
    conditions: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"tables": list(self.tables), "where": dict(self.conditions)}


def parse_request(spec: PipelineSpec, body: Mapping[str, Any]) -> ResyncRequest:
    """The request in `body` (`{"tables": [...], "where": {table: condition}}`, both optional), checked against
    the pipeline's tables and for the shape of each condition (`condition_problem`). Raises `ResyncRefused`."""
    unknown = sorted(set(body) - {"tables", "where"})
    if unknown:
        raise ResyncRefused(f"unknown fields {', '.join(unknown)}; a resync takes tables and where", unknown[0])
    captured = list(spec.source.tables)
    tables = body.get("tables")
    if tables is None:
        tables = captured
    if not isinstance(tables, list) or not tables or not all(isinstance(t, str) for t in tables):
        raise ResyncRefused("tables must be a non-empty list of schema.table names the pipeline captures", "tables")
    foreign = [table for table in tables if table not in captured]
    if foreign:
        raise ResyncRefused(f"pipeline {spec.pipeline_id!r} does not capture {', '.join(foreign)}; it captures "
                            f"{', '.join(captured)}", "tables")
    conditions = body.get("where") or {}
    if not isinstance(conditions, dict) or not all(isinstance(c, str) for c in conditions.values()):
        raise ResyncRefused("where must map schema.table to a condition (SQL text)", "where")
    outside = sorted(set(conditions) - set(tables))
    if outside:
        raise ResyncRefused(f"where names tables the resync does not include: {', '.join(outside)}", "where")
    for table, condition in conditions.items():
        problem = condition_problem(condition)
        if problem:
            raise ResyncRefused(f"the condition for {table} {problem}", f"where.{table}")
    ordered = tuple(table for table in captured if table in set(tables))
    return ResyncRequest(ordered, {table: conditions[table].strip() for table in ordered if table in conditions})


def condition_problem(condition: str) -> str | None:
    """Why `condition` is not one self-contained SQL expression, or None. PostgreSQL judges the rest."""
    if not condition.strip():
        return "is empty"
    if len(condition) > MAX_CONDITION_LENGTH:
        return f"is longer than {MAX_CONDITION_LENGTH} characters"
    if "\x00" in condition:
        return "holds a NUL character"
    depth, quote, i = 0, None, 0
    while i < len(condition):
        char = condition[i]
        if quote:
            if char == quote:
                if condition[i + 1:i + 2] == quote:  # a doubled quote stays inside the literal
                    i += 1
                else:
                    quote = None
        elif char in "'\"":
            quote = char
        elif char == ";":
            return "holds ';': it must be one expression, not statements"
        elif condition.startswith("--", i) or condition.startswith("/*", i):
            return "holds a comment"
        elif char == "$":
            return "holds '$' (dollar quoting or a parameter); write literals in single quotes"
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return "closes a parenthesis it did not open"
        i += 1
    if quote:
        return f"leaves a {quote} quote open"
    if depth:
        return "leaves a parenthesis open"
    return None


def resync_filter(condition: str) -> str:
    """The condition as Debezium gets it: parenthesized, so it binds as one operand of Debezium's own AND."""
    return f"({condition})"


def _matching_rows_query(table: str, condition: str | None) -> sql.Composed:
    query = sql.SQL("SELECT count(*) FROM {}").format(table_identifier(table))
    # The condition is checked by `condition_problem` and parsed by PostgreSQL here; it is not an identifier.
    return query + sql.SQL(" WHERE ") + sql.SQL(resync_filter(condition)) if condition else query


def check_conditions(conn: psycopg.Connection, request: ResyncRequest) -> dict[str, int]:
    """Have PostgreSQL plan each table's condition, read-only; return the rows each table's condition matches
    (all its rows without one). Raises `ResyncRefused` with PostgreSQL's message for a condition it refuses."""
    counts: dict[str, int] = {}
    for table in request.tables:
        condition = request.conditions.get(table)
        query = _matching_rows_query(table, condition)
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION READ ONLY")
                conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(PLAN_TIMEOUT_MS)))
                conn.execute(sql.SQL("EXPLAIN ") + query)
                conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(COUNT_TIMEOUT_MS)))
                counts[table] = int(conn.execute(query).fetchone()[0])
        except psycopg.errors.QueryCanceled as exc:
            raise ResyncRefused(f"the condition for {table} took longer than PostgreSQL's limit to check "
                                f"({exc.diag.message_primary})", f"where.{table}") from None
        except (psycopg.ProgrammingError, psycopg.DataError, psycopg.errors.ReadOnlySqlTransaction) as exc:
            if condition is None:
                raise
            raise ResyncRefused(f"PostgreSQL refused the condition for {table}: {exc.diag.message_primary}",
                                f"where.{table}") from None
    return counts


def conditions_for_debezium(conditions: Mapping[str, str]) -> dict[str, str]:
    return {table: resync_filter(condition) for table, condition in conditions.items()}
