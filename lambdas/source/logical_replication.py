"""Whether a self-managed PostgreSQL server can serve logical replication.

On RDS the setting is changed through a parameter group (`lambdas.rds`);
a self-managed server needs an operator to edit its configuration and
restart it, so this step can only check and explain.
"""

from __future__ import annotations

import psycopg

from lambdas.errors import StepError
from lambdas.source.connection import server_address


class LogicalReplicationDisabled(StepError):
    """The server's `wal_level` is below `logical`: no logical slot can be created until it is raised and restarted."""


def check_wal_level(conn: psycopg.Connection) -> str:
    """The server's `wal_level`, which is `logical`; otherwise raise `LogicalReplicationDisabled`. Read-only."""
    wal_level = conn.execute("SHOW wal_level").fetchone()[0]
    if wal_level != "logical":
        raise LogicalReplicationDisabled(
            f"wal_level is {wal_level!r} on {server_address(conn)}; set wal_level=logical and restart PostgreSQL"
        )
    return wal_level
