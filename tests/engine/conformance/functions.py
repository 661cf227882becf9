"""The Lambda functions the conformance cases call, named by the last part of their ARN.

They stand in for the functions of AWS's examples: `Add` sums `val1` and
`val2` (the ASL specification's filters example), `Hello` greets `who`
(the ResultPath examples), `Fail` raises `CustomError` (the error-handling
examples), `Cluster` answers like the EMR example of ResultSelector.
"""

from collections.abc import Callable
from typing import Any

ARN_PREFIX = "arn:aws:lambda:us-east-1:123456789012:function:"


class CustomError(Exception):
    """The error of the developer guide's error-handling examples."""


class TransientError(Exception):
    """A failure that a retry gets past."""


def make_functions() -> dict[str, Callable[[Any], Any]]:
    """A fresh set per case, so functions that count their calls start from zero."""
    calls = {"FailOnce": 0}

    def fail(event: Any) -> None:
        raise CustomError("This is a custom error!")

    def fail_once(event: Any) -> str:
        calls["FailOnce"] += 1
        if calls["FailOnce"] == 1:
            raise TransientError("the first attempt fails")
        return f"succeeded on attempt {calls['FailOnce']}"

    functions = {
        "Add": lambda event: event["val1"] + event["val2"],
        "Hello": lambda event: f"Hello, {event['who']}!",
        "Cluster": lambda event: {"resourceType": "elasticmapreduce", "resource": "createCluster.sync", "output": {"SdkHttpMetadata": {"HttpStatusCode": 200}, "ClusterId": "AKIAIOSFODNN7EXAMPLE"}},
        "Square": lambda event: event * event,
        "Fail": fail,
        "FailOnce": fail_once,
    }
    return {ARN_PREFIX + name: function for name, function in functions.items()}
