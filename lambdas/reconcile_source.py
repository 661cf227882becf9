"""Reconciliation's view of a source database: one connection, a few catalogue queries, whatever the pipeline count.

`take_inventory` reads every cdcflow slot (with its lag), publication (with
its tables), heartbeat table and role in one pass; `realign_publication`
brings one publication back to its spec; `drop_orphans` removes orphans the
way the compensations do (a slot's walsender is terminated first).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

from lambdas.errors import StepError
from lambdas.naming import HEARTBEAT_SCHEMA, PLATFORM_PREFIX
from lambdas.reconcile_orphans import ResourceKind
from lambdas.reconcile_policy import SlotObservation, publication_drift
from lambdas.secrets import read_credentials
from lambdas.spec import PipelineSpec

CONNECT_TIMEOUT_SECONDS = 10
# Catalogue reads and DDL on a healthy server take milliseconds; a lock held by someone else must not stall the sweep.
STATEMENT_TIMEOUT_MS = 30_000
SLOT_RELEASE_TIMEOUT_SECONDS = 10.0
SLOT_RELEASE_POLL_SECONDS = 0.1
_PREFIX_PATTERN = PLATFORM_PREFIX + r"\_%"  # LIKE pattern: `_` escaped, so `cdcflowx` does not match


class SlotStillActive(StepError):
    """A replication slot stayed active after its walsender was terminated (it reconnected, or is slow to exit)."""


@dataclass(frozen=True)
class SourceInventory:
    """The cdcflow objects of one source database (roles: of its server)."""

    slots: dict[str, SlotObservation]
    publications: dict[str, tuple[str, ...]]  # publication -> its `schema.table`s
    heartbeat_tables: tuple[str, ...]  # `cdcflow.heartbeat_<id>`
    roles: tuple[str, ...]


@contextmanager
def open_source(spec: PipelineSpec) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the spec's source database as its admin user; closed on exit.

    May block for up to `CONNECT_TIMEOUT_SECONDS` while connecting. Raises
    `SecretNotFound`/`SecretMalformed` for the admin secret and psycopg's
    `OperationalError` for an unreachable server or a rejected login.
    """
    login = read_credentials(spec.source.admin_secret)
    with psycopg.connect(
        host=spec.source.host,
        port=spec.source.port,
        dbname=spec.source.database,
        user=login.username,
        password=login.password,
        autocommit=True,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        application_name="cdcflow-reconcile",
        options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
    ) as conn:
        yield conn


def take_inventory(conn: psycopg.Connection) -> SourceInventory:
    """Every cdcflow slot, publication, heartbeat table and role visible from `conn`. Read-only.

    Slots are those of the connected database (`pg_replication_slots` lists
    the whole server's); a slot's lag is `pg_current_wal_lsn() -
    confirmed_flush_lsn` in bytes, None when it has never confirmed a position.
    """
    slots = {
        name: SlotObservation(name, exists=True, active=active, lag_bytes=None if lag is None else int(lag))
        for name, active, lag in conn.execute(
            "SELECT slot_name, active, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)"
            " FROM pg_replication_slots WHERE database = current_database() AND slot_name LIKE %s",
            (_PREFIX_PATTERN,),
        )
    }
    publications = {
        name: tuple(tables)
        for name, tables in conn.execute(
            "SELECT p.pubname,"
            " coalesce(array_agg(t.schemaname || '.' || t.tablename ORDER BY t.schemaname, t.tablename)"
            "   FILTER (WHERE t.tablename IS NOT NULL), '{}')"
            " FROM pg_publication p LEFT JOIN pg_publication_tables t ON t.pubname = p.pubname"
            " WHERE p.pubname LIKE %s GROUP BY p.pubname",
            (_PREFIX_PATTERN,),
        )
    }
    heartbeat_tables = tuple(
        f"{schema}.{table}"
        for schema, table in conn.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE 'heartbeat\\_%%'"
            " ORDER BY tablename",
            (HEARTBEAT_SCHEMA,),
        )
    )
    roles = tuple(
        name for (name,) in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s ORDER BY 1", (_PREFIX_PATTERN,))
    )
    return SourceInventory(slots, publications, heartbeat_tables, roles)


def wanted_publication_tables(spec: PipelineSpec) -> list[str]:
    """The tables the pipeline's publication must hold: the captured ones and the heartbeat table."""
    return sorted({*spec.source.tables, spec.names.heartbeat_qualified})


def realign_publication(
    conn: psycopg.Connection, spec: PipelineSpec, actual: tuple[str, ...] | None
) -> tuple[list[str], list[str]]:
    """Bring the pipeline's publication to the spec's tables; returns (added, removed). Idempotent.

    `actual` is the publication's tables from the inventory, None when it is
    missing (it is then created). Nothing is sent when they already match.
    `ALTER PUBLICATION ... SET TABLE` replaces the list in one statement, so
    Debezium never sees a half-changed publication.
    """
    wanted = wanted_publication_tables(spec)
    added, removed = publication_drift(wanted, actual or ())
    if actual is not None and not added and not removed:
        return [], []
    tables = sql.SQL(", ").join(sql.Identifier(*table.split(".", 1)) for table in wanted)
    publication = sql.Identifier(spec.names.publication)
    if actual is None:
        conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(publication, tables))
    else:
        conn.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(publication, tables))
    return added, removed


def drop_orphans(conn: psycopg.Connection, kind: ResourceKind, names: list[str]) -> dict[str, str | None]:
    """Drop the orphaned objects `names` of `kind`; returns each name's error (None when dropped or absent).

    Idempotent: an object already gone counts as dropped. A slot's walsender
    is terminated first; a role's grants and objects in this database are
    dropped with it (`DROP OWNED BY`).
    """
    errors: dict[str, str | None] = {}
    for name in names:
        try:
            _drop(conn, kind, name)
            errors[name] = None
        except (psycopg.Error, StepError) as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
    return errors


def _drop(conn: psycopg.Connection, kind: ResourceKind, name: str) -> None:
    match kind:
        case "slot":
            _release_slot(conn, name)
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (name,))
        case "publication":
            conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))
        case "heartbeat_table":
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(*name.split(".", 1))))
        case "role":
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            if exists:
                with conn.transaction():
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
        case _:
            raise ValueError(f"{kind} is not a source database object")


def _release_slot(conn: psycopg.Connection, name: str) -> None:
    """Terminate the walsender holding slot `name` and wait until the slot is inactive.

    `pg_terminate_backend` only signals the process, so the slot stays active
    for a moment after it returns. Blocks for at most `SLOT_RELEASE_TIMEOUT_SECONDS`.
    """
    conn.execute(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = %s AND active", (name,)
    )
    deadline = time.monotonic() + SLOT_RELEASE_TIMEOUT_SECONDS
    while conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s AND active", (name,)).fetchone():
        if time.monotonic() >= deadline:
            raise SlotStillActive(f"replication slot {name} still active {SLOT_RELEASE_TIMEOUT_SECONDS:g} s after its walsender was terminated")
        time.sleep(SLOT_RELEASE_POLL_SECONDS)
