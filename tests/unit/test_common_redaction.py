"""Redaction of remembered secrets in log output and error messages."""

from __future__ import annotations

import io
import json
import logging

import pytest
from botocore.exceptions import ClientError

from lambdas.common import step_handler
from lambdas.common.observability import logger
from lambdas.common.redaction import (
    MASK,
    RedactingFilter,
    forget_secrets,
    redact,
    redact_exception,
    remember_secret,
)
from lambdas.errors import AwsApiThrottled, DatabaseUnavailable
from tests.unit.factories import raw_spec

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-Value_42"
SPEC = raw_spec()


@pytest.fixture(autouse=True)
def remembered(monkeypatch):
    monkeypatch.setenv("POWERTOOLS_IDEMPOTENCY_DISABLED", "1")
    forget_secrets()
    remember_secret(SECRET)
    yield
    forget_secrets()


@pytest.fixture
def log_output():
    buffer = io.StringIO()
    previous = logger.registered_handler.setStream(buffer)
    yield buffer
    logger.registered_handler.setStream(previous)


def test_redact_masks_every_occurrence_and_longest_first():
    remember_secret(SECRET + "-longer")
    assert redact(f"a {SECRET} b {SECRET}-longer c") == f"a {MASK} b {MASK} c"
    assert redact("nothing to hide") == "nothing to hide"


def test_values_too_short_to_be_passwords_are_not_remembered():
    remember_secret("abc")
    assert redact("abc abcdef") == "abc abcdef"


def test_forgotten_secrets_are_no_longer_masked():
    forget_secrets()
    assert redact(SECRET) == SECRET


def test_logger_masks_message_extra_keys_and_exceptions(log_output):
    logger.append_keys(dsn=f"password={SECRET}")
    try:
        logger.info("connecting with %s", SECRET, extra={"login": {"password": SECRET}})
        try:
            raise ValueError(f"bad password {SECRET}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.remove_keys(["dsn"])

    output = log_output.getvalue()
    lines = [json.loads(line) for line in output.splitlines()]
    assert SECRET not in output
    assert lines[0]["message"] == f"connecting with {MASK}"
    assert lines[0]["login"] == {"password": MASK}
    assert lines[0]["dsn"] == f"password={MASK}"
    assert f"bad password {MASK}" in lines[1]["exception"]


def test_filter_masks_plain_logging_records():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    library_logger = logging.getLogger("tests.redaction.library")
    library_logger.addHandler(handler)
    library_logger.propagate = False
    try:
        library_logger.warning("auth failed for %s", SECRET)
        try:
            raise RuntimeError(SECRET)
        except RuntimeError:
            library_logger.exception("boom")
    finally:
        library_logger.removeHandler(handler)
    assert SECRET not in stream.getvalue()
    assert f"auth failed for {MASK}" in stream.getvalue()
    assert f"RuntimeError: {MASK}" in stream.getvalue()


def test_redact_exception_rewrites_string_arguments_only():
    error = DatabaseUnavailable(f"password {SECRET} rejected", 5432)
    redact_exception(error)
    assert error.args == (f"password {MASK} rejected", 5432)


def test_step_errors_leave_the_handler_redacted(log_output):
    @step_handler
    def handler(spec, event):
        raise DatabaseUnavailable(f"could not connect: password {SECRET}")

    with pytest.raises(DatabaseUnavailable) as raised:
        handler({"spec": SPEC, "execution_id": "e1", "state_name": "CreateSlot"}, None)
    assert str(raised.value) == f"could not connect: password {MASK}"
    assert SECRET not in log_output.getvalue()


def test_translated_errors_are_redacted_together_with_their_cause():
    original = ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": f"slow down {SECRET}"}, "ResponseMetadata": {}},
        "PutItem",
    )

    @step_handler
    def handler(spec, event):
        raise original

    with pytest.raises(AwsApiThrottled) as raised:
        handler({"spec": SPEC, "execution_id": "e1", "state_name": "RegisterPipeline"}, None)
    assert SECRET not in str(raised.value)
    assert "ThrottlingException" in str(raised.value)
    assert raised.value.__cause__ is original
    assert SECRET not in str(original)
