"""Errors the state machines route on.

The class name of each exception is the Step Functions error name that a
Retry or Catch matches (Lambda reports a Python exception's type as the
error). Transient dependency failures share four names, one per named
Retry policy; everything else is permanent and leads to compensation.
"""


class StepError(Exception):
    """Base of every error a step raises on purpose.

    Messages name the problem and the resource; they never carry secrets.
    """


# Transient: matched by the workflow's named Retry policies.
class DatabaseUnavailable(StepError):
    """PostgreSQL could not be reached or dropped the connection."""


class KafkaUnavailable(StepError):
    """The Kafka cluster did not answer in time."""


class ConnectUnavailable(StepError):
    """The Kafka Connect REST API did not answer, or is rebalancing."""


class AwsApiThrottled(StepError):
    """An AWS API throttled the call or failed transiently."""


# Permanent: routed by Catch to the compensations.
class SpecInvalid(StepError):
    """The pipeline spec does not satisfy the schema; the message names the field."""


class PipelineAlreadyOwned(StepError):
    """Another request or another owner already holds this pipeline id."""


class SecretNotFound(StepError):
    """A secret referenced by the spec does not exist."""


class AuthenticationFailed(StepError):
    """The database rejected the credentials of a referenced secret."""


# Pre-flight: a spec pointing at something that does not answer or refuses, named before anything is created.
class SourceUnreachable(StepError):
    """The source database did not answer at the host and port the spec names."""


class SinkUnreachable(StepError):
    """The sink database did not answer at the host and port the spec names."""


class SourceTlsRejected(StepError):
    """The TLS handshake with the source database failed: its certificate is not from the CA, or names another host."""


class SinkTlsRejected(StepError):
    """The TLS handshake with the sink database failed: its certificate is not from the CA, or names another host."""


class SinkDatabaseMissing(StepError):
    """The sink database the spec names does not exist on its server."""


class SinkSchemaNotPermitted(StepError):
    """The sink schema is missing and the sink's role may not create it."""


class KafkaUnreachable(StepError):
    """No Kafka broker answered at the bootstrap servers the spec names."""


class ConnectUnreachable(StepError):
    """The Kafka Connect REST API did not answer at the URL the spec names."""
