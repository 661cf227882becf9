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
reader thread with its own connection.
"""

from __future__ import annotations

import json
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
CREATE TABLE IF NOT EXISTS paths (
    execution_arn TEXT NOT NULL,
    path_id TEXT NOT NULL,
    record TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (execution_arn, path_id)
) WITHOUT ROWID;
"""


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

    def __bool__(self) -> bool:
        return bool(self.new_executions or self.events or self.executions or self.paths or self.removed_paths or self.removed_executions_paths)


class Journal:
    """The durable store behind an `Engine`. Thread-safe: writes are serialised, reads use per-thread connections."""

    def __init__(self, path: str | Path, synchronous: str = "NORMAL") -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        self.path = str(path)
        self._synchronous = synchronous
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._writer = self._connect()
        self._writer.executescript(_SCHEMA)

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
                        "INSERT INTO executions (arn, machine_arn, name, definition, role_arn, input, status, started)"
                        " VALUES (:arn, :machine_arn, :name, :definition, :role_arn, :input, 'RUNNING', :started)",
                        batch.new_executions,
                    )
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
                for arn, columns in batch.executions.items():
                    assignments = ", ".join(f"{column} = ?" for column in columns)
                    cursor.execute(f"UPDATE executions SET {assignments} WHERE arn = ?", [*columns.values(), arn])
                for arn in batch.removed_executions_paths:
                    cursor.execute("DELETE FROM paths WHERE execution_arn = ?", (arn,))
                if batch.removed_paths:
                    cursor.executemany("DELETE FROM paths WHERE execution_arn = ? AND path_id = ?", list(batch.removed_paths))
                if batch.paths:
                    cursor.executemany(
                        "INSERT OR REPLACE INTO paths VALUES (?, ?, ?, ?)",
                        [(arn, path_id, record, data) for (arn, path_id), (record, data) in batch.paths.items()],
                    )
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise

    def put_state_machine(self, arn: str, name: str, definition: str, role_arn: str, created: float) -> None:
        with self._write_lock:
            self._writer.execute(
                "INSERT INTO state_machines (arn, name, definition, role_arn, created) VALUES (?, ?, ?, ?, ?)",
                (arn, name, definition, role_arn, created),
            )

    def update_state_machine(self, arn: str, definition: str, role_arn: str, updated: float) -> None:
        with self._write_lock:
            self._writer.execute(
                "UPDATE state_machines SET definition = ?, role_arn = ?, updated = ? WHERE arn = ?",
                (definition, role_arn, updated, arn),
            )

    def delete_state_machine(self, arn: str) -> None:
        with self._write_lock:
            self._writer.execute("DELETE FROM state_machines WHERE arn = ?", (arn,))

    # ------------------------------------------------------------------- reads

    def state_machines(self) -> list[dict]:
        cursor = self._reader().execute("SELECT arn, name, definition, role_arn, created, updated FROM state_machines ORDER BY created, name")
        return [dict(zip(("arn", "name", "definition", "role_arn", "created", "updated"), row)) for row in cursor]

    def state_machine(self, arn: str) -> dict | None:
        row = self._reader().execute(
            "SELECT arn, name, definition, role_arn, created, updated FROM state_machines WHERE arn = ?", (arn,)
        ).fetchone()
        return dict(zip(("arn", "name", "definition", "role_arn", "created", "updated"), row)) if row else None

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
        cursor = self._reader().execute(f"SELECT {_EXECUTION_COLUMNS} FROM executions WHERE status = 'RUNNING'")
        return [dict(zip(_EXECUTION_FIELDS, row)) for row in cursor]

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
_EXECUTION_FIELDS = (
    "arn", "machine_arn", "name", "definition", "role_arn", "input", "status", "started", "stopped",
    "output", "error", "cause",
)
_EXECUTION_COLUMNS = ", ".join(_EXECUTION_FIELDS)
