"""One round of a wait-loop (Wait -> Check -> Choice) that is not about a connector.

The state machine starts each loop with `{"attempt": 0, "wait_seconds": 2,
"ready": false}`; a Check returns the same shape with the attempt counted and
the next wait from the schedule the connector loops use (2, 4, 8, 16, then
30 s), and raises its named error once the loop may not wait again.
"""

from collections.abc import Callable
from typing import Any

from lambdas.connect.readiness import attempts_exhausted, next_wait_seconds
from lambdas.errors import StepError


def next_round(ready: bool, attempt: int, gave_up: Callable[[int], StepError], **details: Any) -> dict[str, Any]:
    """The loop state after check number `attempt` (0-based) found `ready`; raises `gave_up(checks)` when out of rounds."""
    attempt += 1
    if not ready and attempts_exhausted(attempt):
        raise gave_up(attempt)
    return {"ready": ready, "attempt": attempt, "wait_seconds": next_wait_seconds(attempt), **details}
