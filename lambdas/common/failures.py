"""Translate library exceptions into the named errors the state machines route on.

Only transient failures are translated: they become one of the names the
workflows' Retry policies match (`AwsApiThrottled`, `DatabaseUnavailable`,
`KafkaUnavailable`; the Kafka Connect client raises `ConnectUnavailable`
itself). A rejected database login becomes `AuthenticationFailed`. A named
`StepError` passes through unchanged, and so does anything else: Step
Functions reports it under its own class name and the state's `States.ALL`
Catch routes it to the compensations.

Driver libraries are looked up in `sys.modules` rather than imported, so a
step that never loaded psycopg or kafka-python does not pay for importing them
here (an exception from a library that is not loaded cannot occur).
"""

from __future__ import annotations

import sys

from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from lambdas.common.redaction import redact
from lambdas.errors import (
    AuthenticationFailed,
    AwsApiThrottled,
    DatabaseUnavailable,
    KafkaUnavailable,
    StepError,
)

# Error codes AWS APIs return for throttling and for server-side failures worth retrying.
TRANSIENT_AWS_ERROR_CODES = frozenset({
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "TransactionInProgressException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "InternalServiceErrorException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
})

# PostgreSQL SQLSTATEs of a rejected login: retrying cannot help.
_AUTHENTICATION_SQLSTATES = frozenset({"28000", "28P01"})


def is_transient_aws_error(error: BaseException) -> bool:
    """Whether `error` is an AWS API failure that a later attempt may not see (throttling, 5xx, network)."""
    if isinstance(error, BotocoreConnectionError | HTTPClientError):
        return True
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in TRANSIENT_AWS_ERROR_CODES or status >= 500
    return False


def _aws_operation(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return f"{error.operation_name}: {error.response.get('Error', {}).get('Code', 'error')}"
    return type(error).__name__


def translate(error: BaseException) -> BaseException:
    """The exception a step should raise for `error`: a named transient error, or `error` itself.

    The translated error's message is redacted; the caller chains the original.
    """
    if isinstance(error, StepError):
        return error
    if is_transient_aws_error(error):
        return AwsApiThrottled(redact(f"AWS API call failed transiently ({_aws_operation(error)}): {error}"))
    if isinstance(error, IdempotencyPersistenceLayerError):
        return AwsApiThrottled(redact(f"the idempotency table could not be read or written: {error}"))
    translated = _translate_driver_error(error)
    return translated if translated is not None else error


def _translate_driver_error(error: BaseException) -> StepError | None:
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(error, psycopg.OperationalError):
        if getattr(error, "sqlstate", None) in _AUTHENTICATION_SQLSTATES:
            return AuthenticationFailed(redact(f"PostgreSQL rejected the login: {error}"))
        return DatabaseUnavailable(redact(f"PostgreSQL is unavailable: {error}"))

    kafka_errors = sys.modules.get("kafka.errors")
    # kafka-python marks what a retry can fix (timeouts, lost connections, leader moves) as RetriableError.
    if kafka_errors is not None and isinstance(error, kafka_errors.RetriableError):
        return KafkaUnavailable(redact(f"Kafka did not answer: {type(error).__name__}: {error}"))
    return None
