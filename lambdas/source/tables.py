"""Catalog lookups about the captured tables, shared by the source steps.

Tables are named `schema.table`, as the spec writes them: each part spelled as
the catalog spells it (mixed case and spaces included), so the text and the
catalog agree and SQL quotes them with `psycopg.sql.Identifier`.
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


class TablesNotCapturable(StepError):
    """Captured tables whose values the sink cannot hold unchanged, or whose sink rows would have no key."""


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


# Column types whose values cannot arrive as they are: PostgreSQL's geometric types (the JDBC sink maps geometry
# to PostGIS only), text-search types that Debezium does not decode (it would drop the column), and money, which
# Debezium's string decimal mode (see lambdas.connect.source_config) carries as a double, and time with time zone,
# whose offset Debezium replaces with UTC's.
UNREPRESENTABLE_TYPES = {
    "point": "a geometric type the JDBC sink holds only as PostGIS geometry",
    "line": "a geometric type Debezium does not decode",
    "lseg": "a geometric type Debezium does not decode",
    "box": "a geometric type Debezium does not decode",
    "path": "a geometric type Debezium does not decode",
    "polygon": "a geometric type Debezium does not decode",
    "circle": "a geometric type Debezium does not decode",
    "tsvector": "a text-search type Debezium does not decode",
    "tsquery": "a text-search type Debezium does not decode",
    "money": "Debezium carries money as a double, which rounds values beyond 15 digits; use numeric(p, 2)",
    "timetz": "Debezium sends a time with time zone converted to UTC, its offset lost",
}


def capture_refusals(conn: psycopg.Connection, tables: Iterable[str],
                     key_columns: dict[str, list[str]] | None = None) -> list[str]:
    """Why each of `tables` cannot be captured without changing its values or losing its rows' identity. Read-only.

    Each problem names the table and, for a column, the column and its type:
    a column of a type in `UNREPRESENTABLE_TYPES` (also as an array or under
    a domain); a bytea column of a table whose replica identity is not FULL;
    an array column declared with more than one dimension
    (`int[][]`; PostgreSQL does not hold a one-dimension declaration to its
    values, so only the declaration can be checked); a table without a primary key whose sink key is not chosen in
    `key_columns` (`sink.key_columns`), or whose chosen columns do not exist,
    or whose replica identity is not FULL (deletes would carry no key).
    Missing tables are not reported (CreatePublication names them).
    """
    keyed = key_columns or {}
    rows = conn.execute(
        """
        SELECT n.nspname || '.' || c.relname, c.relreplident,
               EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
               a.attname, format_type(a.atttypid, a.atttypmod),
               coalesce(base_elem.typname, base.typname), a.attndims
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        LEFT JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_type base ON base.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
        LEFT JOIN pg_type base_elem ON base_elem.oid = base.typelem AND base.typcategory = 'A'
        WHERE n.nspname || '.' || c.relname = ANY(%s) AND c.relkind = ANY(%s)
        ORDER BY 1, a.attnum
        """,
        [sorted(set(tables)), _PUBLISHABLE_KINDS],
    ).fetchall()
    problems: list[str] = []
    columns: dict[str, set[str]] = {}
    identity: dict[str, tuple[str, bool]] = {}
    for table, replident, has_primary_key, column, type_name, base_type, dimensions in rows:
        identity[table] = (replident, has_primary_key)
        if column is None:
            continue
        columns.setdefault(table, set()).add(column)
        if base_type in UNREPRESENTABLE_TYPES:
            problems.append(f"{table}: column {column!r} of type {type_name} cannot be represented at the sink "
                            f"({UNREPRESENTABLE_TYPES[base_type]}); leave the table out, or change the column's type")
        elif base_type == "bytea" and replident != "f":
            problems.append(f"{table}: column {column!r} of type {type_name} cannot be represented at the sink "
                            "under the table's replica identity: an update that leaves a large (TOASTed) value of "
                            "it alone carries Debezium's placeholder instead, and Debezium re-reads such values for "
                            "text and json columns but not for bytea; set ALTER TABLE "
                            f"{table_identifier(table).as_string(conn)} REPLICA IDENTITY FULL")
        elif dimensions > 1:
            problems.append(f"{table}: column {column!r} of type {type_name} is declared with {dimensions} dimensions "
                            "and cannot be represented at the sink (Debezium sends the inner arrays of a "
                            "multi-dimensional array as Java object names); leave the table out, or store the "
                            "value as jsonb")
    for table, (replident, has_primary_key) in identity.items():
        if table in keyed:
            unknown = [column for column in keyed[table] if column not in columns.get(table, set())]
            if unknown:
                problems.append(f"{table}: sink.key_columns names columns the table does not have: "
                                f"{', '.join(unknown)}")
            if replident != "f":
                problems.append(f"{table}: keyed by sink.key_columns, it needs REPLICA IDENTITY FULL so that updates "
                                f"and deletes carry the key: ALTER TABLE {table_identifier(table).as_string(conn)} "
                                "REPLICA IDENTITY FULL")
        elif not has_primary_key:
            problems.append(f"{table}: no primary key, so its sink rows have no key: add a primary key, or name the "
                            f"columns that key them in sink.key_columns ({{\"{table}\": [\"<column>\", ...]}}) and "
                            f"set ALTER TABLE {table_identifier(table).as_string(conn)} REPLICA IDENTITY FULL")
    return problems
