"""The pipeline's publication `cdcflow_<id>`: which tables' changes the slot's pgoutput stream carries.

It lists exactly the captured tables and the heartbeat table, and publishes
inserts, updates, deletes and truncates. Debezium is configured not to
create or alter publications (`publication.autocreate.mode=disabled`), so
this module is the only writer. The workflow creates the publication before
the slot.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from lambdas.errors import StepError
from lambdas.source.connection import server_address
from lambdas.source.tables import (
    TablesWithoutReplicaIdentity,
    lock_resource,
    require_tables,
    table_list,
    tables_without_replica_identity,
)
from lambdas.spec import PipelineSpec

PUBLISHED_ACTIONS = "insert, update, delete, truncate"
# Members of the publication that are whole schemas (`FOR TABLES IN SCHEMA`, PostgreSQL 15+) read `schema.*`.
SCHEMA_MEMBER_SUFFIX = ".*"


class PublicationConflict(StepError):
    """A publication with the pipeline's name exists in a shape that cannot be re-aligned (FOR ALL TABLES)."""


def expected_tables(spec: PipelineSpec) -> list[str]:
    """The publication's members for `spec`: the captured tables, the heartbeat table and the signal table, sorted.

    The signal table is published so Debezium reads the signals written to it (`lambdas.source.signals`).
    """
    return sorted({*spec.source.tables, spec.names.heartbeat_qualified, spec.names.signal_qualified})


def publication_tables(conn: psycopg.Connection, name: str) -> set[str]:
    """The members of publication `name` as `schema.table` (whole schemas as `schema.*`); empty if absent. Read-only.

    These are the tables as they were added, not the partitions that
    `pg_publication_tables` would list for a partitioned table.
    """
    rows = conn.execute(
        """
        SELECT n.nspname || '.' || c.relname
        FROM pg_publication p
        JOIN pg_publication_rel pr ON pr.prpubid = p.oid
        JOIN pg_class c ON c.oid = pr.prrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE p.pubname = %s
        """,
        [name],
    ).fetchall()
    members = {row[0] for row in rows}
    if conn.info.server_version >= 150000:
        rows = conn.execute(
            """
            SELECT n.nspname
            FROM pg_publication p
            JOIN pg_publication_namespace pn ON pn.pnpubid = p.oid
            JOIN pg_namespace n ON n.oid = pn.pnnspid
            WHERE p.pubname = %s
            """,
            [name],
        ).fetchall()
        members |= {row[0] + SCHEMA_MEMBER_SUFFIX for row in rows}
    return members


def ensure_publication(conn: psycopg.Connection, spec: PipelineSpec) -> dict[str, Any]:
    """Create publication `cdcflow_<id>` for exactly the captured tables plus the heartbeat table, or re-align it.

    An existing publication whose members differ (altered by hand, or a
    spec whose tables changed) gets `ALTER PUBLICATION ... SET TABLE`; one
    that stopped publishing some action gets its `publish` option back.
    Returns the publication, its tables, and what this call `added` and
    `removed` (both empty when nothing needed changing).

    Checks before touching anything: every table exists (`TablesNotFound`)
    and has a primary key or replica identity (`TablesWithoutReplicaIdentity`:
    once published, UPDATE and DELETE on such a table would fail for the
    application). Raises `PublicationConflict` for a FOR ALL TABLES
    publication of that name. Idempotent: a second call changes nothing and
    returns the same tables with nothing added or removed.
    """
    name = spec.names.publication
    publication = sql.Identifier(name)
    tables = expected_tables(spec)
    with conn.transaction():
        lock_resource(conn, f"publication:{name}")
        require_tables(conn, tables)
        unidentified = tables_without_replica_identity(conn, tables)
        if unidentified:
            raise TablesWithoutReplicaIdentity(
                f"tables without a primary key or replica identity in database {conn.info.dbname!r} on "
                f"{server_address(conn)}: {', '.join(unidentified)}; once published, UPDATE and DELETE on them "
                "would fail. Add a primary key, or set REPLICA IDENTITY FULL or USING INDEX"
            )
        row = conn.execute(
            """
            SELECT puballtables, pubinsert AND pubupdate AND pubdelete AND pubtruncate
            FROM pg_publication WHERE pubname = %s
            """,
            [name],
        ).fetchone()
        if row is None:
            conn.execute(
                sql.SQL("CREATE PUBLICATION {} FOR TABLE {} WITH (publish = {})").format(
                    publication, table_list(tables), sql.Literal(PUBLISHED_ACTIONS)
                )
            )
            current: set[str] = set()
        else:
            all_tables, publishes_everything = row
            if all_tables:
                raise PublicationConflict(
                    f"publication {name} in database {conn.info.dbname!r} on {server_address(conn)} is FOR ALL "
                    "TABLES and cannot be narrowed to the pipeline's tables; drop it and run again"
                )
            current = publication_tables(conn, name)
            if current != set(tables):
                conn.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(publication, table_list(tables)))
            if not publishes_everything:
                conn.execute(
                    sql.SQL("ALTER PUBLICATION {} SET (publish = {})").format(
                        publication, sql.Literal(PUBLISHED_ACTIONS)
                    )
                )
    return {
        "publication": name,
        "tables": tables,
        "added": sorted(set(tables) - current),
        "removed": sorted(current - set(tables)),
    }


def drop_publication(conn: psycopg.Connection, spec: PipelineSpec) -> bool:
    """Drop publication `cdcflow_<id>`. True if it existed.

    Idempotent: an absent publication is a no-op that returns False. The
    slot is unaffected; a walsender still decoding with it will fail, which
    is why the workflow drops the slot first.
    """
    name = spec.names.publication
    with conn.transaction():
        lock_resource(conn, f"publication:{name}")
        existed = conn.execute("SELECT EXISTS (SELECT FROM pg_publication WHERE pubname = %s)", [name]).fetchone()[0]
        if existed:
            conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(name)))
    return bool(existed)
