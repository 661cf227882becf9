"""What every cdcflow Lambda function shares: the step handler, logging, tracing, redaction."""

from lambdas.common.handler import TaskPayloadInvalid, step_handler
from lambdas.common.idempotency import IdempotencyNotConfigured
from lambdas.common.observability import logger, tracer
from lambdas.common.redaction import redact, remember_secret

__all__ = [
    "IdempotencyNotConfigured",
    "TaskPayloadInvalid",
    "logger",
    "redact",
    "remember_secret",
    "step_handler",
    "tracer",
]
