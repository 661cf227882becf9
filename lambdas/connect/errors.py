"""Errors of the connector steps that the state machines route on.

As in `lambdas.errors`, each class name is the Step Functions error name.
All are permanent (compensate); the transient one, `ConnectUnavailable`,
lives in `lambdas.errors` with the other Retry-policy errors.
"""

from lambdas.errors import StepError


class ConnectorConfigInvalid(StepError):
    """Kafka Connect rejected a connector config (HTTP 400); the message is Connect's, redacted."""


class ConnectRequestRejected(StepError):
    """Kafka Connect refused a request for a reason other than config validation (an unexpected 4xx)."""


class ConnectorNotFound(StepError):
    """The connector does not exist on the Kafka Connect cluster."""


class ConnectorFailed(StepError):
    """The connector or one of its tasks is FAILED; the message carries a redacted trace summary."""


class ConnectorNotReady(StepError):
    """The connector did not reach RUNNING within the wait-loop's bounded number of checks."""
