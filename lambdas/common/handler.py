"""`step_handler`: turn a plain step function into a Lambda handler.

    @step_handler
    def create_handler(spec: PipelineSpec, event: dict) -> dict: ...

    @step_handler(idempotent=False)     # read-only checks polled by wait-loops
    def check_handler(spec: PipelineSpec, event: dict) -> dict: ...

The task payload is `{"spec": {...}, "execution_id": ..., "state_name": ...,
...step fields}`. The handler validates the spec (`SpecInvalid` names the
field), runs the function (once per execution, state and pipeline, unless
`idempotent=False`), and returns its result as a JSON object. Around that it
logs with the invocation's keys, traces, counts `StepSucceeded`/`StepFailed`
per step, and translates transient library errors into the named errors the
state machines retry (see `lambdas.common.failures`). No remembered secret
leaves through a log line or an error message.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from typing import Any, overload

from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from lambdas.common import idempotency
from lambdas.common.failures import translate
from lambdas.common.observability import (
    STEP_FAILED,
    STEP_SUCCEEDED,
    emit_step_metric,
    invocation_log_keys,
    logger,
    tracer,
)
from lambdas.common.redaction import install_root_filter, redact_exception
from lambdas.errors import SpecInvalid, StepError
from lambdas.spec import PipelineSpec, parse_spec

StepFunction = Callable[[PipelineSpec, dict[str, Any]], dict[str, Any]]
LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


class TaskPayloadInvalid(StepError):
    """The task payload lacks a field every task state passes (`execution_id`, `state_name`, `spec`)."""


def _check_payload(event: Any, idempotent: bool) -> None:
    if not isinstance(event, dict):
        raise TaskPayloadInvalid(f"the task payload must be a JSON object, got {type(event).__name__}")
    if "spec" not in event:
        raise SpecInvalid("spec: missing from the task payload")
    if idempotent:
        # Powertools only rejects a key whose parts are all missing; a key
        # without the execution id would let two executions share one result.
        for field in ("execution_id", "state_name"):
            if not isinstance(event.get(field), str) or not event[field]:
                raise TaskPayloadInvalid(
                    f"{field}: missing from the task payload (pass \"{field}.$\" from the context object)"
                )


def _as_json_object(result: Any, step: str) -> dict[str, Any]:
    """`result` as it will read back from JSON, so a first run and a replay return equal values."""
    if not isinstance(result, dict):
        raise TypeError(f"step {step} returned {type(result).__name__}, not a JSON object")
    try:
        return json.loads(json.dumps(result))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"step {step} returned a value that is not JSON-serializable: {exc}") from None


@overload
def step_handler(function: StepFunction, /) -> LambdaHandler: ...
@overload
def step_handler(*, idempotent: bool = True) -> Callable[[StepFunction], LambdaHandler]: ...


def step_handler(
    function: StepFunction | None = None, /, *, idempotent: bool = True
) -> LambdaHandler | Callable[[StepFunction], LambdaHandler]:
    """Wrap `function(spec, event) -> dict` as a Lambda handler `(event, context) -> dict`.

    With `idempotent=True` (the default) a repeated invocation with the same
    execution id, state name and pipeline id returns the stored result without
    running `function` again; `IdempotencyAlreadyInProgressError` signals a
    concurrent duplicate. Use `idempotent=False` for read-only checks that a
    wait-loop calls repeatedly in one execution.
    """
    if function is None:
        return functools.partial(step_handler, idempotent=idempotent)
    return _wrap(function, idempotent)


def _wrap(function: StepFunction, idempotent: bool) -> LambdaHandler:
    key_prefix = f"cdcflow.{function.__module__}.{function.__qualname__}"

    @functools.wraps(function)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        install_root_filter()
        # Log keys come from the raw payload, so even a rejected payload is logged with what it had.
        task = event if isinstance(event, dict) else {}
        raw_spec = task.get("spec")
        pipeline_id = raw_spec.get("pipeline_id") if isinstance(raw_spec, dict) else None
        state_name = task.get("state_name")
        step = state_name if isinstance(state_name, str) and state_name else function.__name__
        with invocation_log_keys(
            context,
            pipeline_id=pipeline_id if isinstance(pipeline_id, str) else None,
            execution_id=task.get("execution_id"),
            step=step,
        ):
            return _invoke(function, event, context, step, idempotent, key_prefix)

    return tracer.capture_lambda_handler(handler, capture_response=False)


def _record_progress(pipeline_id: str, event: dict[str, Any]) -> None:
    """Let the registry's `current_step` follow the execution live (best effort, never fails the step)."""
    state_name = event.get("state_name")
    if isinstance(state_name, str) and state_name and os.environ.get("REGISTRY_TABLE"):
        from lambdas import registry  # here, not at the top: lambdas.registry imports lambdas.common

        registry.record_step(pipeline_id, state_name)


# The errors of a dependency that cannot be reached or logged into.
UNREACHABLE_ERRORS = frozenset({
    "DatabaseUnavailable", "AuthenticationFailed", "KafkaUnavailable", "ConnectUnavailable",
    "SinkUnavailable",
})


def _never_created(event: Any, step: str, error: BaseException) -> bool:
    """Whether `error` is an unreachable dependency of a compensation the task says has nothing left to undo.

    Teardown compensations carry `resources_left`: the compensations a
    rollback recorded as possibly left (None: no record, everything may exist).
    """
    if not isinstance(event, dict) or not isinstance(event.get("resources_left"), list):
        return False
    return step not in event["resources_left"] and type(error).__name__ in UNREACHABLE_ERRORS


def _invoke(
    function: StepFunction, event: Any, context: Any, step: str, idempotent: bool, key_prefix: str
) -> dict[str, Any]:
    started = time.monotonic()
    logger.info("step started")
    try:
        _check_payload(event, idempotent)
        spec = parse_spec(event["spec"])
        tracer.put_annotation(key="pipeline_id", value=spec.pipeline_id)
        _record_progress(spec.pipeline_id, event)

        def run() -> dict[str, Any]:
            return _as_json_object(function(spec, event), step)

        result = idempotency.run_once(run, event, context, key_prefix) if idempotent else run()
    except IdempotencyAlreadyInProgressError:
        # Expected while a duplicate delivery overlaps the first: the state's Retry handles it.
        logger.info("step already in progress for this execution; the state machine will retry")
        raise
    except Exception as exc:
        error = translate(exc)
        redact_exception(exc)
        redact_exception(error)
        if _never_created(event, step, error):
            # A teardown's compensation whose resource the rollback's record says was never created: that its
            # dependency cannot be reached (a wrong port, a missing database) means nothing is there to undo.
            logger.info("nothing to undo: the dependency is unreachable and the registry records nothing left",
                        extra={"error": type(error).__name__, "cause": str(error)})
            emit_step_metric(STEP_SUCCEEDED, step)
            return {"skipped": f"{type(error).__name__}: {error}", "nothing_left": True}
        failure = {"error": type(error).__name__, "duration_ms": round((time.monotonic() - started) * 1000)}
        if isinstance(error, StepError):
            logger.warning("step failed", extra={**failure, "cause": str(error)})
        else:
            logger.exception("step failed unexpectedly", extra=failure)
        emit_step_metric(STEP_FAILED, step, error=type(error).__name__)
        if error is exc:
            raise
        raise error from exc
    logger.info("step succeeded", extra={"duration_ms": round((time.monotonic() - started) * 1000)})
    emit_step_metric(STEP_SUCCEEDED, step)
    return result
