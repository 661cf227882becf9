"""The schedule of the connector wait-loops (Wait -> Check -> Choice).

The state machine starts a loop with `{"attempt": 0, "wait_seconds":
next_wait_seconds(0), "ready": false}`; each check returns the next attempt
number and how long to wait before it. Waits double from 2 s up to 30 s, and
after `MAX_READINESS_ATTEMPTS` checks the loop fails instead of waiting
again: at most 2+4+8+16 + 30*16 = 510 s of waiting, and about nine history
events per round (Wait, Task, Choice), 180 per loop — far from the 25,000
events at which AWS stops a Standard workflow.
"""

FIRST_WAIT_SECONDS = 2
MAX_WAIT_SECONDS = 30
MAX_READINESS_ATTEMPTS = 20


def next_wait_seconds(attempt: int) -> int:
    """Seconds to wait before check number `attempt` (0-based): 2, 4, 8, 16, then 30 each time."""
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    # Cap the exponent too, so a large attempt number cannot build a huge integer.
    return min(FIRST_WAIT_SECONDS << min(attempt, 8), MAX_WAIT_SECONDS)


def attempts_exhausted(attempt: int) -> bool:
    """True when `attempt` checks have been made and the loop may not wait again."""
    return attempt >= MAX_READINESS_ATTEMPTS
