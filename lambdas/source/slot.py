"""The pipeline's logical replication slot `cdcflow_<id>` (plugin pgoutput).

A slot pins WAL from its confirmed position on: one that nobody reads fills
the source's disk. Creating it waits until every transaction that was open
(and had written) when creation began has ended, so `ensure_slot` bounds
that wait and names the transactions in the way. Dropping it first ends the
walsender that holds it.

Slots belong to the server, with the database they decode; these functions
only ever act on the slot in the connection's current database.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from lambdas.errors import StepError
from lambdas.source.connection import server_address
from lambdas.source.logical_replication import LogicalReplicationDisabled
from lambdas.spec import PipelineSpec

PLUGIN = "pgoutput"
DEFAULT_DROP_WAIT_SECONDS = 10.0
# How long pg_terminate_backend waits for the walsender to exit before we look again.
_TERMINATE_WAIT_MS = 2000
_DROP_RETRY_PAUSE_SECONDS = 0.1


class SlotBlockedByLongTransaction(StepError):
    """The slot could not be created in time: transactions open when creation began have not ended."""


class SlotConflict(StepError):
    """A slot with the pipeline's name exists but is not a pgoutput logical slot of the source database."""


class ReplicationSlotsExhausted(StepError):
    """Every replication slot the server allows (`max_replication_slots`) is in use."""


class SlotStillActive(StepError):
    """The slot's reader kept re-attaching, so the slot could not be dropped in time."""


@dataclass(frozen=True)
class SlotInfo:
    """A logical replication slot and its positions (LSNs as PostgreSQL writes them, e.g. `0/1D5E498`)."""

    name: str
    plugin: str
    restart_lsn: str | None
    confirmed_flush_lsn: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _SlotRow:
    info: SlotInfo
    slot_type: str
    database: str | None


def _read_slot(conn: psycopg.Connection, name: str) -> _SlotRow | None:
    row = conn.execute(
        """
        SELECT slot_name, plugin, slot_type, database, restart_lsn::text, confirmed_flush_lsn::text
        FROM pg_replication_slots WHERE slot_name = %s
        """,
        [name],
    ).fetchone()
    if row is None:
        return None
    name, plugin, slot_type, database, restart_lsn, confirmed_flush_lsn = row
    return _SlotRow(SlotInfo(name, plugin or "", restart_lsn, confirmed_flush_lsn), slot_type, database)


def _checked(conn: psycopg.Connection, slot: _SlotRow) -> SlotInfo:
    """`slot`'s info if it is a pgoutput logical slot of the current database; else raise `SlotConflict`."""
    database = conn.info.dbname
    if slot.slot_type != "logical" or slot.info.plugin != PLUGIN or slot.database != database:
        found = f"a {slot.slot_type} slot" + (f" with plugin {slot.info.plugin!r}" if slot.info.plugin else "")
        where = f" of database {slot.database!r}" if slot.database else ""
        raise SlotConflict(
            f"replication slot {slot.info.name} on {server_address(conn)} is {found}{where}, not a {PLUGIN} slot "
            f"of database {database!r}; drop it (pg_drop_replication_slot) or choose another pipeline id"
        )
    return slot.info


def ensure_slot(conn: psycopg.Connection, spec: PipelineSpec, wait_seconds: float) -> SlotInfo:
    """Create logical slot `cdcflow_<id>` with plugin pgoutput, or return the existing one.

    May block up to `wait_seconds`: creation waits for the transactions that
    were open when it began. If they outlast the wait, nothing is created and
    `SlotBlockedByLongTransaction` names each one by pid, age, state,
    database and user (never its query text, which may hold data).

    Idempotent: an existing pgoutput slot of this database is returned as it
    is (its LSNs move on only as a reader confirms). Raises `SlotConflict`
    for a same-named slot of another kind, plugin or database,
    `ReplicationSlotsExhausted` when the server has no free slot, and
    `LogicalReplicationDisabled` when wal_level is not logical.
    """
    name = spec.names.replication_slot
    existing = _read_slot(conn, name)
    if existing is not None:
        return _checked(conn, existing)
    began_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    timeout_ms = max(1, round(wait_seconds * 1000))
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('statement_timeout', %s, true)", [f"{timeout_ms}ms"])
            conn.execute("SELECT pg_create_logical_replication_slot(%s, %s)", [name, PLUGIN])
    except psycopg.errors.QueryCanceled:
        raise _blocked(conn, name, wait_seconds, began_at) from None
    except psycopg.errors.DuplicateObject:
        pass  # a concurrent run created it first: check it below like any existing slot
    except psycopg.errors.ConfigurationLimitExceeded:
        limit = conn.execute("SHOW max_replication_slots").fetchone()[0]
        raise ReplicationSlotsExhausted(
            f"cannot create replication slot {name} on {server_address(conn)}: all {limit} slots "
            "(max_replication_slots) are in use; drop unused slots or raise the limit"
        ) from None
    except psycopg.errors.ObjectNotInPrerequisiteState as exc:
        if "wal_level" not in (exc.diag.message_primary or ""):
            raise
        raise LogicalReplicationDisabled(
            f"cannot create replication slot {name} on {server_address(conn)}: {exc.diag.message_primary}; "
            "set wal_level=logical and restart PostgreSQL"
        ) from None
    created = _read_slot(conn, name)
    if created is None:
        raise SlotConflict(f"replication slot {name} on {server_address(conn)} was dropped while it was being created")
    return _checked(conn, created)


def _blocked(conn: psycopg.Connection, name: str, wait_seconds: float, began_at: Any) -> SlotBlockedByLongTransaction:
    """The error for a timed-out creation, naming the transactions older than the attempt that still run."""
    rows = conn.execute(
        """
        SELECT 'pid ' || pid, state, datname, usename,
               extract(epoch FROM clock_timestamp() - xact_start)::bigint
        FROM pg_stat_activity
        WHERE backend_xid IS NOT NULL AND xact_start < %(began_at)s AND pid <> pg_backend_pid()
        UNION ALL
        SELECT 'prepared transaction ' || quote_literal(gid), 'prepared', database, owner,
               extract(epoch FROM clock_timestamp() - prepared)::bigint
        FROM pg_prepared_xacts
        WHERE prepared < %(began_at)s
        ORDER BY 5 DESC
        """,
        {"began_at": began_at},
    ).fetchall()
    prefix = f"replication slot {name} on {server_address(conn)} was not created within {wait_seconds:g}s"
    if not rows:
        return SlotBlockedByLongTransaction(
            f"{prefix}: it waited for transactions open when it began, which have ended since; run it again"
        )
    blockers = "; ".join(
        f"{who} ({state or 'unknown state'} for {age}s, database {database!r}, user {user!r})"
        for who, state, database, user, age in rows
    )
    return SlotBlockedByLongTransaction(
        f"{prefix}: it waits for these transactions to end: {blockers}. End them (or let them finish) and run it again"
    )


def drop_slot(conn: psycopg.Connection, spec: PipelineSpec, wait_seconds: float = DEFAULT_DROP_WAIT_SECONDS) -> bool:
    """Drop slot `cdcflow_<id>` of the current database, ending the walsender attached to it first.

    True if this call dropped it. Idempotent: an absent slot is a no-op that
    returns False. May block up to about `wait_seconds` while a reader that
    reconnects at once (a connector still running) keeps taking the slot
    back; then raises `SlotStillActive`. A same-named slot of another
    database is left alone.
    """
    name = spec.names.replication_slot
    deadline = time.monotonic() + wait_seconds
    while True:
        row = conn.execute(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s AND database = current_database()",
            [name],
        ).fetchone()
        if row is None:
            return False
        if row[0] is not None:
            conn.execute("SELECT pg_terminate_backend(%s, %s)", [row[0], _TERMINATE_WAIT_MS])
        try:
            dropped = conn.execute(
                """
                SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                WHERE slot_name = %s AND database = current_database()
                """,
                [name],
            ).fetchall()
        except psycopg.errors.ObjectInUse:
            if time.monotonic() >= deadline:
                raise SlotStillActive(
                    f"replication slot {name} on {server_address(conn)} was taken again each time its reader "
                    f"was ended, for {wait_seconds:g}s; stop the connector reading it and run this again"
                ) from None
            time.sleep(_DROP_RETRY_PAUSE_SECONDS)
            continue
        return bool(dropped)


def slot_lag_bytes(conn: psycopg.Connection, name: str) -> int | None:
    """Bytes of WAL written since slot `name` last confirmed a position; None for an absent slot. Read-only.

    A slot no reader ever confirmed (no confirmed position yet) counts from its restart position.
    """
    row = conn.execute(
        """
        SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(confirmed_flush_lsn, restart_lsn))::bigint
        FROM pg_replication_slots WHERE slot_name = %s
        """,
        [name],
    ).fetchone()
    return None if row is None else row[0]

