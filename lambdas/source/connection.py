"""Connections to the source and sink PostgreSQL databases, with failures turned into named errors.

Every connection is autocommit, gives up connecting after
`CONNECT_TIMEOUT_SECONDS`, and shows up in `pg_stat_activity` as
`application_name = 'cdcflow'`.

libpq reports a failed connection as text only (psycopg leaves `sqlstate`
empty), so the failure is classified from the server's FATAL message. The
driver's exception is never chained: its `pgconn` attribute holds the whole
conninfo, password included, in clear text. Messages built here name the
server, database, user and secret, and pass the server's reason through with
the password masked.

Every connection uses the TLS settings of `lambdas.source.tls` (`verify-full`
by default); a failed handshake (a certificate from another CA, one that names
another host, a server without TLS) is `SourceTlsRejected` or
`SinkTlsRejected`, permanent, naming the host and libpq's reason.
"""

from __future__ import annotations

import psycopg

from lambdas.common.redaction import MASK, redact
from lambdas.errors import AuthenticationFailed, DatabaseUnavailable, SinkTlsRejected, SourceTlsRejected, StepError
from lambdas.secrets import Credentials, read_credentials
from lambdas.source.tls import database_tls
from lambdas.spec import SinkSpec, SourceSpec

CONNECT_TIMEOUT_SECONDS = 5
APPLICATION_NAME = "cdcflow"

# Fragments of the server's FATAL messages (and libpq's own) for a login it refused for good.
_LOGIN_REJECTED = (
    "password authentication failed",
    "no pg_hba.conf entry",
    "pg_hba.conf rejects connection",
    "is not permitted to log in",
    "permission denied for database",
    "no password supplied",
    # With the database ruled out, this is `role "x" does not exist` (trust and peer methods say so openly).
    "does not exist",
)
# Fragments of libpq's messages for a TLS handshake it refused (or could not start) under the sslmode.
_TLS_REJECTED = (
    "certificate verify failed",
    "does not match host name",
    "server certificate for",
    "server does not support ssl",
    "root certificate file",
    "could not read root certificate",
    "tlsv1 alert",
    "sslv3 alert",
    "certificate is not yet valid",
    "certificate has expired",
)


class DatabaseNotFound(StepError):
    """The database named by the spec does not exist on the server."""


class SinkNotDatabase(StepError):
    """The pipeline's sink is not a PostgreSQL database, so there is nothing to connect to."""


def server_address(conn: psycopg.Connection) -> str:
    """`host:port` of the server `conn` is connected to, for messages."""
    return f"{conn.info.host}:{conn.info.port}"


def connect_as(source: SourceSpec, credentials: Credentials, secret_id: str | None = None) -> psycopg.Connection:
    """An autocommit connection to the source database as `credentials.username`.

    Blocks for at most `CONNECT_TIMEOUT_SECONDS` per address the host name
    resolves to. Raises `DatabaseUnavailable` (transient: unreachable,
    refused, timed out, starting up, out of connection slots),
    `AuthenticationFailed` (the login was refused; names the user and
    `secret_id`, never the password) or `DatabaseNotFound`.
    """
    return _connect(source.host, source.port, source.database, credentials, secret_id, source, SourceTlsRejected)


def connect_admin(source: SourceSpec) -> psycopg.Connection:
    """An autocommit connection to the source database with the admin login of `source.admin_secret`.

    Reads the secret (raises `SecretNotFound`, `SecretAccessDenied` or
    `SecretMalformed` from `lambdas.secrets`), then connects as `connect_as`
    does, with the same errors.
    """
    return connect_as(source, read_credentials(source.admin_secret), secret_id=source.admin_secret)


def connect_sink(sink: SinkSpec) -> psycopg.Connection:
    """An autocommit connection to a JDBC sink's database with the login of `sink.secret`.

    Raises `SinkNotDatabase` for a sink that is not a PostgreSQL database
    (OpenSearch), before anything is read; otherwise as `connect_admin`.
    """
    if sink.type != "jdbc" or not (sink.host and sink.port and sink.database and sink.secret):
        raise SinkNotDatabase(f"the sink is of type {sink.type!r}, not a PostgreSQL database reached over JDBC")
    return _connect(
        sink.host, sink.port, sink.database, read_credentials(sink.secret), sink.secret, sink, SinkTlsRejected
    )


def _connect(
    host: str,
    port: int,
    database: str,
    credentials: Credentials,
    secret_id: str | None,
    endpoint: object,
    tls_rejected: type[StepError],
) -> psycopg.Connection:
    tls = database_tls(endpoint)
    try:
        return psycopg.connect(
            host=host,
            port=port,
            dbname=database,
            user=credentials.username,
            password=credentials.password,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name=APPLICATION_NAME,
            autocommit=True,
            **tls.libpq_parameters(),
        )
    except psycopg.OperationalError as exc:
        if _is_tls_failure(str(exc)):
            # Before the login fragments: `root certificate file "..." does not exist` is no refused login.
            ca = f"CA {tls.ca_file}" if tls.ca_file else "the system's CAs"
            failure: StepError = tls_rejected(
                f"TLS to PostgreSQL at {host}:{port} was rejected (sslmode={tls.sslmode}, {ca}): "
                f"{_masked_reason(str(exc), credentials.password)}"
            )
        else:
            failure = _connect_failure(exc, host, port, database, credentials, secret_id)
    # Raised outside the `except` block so the driver's exception (and the
    # conninfo with the password it carries) is not even kept as `__context__`.
    raise failure


def _connect_failure(
    error: psycopg.OperationalError,
    host: str,
    port: int,
    database: str,
    credentials: Credentials,
    secret_id: str | None,
) -> StepError:
    reason = _masked_reason(str(error), credentials.password)
    lowered = reason.lower()
    where = f"PostgreSQL at {host}:{port}"
    if f'database "{database.lower()}" does not exist' in lowered:
        return DatabaseNotFound(f"database {database!r} does not exist on {where}")
    if any(fragment in lowered for fragment in _LOGIN_REJECTED):
        from_secret = f" from secret {secret_id!r}" if secret_id else ""
        return AuthenticationFailed(
            f"{where} rejected the login of user {credentials.username!r}{from_secret} "
            f"to database {database!r}: {reason}"
        )
    return DatabaseUnavailable(f"cannot reach {where}: {reason}")


def _is_tls_failure(message: str) -> bool:
    lowered = " ".join(message.split()).lower()
    return any(fragment in lowered for fragment in _TLS_REJECTED)


def _masked_reason(message: str, password: str) -> str:
    """The driver's message on one line, without its boilerplate prefix, the password masked."""
    reason = " ".join(message.split())
    reason = reason.removeprefix("connection failed: ")
    if password:
        reason = reason.replace(password, MASK)
    return redact(reason)
