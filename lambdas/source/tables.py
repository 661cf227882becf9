"""Catalog lookups about the captured tables, shared by the source steps.

Tables are named `schema.table`, as the spec writes them (the schema allows
lower-case identifiers only, so the text and the catalog spelling agree).
Nothing here changes the database except `lock_resource`, which only takes
a lock for the current transaction.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg import sql

from lambdas.errors import StepError
from lambdas.source.connection import server_address

# Plain and partitioned tables: the relation kinds a publication accepts.
_PUBLISHABLE_KINDS = ["r", "p"]


class TablesNotFound(StepError):
    """Tables the spec names do not exist (or are not tables) in the source database."""


class TablesWithoutReplicaIdentity(StepError):
    """Captured tables have no primary key and no replica identity: once published, UPDATE and DELETE on them fail."""


def split_table(qualified: str) -> tuple[str, str]:
    """`("schema", "table")` of `"schema.table"`."""
    schema, table = qualified.split(".", 1)
    return schema, table


def table_identifier(qualified: str) -> sql.Identifier:
    """`"schema"."table"` for SQL composition."""
    return sql.Identifier(*split_table(qualified))


def table_list(tables: Iterable[str]) -> sql.Composed:
    """`"s"."a", "s"."b"` for a `FOR TABLE` or `GRANT ... ON TABLE` clause."""
    return sql.SQL(", ").join(table_identifier(table) for table in tables)


def schemas_of(tables: Iterable[str]) -> list[str]:
    """The distinct schemas of `tables`, sorted."""
    return sorted({split_table(table)[0] for table in tables})


def missing_tables(conn: psycopg.Connection, tables: Iterable[str]) -> list[str]:
    """Those of `tables` that are not plain or partitioned tables in the current database, sorted. Read-only."""
    wanted = sorted(set(tables))
    rows = conn.execute(
        """
        SELECT n.nspname || '.' || c.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname || '.' || c.relname = ANY(%s) AND c.relkind = ANY(%s)
        """,
        [wanted, _PUBLISHABLE_KINDS],
    ).fetchall()
    found = {row[0] for row in rows}
    return [table for table in wanted if table not in found]


def require_tables(conn: psycopg.Connection, tables: Iterable[str]) -> None:
    """Raise `TablesNotFound` listing every one of `tables` missing from the current database. Read-only."""
    missing = missing_tables(conn, tables)
    if missing:
        raise TablesNotFound(
            f"tables not found in database {conn.info.dbname!r} on {server_address(conn)}: {', '.join(missing)}"
        )


def tables_without_replica_identity(conn: psycopg.Connection, tables: Iterable[str]) -> list[str]:
    """Those of `tables` whose UPDATEs and DELETEs a publication could not identify, sorted. Read-only.

    That is replica identity NOTHING, or DEFAULT without a primary key.
    Identity FULL or USING INDEX is fine. Missing tables are not reported.
    """
    rows = conn.execute(
        """
        SELECT n.nspname || '.' || c.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname || '.' || c.relname = ANY(%s)
          AND c.relkind = 'r'
          AND (c.relreplident = 'n'
               OR (c.relreplident = 'd'
                   AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))
        ORDER BY 1
        """,
        [sorted(set(tables))],
    ).fetchall()
    return [row[0] for row in rows]


# Granting or revoking on a shared object (the database, a schema, a table two
# pipelines capture) rewrites one catalog row; two sessions doing so at once
# fail with "tuple concurrently updated". Every step that changes privileges
# takes this one lock, so concurrent pipelines queue for a few milliseconds.
PRIVILEGES_LOCK = "privileges"


def lock_resource(conn: psycopg.Connection, resource: str) -> None:
    """Wait for, then hold until the current transaction ends, cdcflow's advisory lock on `resource`.

    Concurrent runs of one step (a retry while a timed-out attempt still
    runs) queue here instead of racing on catalog rows. May block for as long
    as the other holder's transaction lasts. Call inside `conn.transaction()`.
    """
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"cdcflow:{resource}"])
