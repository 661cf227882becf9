"""Connecting to the local source and sink: the admin login from its secret, and every failure named."""

import dataclasses
import socket
import traceback

import pytest

from lambdas.errors import AuthenticationFailed, DatabaseUnavailable, SecretNotFound
from lambdas.secrets import Credentials
from lambdas.source.connection import (
    APPLICATION_NAME,
    DatabaseNotFound,
    SinkNotDatabase,
    connect_admin,
    connect_as,
    connect_sink,
)

WRONG_PASSWORD = "Wrong-Pa55word-never-shown"


def _every_text_of(error: BaseException) -> str:
    """What a log or a Step Functions error could show of `error`: str, repr, args and the formatted traceback."""
    return "\n".join([str(error), repr(error), *map(str, error.args), *traceback.format_exception(error)])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_connect_admin_reads_the_secret_and_opens_an_autocommit_session(pipeline_spec, source_admin_secret):
    with connect_admin(pipeline_spec.source) as conn:
        assert conn.autocommit
        database, application = conn.execute("SELECT current_database(), current_setting('application_name')").fetchone()
    assert database == pipeline_spec.source.database
    assert application == APPLICATION_NAME


def test_connect_sink_opens_the_sink_database(pipeline_spec, source_admin_secret):
    with connect_sink(pipeline_spec.sink) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == pipeline_spec.sink.database


def test_a_wrong_password_is_authentication_failed_naming_user_and_secret_never_the_password(
    local_stack, pipeline_spec, store_login
):
    secret = store_login("tests/wrong-admin", local_stack.postgres.admin_user, WRONG_PASSWORD)
    source = dataclasses.replace(pipeline_spec.source, admin_secret=secret)

    with pytest.raises(AuthenticationFailed) as raised:
        connect_admin(source)

    message = str(raised.value)
    assert local_stack.postgres.admin_user in message
    assert secret in message
    assert WRONG_PASSWORD not in _every_text_of(raised.value)
    # The driver's exception carries the conninfo with the password: it must not travel along.
    assert raised.value.__cause__ is None and raised.value.__context__ is None


def test_an_unreachable_port_is_database_unavailable_naming_the_address(pipeline_spec):
    port = _free_port()
    source = dataclasses.replace(pipeline_spec.source, port=port)

    with pytest.raises(DatabaseUnavailable) as raised:
        connect_as(source, Credentials("anyone", WRONG_PASSWORD))

    assert f"cannot reach PostgreSQL at {source.host}:{port}" in str(raised.value)
    assert WRONG_PASSWORD not in _every_text_of(raised.value)


def test_a_missing_database_is_a_permanent_named_error(local_stack, pipeline_spec):
    source = dataclasses.replace(pipeline_spec.source, database="no_such_database")
    login = Credentials(local_stack.postgres.admin_user, local_stack.postgres.admin_password)

    with pytest.raises(DatabaseNotFound, match="'no_such_database' does not exist"):
        connect_as(source, login)


def test_an_unknown_role_is_authentication_failed(pipeline_spec):
    with pytest.raises(AuthenticationFailed, match="'cdcflow_nobody'"):
        connect_as(pipeline_spec.source, Credentials("cdcflow_nobody", WRONG_PASSWORD))


def test_a_missing_admin_secret_is_secret_not_found_before_any_connection(pipeline_spec, secrets_manager):
    with pytest.raises(SecretNotFound, match=pipeline_spec.source.admin_secret):
        connect_admin(pipeline_spec.source)


def test_an_opensearch_sink_has_no_database_to_connect_to(pipeline_spec):
    sink = dataclasses.replace(pipeline_spec.sink, type="opensearch", host=None, port=None, database=None,
                               url="http://search:9200")
    with pytest.raises(SinkNotDatabase, match="opensearch"):
        connect_sink(sink)
