"""Errors raised while interpreting a state machine.

Every runtime failure inside the engine is a `StatesError`, carrying the
error name that Retry and Catch match on (`States.Runtime`,
`States.IntrinsicFailure`, `States.NoChoiceMatched`, ...) and a cause.
"""


class StatesError(Exception):
    """A failure the state machine can route on by `error` name."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}" if cause else error)
        self.error = error
        self.cause = cause


class WorkflowFailure(StatesError):
    """A failure that ends the execution at once with its cause as written: no Retry, no Catch, no state prefix."""


class DefinitionInvalid(Exception):
    """A definition AWS would reject; the message names the state and the problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class ServiceError(Exception):
    """A Step Functions API error; `code` is the name AWS returns in `__type` (e.g. `ExecutionDoesNotExist`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
