"""How connection failures are named, for failures the local server cannot be made to produce on demand."""

import psycopg
import pytest

from lambdas.common.redaction import forget_secrets, remember_secret
from lambdas.errors import AuthenticationFailed, DatabaseUnavailable, SinkTlsRejected, SourceTlsRejected
from lambdas.secrets import Credentials
from lambdas.source import connection
from lambdas.source.connection import DatabaseNotFound, connect_admin, connect_as, connect_sink
from lambdas.spec import SinkSpec, SourceSpec

PASSWORD = "Unit-Pa55word-never-shown"
SOURCE = SourceSpec(host="db.internal", port=5432, database="shop", admin_secret="shop/admin", tables=("public.a",))
PREFIX = 'connection failed: connection to server at "10.0.0.5", port 5432 failed: '


@pytest.fixture
def failing_connect(monkeypatch):
    """Make psycopg.connect fail with a given libpq message."""

    def fail_with(message):
        def connect(**kwargs):
            raise psycopg.OperationalError(message)

        monkeypatch.setattr(connection.psycopg, "connect", connect)

    return fail_with


@pytest.mark.parametrize(
    "message, error",
    [
        ("FATAL:  sorry, too many clients already", DatabaseUnavailable),
        ("FATAL:  the database system is starting up", DatabaseUnavailable),
        ("timeout expired", DatabaseUnavailable),
        ('FATAL:  password authentication failed for user "admin"', AuthenticationFailed),
        ('FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "admin", database "shop", no encryption',
         AuthenticationFailed),
        ('FATAL:  role "admin" is not permitted to log in', AuthenticationFailed),
        ('FATAL:  role "admin" does not exist', AuthenticationFailed),
        ('FATAL:  permission denied for database "shop"\nDETAIL:  User does not have CONNECT privilege.',
         AuthenticationFailed),
        ("fe_sendauth: no password supplied", AuthenticationFailed),
        ('FATAL:  database "shop" does not exist', DatabaseNotFound),
    ],
)
def test_each_failure_gets_its_named_error(failing_connect, message, error):
    failing_connect(PREFIX + message)

    with pytest.raises(error) as raised:
        connect_as(SOURCE, Credentials("admin", PASSWORD), secret_id="shop/admin")

    assert type(raised.value) is error
    assert "db.internal:5432" in str(raised.value)


def test_unavailable_names_the_address_and_the_reason_on_one_line(failing_connect):
    failing_connect(PREFIX + "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?")

    with pytest.raises(DatabaseUnavailable) as raised:
        connect_as(SOURCE, Credentials("admin", PASSWORD))

    assert str(raised.value) == (
        'cannot reach PostgreSQL at db.internal:5432: connection to server at "10.0.0.5", port 5432 failed: '
        "Connection refused Is the server running on that host and accepting TCP/IP connections?"
    )


def test_authentication_failed_names_user_secret_and_database(failing_connect):
    failing_connect(PREFIX + 'FATAL:  password authentication failed for user "admin"')

    with pytest.raises(AuthenticationFailed) as raised:
        connect_as(SOURCE, Credentials("admin", PASSWORD), secret_id="shop/admin")

    assert "user 'admin' from secret 'shop/admin' to database 'shop'" in str(raised.value)


def test_a_password_echoed_by_the_driver_is_masked(failing_connect):
    failing_connect(f'invalid connection option "pasword={PASSWORD}"')

    with pytest.raises(DatabaseUnavailable) as raised:
        connect_as(SOURCE, Credentials("admin", PASSWORD))

    assert PASSWORD not in str(raised.value)
    assert "****" in str(raised.value)


def test_other_remembered_secrets_are_masked_too(failing_connect):
    other = "Another-Secret-Value"
    remember_secret(other)
    try:
        failing_connect(f"something odd about {other}")
        with pytest.raises(DatabaseUnavailable) as raised:
            connect_as(SOURCE, Credentials("admin", PASSWORD))
    finally:
        forget_secrets()
    assert other not in str(raised.value)


def test_the_driver_error_is_not_chained(failing_connect):
    failing_connect(PREFIX + "FATAL:  sorry, too many clients already")

    with pytest.raises(DatabaseUnavailable) as raised:
        connect_as(SOURCE, Credentials("admin", PASSWORD))

    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None


@pytest.fixture(autouse=True)
def database_ca(monkeypatch):
    monkeypatch.delenv("CDCFLOW_DATABASE_SSLMODE", raising=False)
    monkeypatch.setenv("CDCFLOW_DATABASE_CA_FILE", "/etc/cdcflow/database-ca.pem")


TLS_FAILURES = [
    "SSL error: certificate verify failed",
    'server certificate for "localhost" (and 1 other name) does not match host name "db.internal"',
    'root certificate file "/etc/cdcflow/database-ca.pem" does not exist\n'
    "Either provide the file, use the system's trusted roots with sslrootcert=system, or change sslmode",
    "server does not support SSL, but SSL was required",
]


@pytest.mark.parametrize("message", TLS_FAILURES)
def test_a_refused_tls_handshake_is_source_tls_rejected_naming_host_and_ca(failing_connect, message):
    failing_connect(PREFIX + message)

    with pytest.raises(SourceTlsRejected) as raised:
        connect_as(SOURCE, Credentials("admin", PASSWORD), secret_id="shop/admin")

    text = str(raised.value)
    assert "db.internal:5432" in text
    assert "sslmode=verify-full" in text and "/etc/cdcflow/database-ca.pem" in text
    assert message.split("\n")[0] in text
    assert raised.value.__context__ is None


def test_a_refused_tls_handshake_with_the_sink_is_sink_tls_rejected(failing_connect, monkeypatch):
    monkeypatch.setattr(connection, "read_credentials", lambda secret: Credentials("writer", PASSWORD))
    failing_connect(PREFIX + TLS_FAILURES[0])
    sink = SinkSpec(type="jdbc", host="warehouse", port=5433, database="dw", secret="dw/writer")

    with pytest.raises(SinkTlsRejected, match="warehouse:5433"):
        connect_sink(sink)


def test_connect_admin_uses_the_login_of_the_specs_admin_secret(monkeypatch):
    read, connected = [], {}
    monkeypatch.setattr(connection, "read_credentials", lambda secret: read.append(secret) or Credentials("admin", PASSWORD))
    monkeypatch.setattr(connection.psycopg, "connect", lambda **kwargs: connected.update(kwargs) or "connection")

    assert connect_admin(SOURCE) == "connection"

    assert read == ["shop/admin"]
    assert connected == {
        "host": "db.internal",
        "port": 5432,
        "dbname": "shop",
        "user": "admin",
        "password": PASSWORD,
        "connect_timeout": connection.CONNECT_TIMEOUT_SECONDS,
        "application_name": "cdcflow",
        "autocommit": True,
        "sslmode": "verify-full",
        "sslrootcert": "/etc/cdcflow/database-ca.pem",
    }
