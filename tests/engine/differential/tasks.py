"""The Python callables behind the Task states of the differential corpus.

A case names its functions by the last part of the Lambda ARN
(`arn:aws:lambda:us-east-1:123456789012:function:Double` -> `Double`).
`make_functions()` returns a fresh set per run, so functions that count
their calls (to exercise Retry) start from zero on each engine.
"""

from collections.abc import Callable
from typing import Any


class TransientError(Exception):
    """A failure worth retrying."""


class ConnectorFailed(Exception):
    """A permanent failure, routed by Catch."""


def make_functions() -> dict[str, Callable[[Any], Any]]:
    calls: dict[str, int] = {}

    def fail_until(name: str, failures: int) -> None:
        calls[name] = calls.get(name, 0) + 1
        if calls[name] <= failures:
            raise TransientError(f"attempt {calls[name]} of {name} failed")

    def echo(event: Any) -> Any:
        return event

    def double(event: dict) -> dict:
        return {"value": event["value"] * 2}

    def add(event: dict) -> int:
        return event["a"] + event["b"]

    def greet(event: dict) -> str:
        return f"Hello, {event['name']}"

    def square(event: Any) -> int:
        number = event["n"] if isinstance(event, dict) else event
        return number * number

    def nothing(event: Any) -> None:
        return None

    def listing(event: Any) -> list:
        return [1, 2, 3]

    def connector_failed(event: Any) -> None:
        raise ConnectorFailed("connector orders-sink is FAILED")

    def value_error(event: Any) -> None:
        raise ValueError("spec is invalid")

    def always_transient(event: Any) -> None:
        raise TransientError("the database is unavailable")

    def fail_twice(event: Any) -> dict:
        fail_until("FailTwice", 2)
        return {"attempts": calls["FailTwice"], "input": event}

    def fail_once(event: Any) -> dict:
        fail_until("FailOnce", 1)
        return {"attempts": calls["FailOnce"]}

    def fail_on_odd(event: Any) -> int:
        if event % 2:
            raise ValueError(f"{event} is odd")
        return event

    return {
        "Echo": echo,
        "Double": double,
        "Add": add,
        "Greet": greet,
        "Square": square,
        "Nothing": nothing,
        "Listing": listing,
        "ConnectorFailed": connector_failed,
        "ValueError": value_error,
        "AlwaysTransient": always_transient,
        "FailTwice": fail_twice,
        "FailOnce": fail_once,
        "FailOnOdd": fail_on_odd,
    }
