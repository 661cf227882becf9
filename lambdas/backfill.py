"""The backfill: a new pipeline's copy of the rows its tables held before it streamed, as a phase with progress.

A pipeline whose spec asks for `debezium.snapshot_mode: "backfill"` (the
default) starts its source connector without a snapshot, so it streams as
soon as it runs and becomes ACTIVE once the canary crossed. The provisioning
then asks Debezium for an incremental snapshot of every table (through the
signal table) and follows it until each table was read and the sink holds
as many rows as the source, recording progress in the registry as it goes.
Debezium interleaves the snapshot's chunks with the changes it streams,
keeping the newer of the two for a row, so nothing written meanwhile is lost
or doubled.

Rows copied are the sink's row (document) counts until a table's scan ends,
then Debezium's own count of rows it read; rows estimated are PostgreSQL's
statistics of the source tables when the backfill began. The estimate of
time left is the remaining rows at the rate so far.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from lambdas.errors import StepError
from lambdas.source.signals import SnapshotProgress
from lambdas.source.tables import table_identifier

BACKFILL_MODE = "backfill"
# What the source connector runs with when the workflow does the copy: stream at once, snapshot nothing.
CONNECTOR_SNAPSHOT_MODE = "no_data"


class BackfillStalled(StepError):
    """The backfill made no progress (no row more at the sink, no table more read) for the loop's rounds."""


class BackfillUnfollowed(StepError):
    """The backfill still copies after the most checks one execution makes; Debezium goes on without it."""


def connector_snapshot_mode(snapshot_mode: str) -> str:
    """Debezium's `snapshot.mode` for a spec's `debezium.snapshot_mode`."""
    return CONNECTOR_SNAPSHOT_MODE if snapshot_mode == BACKFILL_MODE else snapshot_mode


def estimated_rows(conn: psycopg.Connection, tables: list[str]) -> dict[str, int]:
    """PostgreSQL's estimate of each table's rows: its live-row statistic, else the planner's, else 0. Read-only."""
    estimates = {}
    for table in tables:
        row = conn.execute(
            "SELECT greatest(coalesce(s.n_live_tup, 0), c.reltuples::bigint, 0) FROM pg_class c "
            "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = %s::regclass",
            [table_identifier(table).as_string(conn)],
        ).fetchone()
        estimates[table] = int(row[0]) if row else 0
    return estimates


@dataclass(frozen=True)
class BackfillProgress:
    """How far the backfill of `tables` got, `elapsed_seconds` after it began."""

    tables: list[str]
    tables_done: list[str]
    rows_copied: int
    rows_estimated: int
    elapsed_seconds: float

    @property
    def rows_per_second(self) -> float | None:
        return self.rows_copied / self.elapsed_seconds if self.elapsed_seconds > 0 and self.rows_copied else None

    @property
    def eta_seconds(self) -> int | None:
        """Seconds left at the rate so far; None before a row was copied."""
        rate = self.rows_per_second
        if rate is None:
            return None
        return max(0, round((self.rows_estimated - self.rows_copied) / rate))

    def to_dict(self) -> dict[str, Any]:
        rate = self.rows_per_second
        return {"tables": self.tables, "tables_done": self.tables_done, "rows_copied": self.rows_copied,
                "rows_estimated": self.rows_estimated, "elapsed_seconds": round(self.elapsed_seconds, 1),
                "rows_per_second": None if rate is None else round(rate), "eta_seconds": self.eta_seconds}


def progress_of(snapshot: SnapshotProgress, estimates: Mapping[str, int], at_sink: Mapping[str, int],
                started_at: str, now: datetime) -> BackfillProgress:
    """Fold what Debezium's notifications and the sink say into the backfill's progress.

    A table whose scan ended counts the rows Debezium read (or the sink's, if
    more arrived by streaming); one still being read counts the sink's rows,
    never more than its estimate (changes streamed meanwhile land there too).
    The estimate grows to what was copied, so the time left never goes below 0.
    """
    tables = list(snapshot.tables)
    done = [table for table in tables if table in snapshot.scanned]
    copied = 0
    estimated = 0
    for table in tables:
        estimate = int(estimates.get(table, 0))
        sink = int(at_sink.get(table, 0))
        if table in snapshot.scanned:
            rows = max(int(snapshot.scanned[table].get("rows") or 0), min(sink, estimate))
        else:
            rows = min(sink, estimate) if estimate else sink
        copied += rows
        estimated += max(estimate, rows)
    elapsed = max(0.0, (now - datetime.fromisoformat(started_at)).total_seconds())
    return BackfillProgress(tables=tables, tables_done=done, rows_copied=copied, rows_estimated=estimated,
                            elapsed_seconds=elapsed)
