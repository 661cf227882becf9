"""The pipeline's replication role `cdcflow_<id>`: the login Debezium connects with.

The role may log in and replicate (the REPLICATION attribute, or on RDS
membership in `rds_replication`), connect to the source database, read the
captured tables and write the heartbeat table. Nothing more: it owns nothing.

The caller keeps the password in a secret. It reaches the server only as a
SCRAM verifier computed here (as psql's `\\password` does), so not even a
server that logs every statement records it.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from lambdas.common.redaction import MASK
from lambdas.errors import StepError
from lambdas.source.connection import server_address
from lambdas.source.heartbeat import grant_heartbeat_access
from lambdas.source.tables import PRIVILEGES_LOCK, lock_resource, require_tables, schemas_of, table_list
from lambdas.spec import PipelineSpec

RDS_REPLICATION_ROLE = "rds_replication"
# Marks the role as cdcflow's: other roles may share the prefix (the local stack's `cdcflow_admin`).
ROLE_COMMENT_PREFIX = "cdcflow replication role of pipeline "
# Terminated sessions disappear from pg_stat_activity within milliseconds; this bounds the wait for them.
_SESSION_EXIT_WAIT_SECONDS = 5


class ReplicationUserFailed(StepError):
    """The server refused to create, alter or drop the replication role; the message gives its reason."""


def role_comment(spec: PipelineSpec) -> str:
    """The comment that marks the role as the replication role of `spec`'s pipeline."""
    return f"{ROLE_COMMENT_PREFIX}{spec.pipeline_id}"


def ensure_replication_user(conn: psycopg.Connection, spec: PipelineSpec, password: str, rds: bool) -> dict[str, Any]:
    """Create role `cdcflow_<id>` with `password`, or set an existing one's password to it; grant what Debezium needs.

    Grants CONNECT on the source database, USAGE on each captured schema,
    SELECT on exactly the captured tables (revoking it on tables a former
    spec captured), and (when the heartbeat table exists) what the heartbeat
    action needs. With `rds`, the role gets membership in
    `rds_replication` instead of the REPLICATION attribute, which only a
    superuser may grant. Raises `TablesNotFound` listing every missing table
    before anything is created.

    Idempotent: a second call with the same password leaves the role as it
    was (only the verifier's salt is new) and returns the same result; with another password it re-keys the role, so
    the role always matches the secret the caller keeps. All changes happen
    in one transaction. Raises `ReplicationUserFailed` (never containing the
    password) if the server refuses.
    """
    names = spec.names
    role = sql.Identifier(names.replication_role)
    tables = list(spec.source.tables)
    # The verifier is computed before the transaction: libpq asks the server which algorithm to use.
    verifier = _password_verifier(conn, names.replication_role, password)
    try:
        with conn.transaction():
            lock_resource(conn, PRIVILEGES_LOCK)
            require_tables(conn, tables)
            exists = conn.execute("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)", [names.replication_role])
            verb = "ALTER" if exists.fetchone()[0] else "CREATE"
            # On RDS only a superuser may even name the REPLICATION attribute; rds_replication stands in for it.
            attributes = sql.SQL("LOGIN" if rds else "LOGIN REPLICATION")
            conn.execute(
                sql.SQL("{} ROLE {} WITH {} PASSWORD {}").format(sql.SQL(verb), role, attributes, sql.Literal(verifier))
            )
            conn.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(role, sql.Literal(role_comment(spec))))
            if rds:
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(RDS_REPLICATION_ROLE), role))
            conn.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(spec.source.database), role)
            )
            for schema in schemas_of(tables):
                conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), role))
            conn.execute(sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(table_list(tables), role))
            stale = _stale_selects(conn, names.replication_role, keep={*tables, names.heartbeat_qualified,
                                                                        names.signal_qualified})
            if stale:
                conn.execute(sql.SQL("REVOKE SELECT ON TABLE {} FROM {}").format(sql.SQL(", ").join(stale), role))
            heartbeat_granted = grant_heartbeat_access(conn, spec)
    except psycopg.OperationalError:
        raise  # a lost connection or a shutdown: transient, for the "database" Retry policy
    except psycopg.DatabaseError as exc:
        raise _refused("create or alter", names.replication_role, conn, exc, password, verifier) from None
    return {
        "role": names.replication_role,
        "replication": RDS_REPLICATION_ROLE if rds else "REPLICATION",
        "database": spec.source.database,
        "schemas": schemas_of(tables),
        "tables": sorted(tables),
        "heartbeat_table": names.heartbeat_qualified if heartbeat_granted else None,
    }


def drop_replication_user(conn: psycopg.Connection, spec: PipelineSpec) -> bool:
    """Drop role `cdcflow_<id>` with its privileges; end its sessions first. True if the role existed.

    Anything the role owns in the source database is handed to the admin
    login first (`REASSIGN OWNED`), so no data goes with it; then its
    privileges are revoked (`DROP OWNED`, which also covers CONNECT on the
    database) and the role is dropped. Its remaining sessions are terminated
    so a dropped login does not keep reading. Idempotent: an absent role is
    a no-op that returns False. Raises `ReplicationUserFailed` when the role
    still holds privileges in another database on the server.
    """
    role_name = spec.names.replication_role
    role = sql.Identifier(role_name)
    exists = conn.execute("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)", [role_name]).fetchone()[0]
    if not exists:
        return False
    _terminate_sessions(conn, role_name)
    try:
        with conn.transaction():
            lock_resource(conn, PRIVILEGES_LOCK)
            if not conn.execute("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)", [role_name]).fetchone()[0]:
                return False  # dropped meanwhile by a concurrent run
            conn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(role))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
            conn.execute(sql.SQL("DROP ROLE {}").format(role))
    except psycopg.OperationalError:
        raise
    except psycopg.DatabaseError as exc:
        raise _refused("drop", role_name, conn, exc) from None
    return True


def _password_verifier(conn: psycopg.Connection, role: str, password: str) -> str:
    """The password as the server stores it (SCRAM-SHA-256 unless the server is set to md5)."""
    if not password:
        raise ValueError(f"the password for role {role} must not be empty")
    return conn.pgconn.encrypt_password(password.encode(), role.encode()).decode()


def _stale_selects(conn: psycopg.Connection, role: str, keep: set[str]) -> list[sql.Identifier]:
    """Tables of the current database, other than `keep`, on which `role` holds SELECT."""
    rows = conn.execute(
        """
        SELECT n.nspname, c.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) AS acl
        WHERE acl.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s) AND acl.privilege_type = 'SELECT'
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
        ORDER BY 1, 2
        """,
        [role],
    ).fetchall()
    return [sql.Identifier(schema, table) for schema, table in rows if f"{schema}.{table}" not in keep]


def _terminate_sessions(conn: psycopg.Connection, role: str) -> None:
    """End every session logged in as `role` and wait (bounded) until they are gone."""
    conn.execute(
        "SELECT pg_terminate_backend(pid, %s) FROM pg_stat_activity WHERE usename = %s AND pid <> pg_backend_pid()",
        [_SESSION_EXIT_WAIT_SECONDS * 1000, role],
    )


def _refused(
    action: str, role: str, conn: psycopg.Connection, error: psycopg.DatabaseError, *secrets: str
) -> ReplicationUserFailed:
    """A `ReplicationUserFailed` from the server's reason, with the password and its verifier masked."""
    reason = error.diag.message_primary or type(error).__name__
    if error.diag.message_detail:
        reason = f"{reason} ({error.diag.message_detail})"
    for secret in secrets:
        reason = reason.replace(secret, MASK)
    return ReplicationUserFailed(f"could not {action} role {role} on {server_address(conn)}: {reason}")
