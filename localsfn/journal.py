"""The SQLite journal: state machines, executions, history events and resume points.

Everything the engine does is first written here, in one transaction per
step of the interpreter: the history events of the step, the executions
whose status it changed and the *paths* (threads of control: an
execution, a Parallel branch, a Map iteration) it moved, with the state
each is at and its data. After a crash, the paths of every RUNNING
execution say exactly where to go on; nothing is inferred.

The database runs in WAL mode with `synchronous=NORMAL`: a committed
transaction survives the engine process being killed at any instant
(SIGKILL included), and an fsync happens at each WAL checkpoint rather
than at each commit, so a power failure may lose the last transactions
but never corrupts the journal. Pass `synchronous="FULL"` to fsync every
commit.

One writer (the engine's loop thread) and any number of readers, each
reader thread with its own connection. One engine per journal: a Journal
holds an exclusive lock on `<journal>.lock` (with its pid inside) while
open, and the kernel drops it when the process dies, SIGKILL included.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state_machines (
    arn TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    definition TEXT NOT NULL,
    role_arn TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL
);
CREATE TABLE IF NOT EXISTS executions (
    arn TEXT PRIMARY KEY,
    machine_arn TEXT NOT NULL,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    role_arn TEXT NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    stopped REAL,
    output TEXT,
    error TEXT,
    cause TEXT
);
CREATE INDEX IF NOT EXISTS executions_by_machine ON executions (machine_arn, started);
CREATE INDEX IF NOT EXISTS executions_running ON executions (status) WHERE status = 'RUNNING';
CREATE TABLE IF NOT EXISTS events (
    execution_arn TEXT NOT NULL,
    id INTEGER NOT NULL,
    previous_id INTEGER NOT NULL,
    type TEXT NOT NULL,
    timestamp REAL NOT NULL,
    details TEXT,
    PRIMARY KEY (execution_arn, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS versions (
    machine_arn TEXT NOT NULL,
    version INTEGER NOT NULL,
    definition TEXT NOT NULL,
    role_arn TEXT NOT NULL,
    revision TEXT NOT NULL,
    description TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (machine_arn, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aliases (
    arn TEXT PRIMARY KEY,
    machine_arn TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    routing TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (
    resource_arn TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (resource_arn, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS redrive_points (
    execution_arn TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    data TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS map_runs (
    arn TEXT PRIMARY KEY,
    execution_arn TEXT NOT NULL,
    machine_arn TEXT NOT NULL,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    stopped REAL,
    max_concurrency INTEGER NOT NULL,
    tolerated_count INTEGER NOT NULL,
    tolerated_percentage REAL NOT NULL,
    item_total INTEGER NOT NULL,
    execution_total INTEGER NOT NULL,
    results_written INTEGER NOT NULL DEFAULT 0,
    items_written INTEGER NOT NULL DEFAULT 0,
    redrive_count INTEGER NOT NULL DEFAULT 0,
    redrive_date REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS map_runs_by_execution ON map_runs (execution_arn, started);
CREATE TABLE IF NOT EXISTS paths (
    execution_arn TEXT NOT NULL,
    path_id TEXT NOT NULL,
    record TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (execution_arn, path_id)
) WITHOUT ROWID;
"""
# Columns added after the first journals were written: (table, column, declaration).
_ADDED_COLUMNS = (
    ("state_machines", "type", "TEXT NOT NULL DEFAULT 'STANDARD'"),
    ("state_machines", "revision", "TEXT"),
    ("state_machines", "last_version", "INTEGER NOT NULL DEFAULT 0"),
    ("executions", "version_arn", "TEXT"),
    ("executions", "alias_arn", "TEXT"),
    ("executions", "express", "INTEGER NOT NULL DEFAULT 0"),
    ("executions", "redrive_count", "INTEGER NOT NULL DEFAULT 0"),
    ("executions", "redrive_date", "REAL"),
    # A child workflow execution of a Distributed Map: its Map Run, its index there and how many items it got.
    ("executions", "map_run_arn", "TEXT"),
    ("executions", "map_index", "INTEGER"),
    ("executions", "item_count", "INTEGER"),
)
_ADDED_INDEXES = (
    "CREATE INDEX IF NOT EXISTS executions_by_map_run ON executions (map_run_arn, map_index) WHERE map_run_arn IS NOT NULL",
)


class JournalInUse(RuntimeError):
    """Another engine has the journal open; two engines on one journal would both run its executions."""

    def __init__(self, path: str, pid: int | None) -> None:
        self.path, self.pid = path, pid
        holder = f"the engine with pid {pid}" if pid else "another engine"
        super().__init__(f"the journal {path} is in use by {holder}; stop it, or give this engine another journal")


def _lock(journal_path: str) -> int:
    """Take the journal's lock file for this process; returns its descriptor. Raises JournalInUse."""
    descriptor = os.open(journal_path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
        os.close(descriptor)
        raise JournalInUse(journal_path, int(holder) if holder.isdigit() else None) from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    return descriptor


@dataclass
class Event:
    """One history event as journaled; `details` is the `...EventDetails` member, if any."""

    execution_arn: str
    id: int
    previous_id: int
    type: str
    timestamp: float
    details_key: str | None = None
    details: dict | None = None


@dataclass
class Batch:
    """What one interpreter step writes, committed atomically by `Journal.commit`."""

    new_executions: list[dict] = field(default_factory=list)  # rows of executions started in this step
    events: list[Event] = field(default_factory=list)
    executions: dict[str, dict] = field(default_factory=dict)  # arn -> columns to update
    paths: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # (arn, id) -> (record, data)
    removed_paths: set[tuple[str, str]] = field(default_factory=set)
    removed_executions_paths: set[str] = field(default_factory=set)
    redrive_points: dict[str, tuple[str, str] | None] = field(default_factory=dict)  # arn -> (record, data) of the root path; None drops it
    new_map_runs: list[dict] = field(default_factory=list)  # rows of Map Runs started in this step
    map_runs: dict[str, dict] = field(default_factory=dict)  # Map Run arn -> columns to update

    def __bool__(self) -> bool:
        return bool(
            self.new_executions or self.events or self.executions or self.paths or self.removed_paths
            or self.removed_executions_paths or self.redrive_points or self.new_map_runs or self.map_runs
        )


class Journal:
    """The durable store behind an `Engine`. Thread-safe: writes are serialised, reads use per-thread connections."""

    def __init__(self, path: str | Path, synchronous: str = "NORMAL") -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        self.path = str(path)
        self._synchronous = synchronous
        self._lock_descriptor: int | None = _lock(self.path)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        try:
            self._writer = self._connect()
            self._writer.executescript(_SCHEMA)
            for table, column, declaration in _ADDED_COLUMNS:
                present = {row[1] for row in self._writer.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    self._writer.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            for statement in _ADDED_INDEXES:
                self._writer.execute(statement)
        except BaseException:
            self.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={self._synchronous}")
        with self._connections_lock:
            self._connections.append(connection)
        return connection

    def _reader(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._connect()
        return connection

    def close(self) -> None:
        """Close every connection. Committed data stays; idempotent."""
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        if self._lock_descriptor is not None:
            os.close(self._lock_descriptor)  # releases the lock
            self._lock_descriptor = None

    # ------------------------------------------------------------------ writes

    def commit(self, batch: Batch) -> None:
        """Write `batch` in one transaction; when this returns, it is durable against a process crash."""
        if not batch:
            return
        with self._write_lock:
            cursor = self._writer.cursor()
            cursor.execute("BEGIN")
            try:
                if batch.new_executions:
                    cursor.executemany(
                        "INSERT INTO executions (arn, machine_arn, name, definition, role_arn, input, status, started, version_arn, alias_arn, express,"
                        " map_run_arn, map_index, item_count)"
                        " VALUES (:arn, :machine_arn, :name, :definition, :role_arn, :input, 'RUNNING', :started, :version_arn, :alias_arn, :express,"
                        " :map_run_arn, :map_index, :item_count)",
                        [{**_NEW_EXECUTION_DEFAULTS, **row} for row in batch.new_executions],
                    )
                if batch.new_map_runs:
                    cursor.executemany(
                        f"INSERT INTO map_runs ({', '.join(_MAP_RUN_INSERTED)}) VALUES ({', '.join(':' + name for name in _MAP_RUN_INSERTED)})",
                        batch.new_map_runs,
                    )
                for arn, columns in batch.map_runs.items():
                    assignments = ", ".join(f"{column} = ?" for column in columns)
                    cursor.execute(f"UPDATE map_runs SET {assignments} WHERE arn = ?", [*columns.values(), arn])
                if batch.events:
                    cursor.executemany(
                        "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
                        [
                            (
                                event.execution_arn, event.id, event.previous_id, event.type, event.timestamp,
                                _encode({event.details_key: event.details}) if event.details_key else None,
                            )
                            for event in batch.events
                        ],
                    )
                # One statement per set of columns: a Map Run's children end many at a time, alike.
                updates: dict[tuple[str, ...], list[list]] = {}
                for arn, columns in batch.executions.items():
                    updates.setdefault(tuple(columns), []).append([*columns.values(), arn])
                for names, rows in updates.items():
                    assignments = ", ".join(f"{column} = ?" for column in names)
                    cursor.executemany(f"UPDATE executions SET {assignments} WHERE arn = ?", rows)
                for arn in batch.removed_executions_paths:
                    cursor.execute("DELETE FROM paths WHERE execution_arn = ?", (arn,))
                if batch.removed_paths:
                    cursor.executemany("DELETE FROM paths WHERE execution_arn = ? AND path_id = ?", list(batch.removed_paths))
                for arn, point in batch.redrive_points.items():
                    if point is None:
                        cursor.execute("DELETE FROM redrive_points WHERE execution_arn = ?", (arn,))
                    else:
                        cursor.execute("INSERT OR REPLACE INTO redrive_points VALUES (?, ?, ?)", (arn, *point))
                if batch.paths:
                    cursor.executemany(
                        "INSERT OR REPLACE INTO paths VALUES (?, ?, ?, ?)",
                        [(arn, path_id, record, data) for (arn, path_id), (record, data) in batch.paths.items()],
                    )
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise

    def _transaction(self, statements: list[tuple[str, tuple]]) -> None:
        with self._write_lock:
            cursor = self._writer.cursor()
            cursor.execute("BEGIN")
            try:
                for statement, arguments in statements:
                    cursor.execute(statement, arguments)
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise

    def put_state_machine(
        self, arn: str, name: str, definition: str, role_arn: str, created: float,
        machine_type: str = "STANDARD", revision: str = "", tags: dict[str, str] | None = None,
    ) -> None:
        self._transaction([
            ("INSERT INTO state_machines (arn, name, definition, role_arn, created, type, revision) VALUES (?, ?, ?, ?, ?, ?, ?)",
             (arn, name, definition, role_arn, created, machine_type, revision)),
            *(("INSERT OR REPLACE INTO tags VALUES (?, ?, ?)", (arn, key, value)) for key, value in (tags or {}).items()),
        ])

    def update_state_machine(self, arn: str, definition: str, role_arn: str, updated: float, revision: str = "") -> None:
        with self._write_lock:
            self._writer.execute(
                "UPDATE state_machines SET definition = ?, role_arn = ?, updated = ?, revision = ? WHERE arn = ?",
                (definition, role_arn, updated, revision, arn),
            )

    def delete_state_machine(self, arn: str) -> None:
        """The machine, its versions, aliases and tags."""
        self._transaction([
            ("DELETE FROM state_machines WHERE arn = ?", (arn,)),
            ("DELETE FROM versions WHERE machine_arn = ?", (arn,)),
            ("DELETE FROM aliases WHERE machine_arn = ?", (arn,)),
            ("DELETE FROM tags WHERE resource_arn = ?", (arn,)),
        ])

    def publish_version(self, machine_arn: str, definition: str, role_arn: str, revision: str, description: str | None, created: float) -> int:
        """A new version numbered one past the highest ever published (numbers are never reused)."""
        with self._write_lock:
            cursor = self._writer.cursor()
            cursor.execute("BEGIN")
            try:
                (number,) = cursor.execute("SELECT last_version + 1 FROM state_machines WHERE arn = ?", (machine_arn,)).fetchone()
                cursor.execute("UPDATE state_machines SET last_version = ? WHERE arn = ?", (number, machine_arn))
                cursor.execute(
                    "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?)", (machine_arn, number, definition, role_arn, revision, description, created)
                )
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
        return number

    def delete_version(self, machine_arn: str, version: int) -> None:
        with self._write_lock:
            self._writer.execute("DELETE FROM versions WHERE machine_arn = ? AND version = ?", (machine_arn, version))

    def put_alias(self, arn: str, machine_arn: str, name: str, description: str | None, routing: list[dict], created: float) -> None:
        with self._write_lock:
            self._writer.execute("INSERT INTO aliases VALUES (?, ?, ?, ?, ?, ?, NULL)", (arn, machine_arn, name, description, _encode(routing), created))

    def update_alias(self, arn: str, description: str | None, routing: list[dict], updated: float) -> None:
        with self._write_lock:
            self._writer.execute("UPDATE aliases SET description = ?, routing = ?, updated = ? WHERE arn = ?", (description, _encode(routing), updated, arn))

    def delete_alias(self, arn: str) -> None:
        with self._write_lock:
            self._writer.execute("DELETE FROM aliases WHERE arn = ?", (arn,))

    def tag(self, resource_arn: str, tags: dict[str, str]) -> None:
        self._transaction([("INSERT OR REPLACE INTO tags VALUES (?, ?, ?)", (resource_arn, key, value)) for key, value in tags.items()])

    def untag(self, resource_arn: str, keys: list[str]) -> None:
        self._transaction([("DELETE FROM tags WHERE resource_arn = ? AND key = ?", (resource_arn, key)) for key in keys])

    # ------------------------------------------------------------------- reads

    def state_machines(self) -> list[dict]:
        cursor = self._reader().execute(f"SELECT {_MACHINE_COLUMNS} FROM state_machines ORDER BY created, name")
        return [dict(zip(_MACHINE_FIELDS, row)) for row in cursor]

    def state_machine(self, arn: str) -> dict | None:
        row = self._reader().execute(f"SELECT {_MACHINE_COLUMNS} FROM state_machines WHERE arn = ?", (arn,)).fetchone()
        return dict(zip(_MACHINE_FIELDS, row)) if row else None

    def versions(self, machine_arn: str) -> list[dict]:
        """Versions of a machine, newest first."""
        cursor = self._reader().execute(
            "SELECT version, definition, role_arn, revision, description, created FROM versions WHERE machine_arn = ? ORDER BY version DESC",
            (machine_arn,),
        )
        return [dict(zip(("version", "definition", "role_arn", "revision", "description", "created"), row)) for row in cursor]

    def version(self, machine_arn: str, version: int) -> dict | None:
        return next((row for row in self.versions(machine_arn) if row["version"] == version), None)

    def aliases(self, machine_arn: str) -> list[dict]:
        cursor = self._reader().execute(
            "SELECT arn, machine_arn, name, description, routing, created, updated FROM aliases WHERE machine_arn = ? ORDER BY created, name",
            (machine_arn,),
        )
        return [{**dict(zip(("arn", "machine_arn", "name", "description", "routing", "created", "updated"), row)), "routing": json.loads(row[4])} for row in cursor]

    def alias(self, arn: str) -> dict | None:
        row = self._reader().execute("SELECT machine_arn FROM aliases WHERE arn = ?", (arn,)).fetchone()
        return next((alias for alias in self.aliases(row[0]) if alias["arn"] == arn), None) if row else None

    def tags(self, resource_arn: str) -> dict[str, str]:
        return dict(self._reader().execute("SELECT key, value FROM tags WHERE resource_arn = ? ORDER BY key", (resource_arn,)).fetchall())

    def redrive_point(self, execution_arn: str) -> tuple[str, str] | None:
        row = self._reader().execute("SELECT record, data FROM redrive_points WHERE execution_arn = ?", (execution_arn,)).fetchone()
        return (row[0], row[1]) if row else None

    def execution(self, arn: str) -> dict | None:
        cursor = self._reader().execute(f"SELECT {_EXECUTION_COLUMNS} FROM executions WHERE arn = ?", (arn,))
        row = cursor.fetchone()
        return dict(zip(_EXECUTION_FIELDS, row)) if row else None

    def executions(self, machine_arn: str, status: str | None) -> list[dict]:
        """Executions of one machine, newest first."""
        query = f"SELECT {_EXECUTION_COLUMNS} FROM executions WHERE machine_arn = ?"
        arguments: list[Any] = [machine_arn]
        if status:
            query += " AND status = ?"
            arguments.append(status)
        cursor = self._reader().execute(query + " ORDER BY started DESC, arn", arguments)
        return [dict(zip(_EXECUTION_FIELDS, row)) for row in cursor]

    def running_executions(self) -> list[dict]:
        """RUNNING executions, without the child executions of Map Runs (their paths are their parents')."""
        cursor = self._reader().execute(f"SELECT {_EXECUTION_COLUMNS} FROM executions WHERE status = 'RUNNING' AND map_run_arn IS NULL")
        return [dict(zip(_EXECUTION_FIELDS, row)) for row in cursor]

    def map_run_executions(self, map_run_arn: str) -> list[dict]:
        """The child executions a Map Run started, in the order of their items."""
        cursor = self._reader().execute(f"SELECT {_EXECUTION_COLUMNS} FROM executions WHERE map_run_arn = ? ORDER BY map_index", (map_run_arn,))
        return [dict(zip(_EXECUTION_FIELDS, row)) for row in cursor]

    def map_run_counts(self, map_run_arn: str) -> dict[str, tuple[int, int]]:
        """Status -> (child executions, items) of a Map Run's started children."""
        cursor = self._reader().execute(
            "SELECT status, COUNT(*), SUM(item_count) FROM executions WHERE map_run_arn = ? GROUP BY status", (map_run_arn,),
        )
        return {status: (executions, items or 0) for status, executions, items in cursor}

    def map_run(self, arn: str) -> dict | None:
        row = self._reader().execute(f"SELECT {_MAP_RUN_COLUMNS} FROM map_runs WHERE arn = ?", (arn,)).fetchone()
        return dict(zip(_MAP_RUN_FIELDS, row)) if row else None

    def map_runs(self, execution_arn: str) -> list[dict]:
        """The Map Runs of one execution, newest first."""
        cursor = self._reader().execute(f"SELECT {_MAP_RUN_COLUMNS} FROM map_runs WHERE execution_arn = ? ORDER BY started DESC, arn", (execution_arn,))
        return [dict(zip(_MAP_RUN_FIELDS, row)) for row in cursor]

    def paths(self, execution_arn: str) -> Iterator[tuple[str, str, str]]:
        """(path id, record, data) of every path of a running execution."""
        yield from self._reader().execute("SELECT path_id, record, data FROM paths WHERE execution_arn = ?", (execution_arn,))

    def last_event_id(self, execution_arn: str) -> int:
        row = self._reader().execute("SELECT MAX(id) FROM events WHERE execution_arn = ?", (execution_arn,)).fetchone()
        return row[0] or 0

    def events(self, execution_arn: str, reverse: bool = False) -> Iterable[Event]:
        order = "DESC" if reverse else "ASC"
        cursor = self._reader().execute(
            f"SELECT id, previous_id, type, timestamp, details FROM events WHERE execution_arn = ? ORDER BY id {order}",
            (execution_arn,),
        )
        for event_id, previous_id, kind, timestamp, details in cursor:
            event = Event(execution_arn, event_id, previous_id, kind, timestamp)
            if details:
                ((event.details_key, event.details),) = json.loads(details).items()
            yield event


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_MACHINE_FIELDS = ("arn", "name", "definition", "role_arn", "created", "updated", "type", "revision")
_MACHINE_COLUMNS = ", ".join(_MACHINE_FIELDS)
_EXECUTION_FIELDS = (
    "arn", "machine_arn", "name", "definition", "role_arn", "input", "status", "started", "stopped",
    "output", "error", "cause", "version_arn", "alias_arn", "express", "redrive_count", "redrive_date",
    "map_run_arn", "map_index", "item_count",
)
_EXECUTION_COLUMNS = ", ".join(_EXECUTION_FIELDS)
_NEW_EXECUTION_DEFAULTS = {"version_arn": None, "alias_arn": None, "express": 0, "map_run_arn": None, "map_index": None, "item_count": None}
_MAP_RUN_INSERTED = (
    "arn", "execution_arn", "machine_arn", "status", "started", "max_concurrency", "tolerated_count", "tolerated_percentage",
    "item_total", "execution_total",
)
_MAP_RUN_FIELDS = (*_MAP_RUN_INSERTED, "stopped", "results_written", "items_written", "redrive_count", "redrive_date")
_MAP_RUN_COLUMNS = ", ".join(_MAP_RUN_FIELDS)
