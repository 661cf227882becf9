"""Calling Python handlers the way AWS Lambda's Python runtime calls them.

A handler gets a fresh decoded copy of the JSON payload (so it cannot
change the state's data behind the engine's back) and a context object
with the fields handlers commonly read. What it returns is marshalled to
JSON text as the runtime does; an exception becomes the runtime's error
document, whose `errorType` (the exception's class name) is the error name
Retry and Catch match on.
"""

from __future__ import annotations

import inspect
import json
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

REGION = "us-east-1"
ACCOUNT = "000000000000"
NO_TIMEOUT_SECONDS = 99999999

Handler = Callable[..., Any]


@dataclass(frozen=True)
class Invocation:
    """The outcome of one call: `payload` is JSON text when `error` is None, else the error document."""

    payload: str
    error: str | None = None


class LambdaContext:
    """The subset of Lambda's context object that handlers use."""

    def __init__(self, function_arn: str, timeout_seconds: float) -> None:
        self.invoked_function_arn = function_arn
        self.function_name = function_name(function_arn)
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = "128"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def __repr__(self) -> str:
        return f"LambdaContext(function_name={self.function_name!r}, aws_request_id={self.aws_request_id!r})"


def function_arn(name_or_arn: str) -> str:
    """The full function ARN for a name, a partial ARN or a full ARN, as Lambda resolves FunctionName."""
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    parts = name_or_arn.split(":")
    if len(parts) >= 3 and parts[1] == "function":  # 123456789012:function:name[:qualifier]
        return f"arn:aws:lambda:{REGION}:{name_or_arn}"
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name_or_arn}"


def function_name(arn: str) -> str:
    """`arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]` -> `<name>`."""
    parts = arn.split(":")
    return parts[6] if len(parts) > 6 and parts[5] == "function" else arn


def unqualified(arn: str) -> str:
    """The function ARN without a version or alias qualifier."""
    return ":".join(arn.split(":")[:7])


def invoke(handler: Handler, arn: str, payload: str, timeout_seconds: float) -> Invocation:
    """Call `handler` with the decoded `payload` and a context; never raises. Blocks for as long as the handler runs."""
    context = LambdaContext(arn, timeout_seconds)
    try:
        event = json.loads(payload)
        result = handler(event, context) if _takes_context(handler) else handler(event)
    except Exception as error:  # noqa: BLE001 - every exception becomes Lambda's error document
        return Invocation(_error_document(type(error).__name__, str(error), context, error.__traceback__), type(error).__name__)
    try:
        return Invocation(json.dumps(result, separators=(",", ":"), ensure_ascii=False, allow_nan=False))
    except (TypeError, ValueError) as error:
        message = f"Unable to marshal response: {error}"
        return Invocation(_error_document("Runtime.MarshalError", message, context, None), "Runtime.MarshalError")


def not_found_cause(arn: str) -> str:
    """The cause Step Functions reports when Lambda has no such function."""
    return (
        f"Function not found: {arn} (Service: AWSLambda; Status Code: 404; "
        f"Error Code: ResourceNotFoundException; Request ID: {uuid.uuid4()}; Proxy: null)"
    )


def _error_document(error_type: str, message: str, context: LambdaContext, trace: Any) -> str:
    document = {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": context.aws_request_id,
        "stackTrace": traceback.format_tb(trace) if trace is not None else [],
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=1024)
def _takes_context(handler: Handler) -> bool:
    """Lambda handlers take (event, context); plain one-argument callables get the event alone."""
    try:
        parameters = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in parameters)
