"""Powertools logger, tracer and step metrics shared by every cdcflow function.

- `logger` writes one JSON line per record with the service `cdcflow`; the
  step handler appends `pipeline_id`, `execution_id` and `step` (and the
  Lambda context's fields) to every line of an invocation. Keys are kept per
  thread, because the local engine runs several handlers at once in one
  process. Lines pass through `RedactingFormatter`, so no remembered secret
  is ever written.
- `tracer` is Powertools' X-Ray tracer. Outside Lambda (no `LAMBDA_TASK_ROOT`)
  Powertools disables it by itself, so on the local engine it neither needs
  an X-Ray daemon nor slows a step down.
- `emit_step_metric` writes one CloudWatch Embedded Metric Format record to
  stdout. On Lambda, CloudWatch turns it into a metric; elsewhere it is a
  line of output and needs no AWS access. `POWERTOOLS_METRICS_DISABLED=1`
  silences it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from lambdas.common.redaction import RedactingFormatter

SERVICE = "cdcflow"
METRICS_NAMESPACE = "cdcflow"
STEP_SUCCEEDED = "StepSucceeded"
STEP_FAILED = "StepFailed"

logger = Logger(service=SERVICE, logger_formatter=RedactingFormatter())
tracer = Tracer(service=SERVICE)

_cold_start = True


def _context_keys(context: Any) -> dict[str, Any]:
    """The Lambda context fields Powertools' `inject_lambda_context` logs, from whatever `context` offers.

    The local engine passes a small stand-in with the same attribute names;
    tests may pass None.
    """
    global _cold_start
    keys = {
        "function_name": getattr(context, "function_name", None),
        "function_memory_size": getattr(context, "memory_limit_in_mb", None),
        "function_arn": getattr(context, "invoked_function_arn", None),
        "function_request_id": getattr(context, "aws_request_id", None),
        "cold_start": _cold_start,
    }
    _cold_start = False
    return {name: value for name, value in keys.items() if value is not None}


@contextmanager
def invocation_log_keys(context: Any, **keys: Any) -> Iterator[None]:
    """Append `keys` and the context's fields to every log line of this thread until exit."""
    logger.thread_safe_append_keys(**_context_keys(context), **{k: v for k, v in keys.items() if v is not None})
    try:
        yield
    finally:
        logger.thread_safe_clear_keys()


def emit_step_metric(name: str, step: str, **metadata: Any) -> None:
    """Write one `name` count with the `step` dimension in EMF (never raises for lack of CloudWatch).

    A fresh provider per call keeps concurrent invocations' dimensions apart.
    """
    metrics = AmazonCloudWatchEMFProvider(namespace=METRICS_NAMESPACE, service=SERVICE)
    metrics.add_dimension(name="step", value=step)
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    for key, value in metadata.items():
        if value is not None:
            metrics.add_metadata(key=key, value=value)
    metrics.flush_metrics()
