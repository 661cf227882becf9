"""Lambda handlers for the crash tests, loaded by `python -m localsfn --functions ledger_functions:FUNCTIONS`.

`Record` writes one row per call into the SQLite ledger named by the
CRASH_LEDGER environment variable before it returns, so the ledger shows
every side effect, including those of calls whose result the engine never
journaled because it was killed. On its first call for a step, it then
sleeps for the event's `first_call_seconds`, giving a test time to kill
the engine while that call is in flight.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

RECORD_ARN = "arn:aws:lambda:us-east-1:000000000000:function:Record"


def open_ledger(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    connection.execute("CREATE TABLE IF NOT EXISTS runs (step TEXT NOT NULL, pid INTEGER NOT NULL)")
    return connection


def record(event: dict, context: Any) -> dict:
    connection = open_ledger(os.environ["CRASH_LEDGER"])
    try:
        earlier = connection.execute("SELECT COUNT(*) FROM runs WHERE step = ?", (event["step"],)).fetchone()[0]
        connection.execute("INSERT INTO runs VALUES (?, ?)", (event["step"], os.getpid()))
    finally:
        connection.close()
    if earlier == 0:
        time.sleep(event.get("first_call_seconds", 0))
    return {"step": event["step"]}


FUNCTIONS = {RECORD_ARN: record}
