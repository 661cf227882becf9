"""The rules of every wait-loop (Wait -> Check -> Choice): how long to wait, when to look again, when to give up.

A loop starts with `{"attempt": 0, "wait_seconds": <first>, "ready": false}`;
each check returns the same shape with the attempt counted and the next wait.
The schedule is the step table's (`statemachines/`): the state machine passes
it to the check, so the rule a check applies is the one the table states.

Step Functions waits whole seconds. A dependency that is nearly ready (a
connector starting, a change crossing Kafka) gets there in a fraction of
one, so a check may *settle*: look again every `poll_interval` seconds for
up to `settle_seconds` before answering "not yet".

A loop that follows progress (a copy of any size) counts against `attempts`
only the checks that saw none, and stops at `most_checks` checks in all: the
bound a Step Functions history (25,000 events) needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from lambdas.errors import StepError

Seen = TypeVar("Seen")


@dataclass(frozen=True)
class Schedule:
    """`first` seconds before the first check, then `base`, growing by `growth` up to `cap`; `attempts` checks at most.

    With `most_checks`, `attempts` counts only the checks that saw no
    progress, and the loop makes `most_checks` checks in all at most.
    """

    first: int
    base: int
    growth: int
    cap: int
    attempts: int
    settle_seconds: float = 0.0
    poll_interval: float = 0.1
    most_checks: int = 0

    def __post_init__(self) -> None:
        if min(self.first, self.base, self.cap) < 0 or self.growth < 1 or self.attempts < 1:
            raise ValueError(f"not a wait-loop schedule: {self}")
        if self.most_checks and self.most_checks < self.attempts:
            raise ValueError(f"a schedule's most_checks cannot be below its attempts: {self}")
        if self.settle_seconds and self.poll_interval <= 0:
            raise ValueError("a schedule that settles needs a positive poll_interval")

    def wait_seconds(self, checks_made: int) -> int:
        """Seconds to wait before the next check, once `checks_made` checks have been made."""
        if checks_made < 0:
            raise ValueError(f"checks_made must be >= 0, got {checks_made}")
        if checks_made == 0:
            return self.first
        # The exponent is capped too, so a large count cannot build a huge integer.
        return min(self.base * self.growth ** min(checks_made - 1, 32), self.cap)

    def exhausted(self, checks_made: int) -> bool:
        """True when `checks_made` checks have been made and the loop may not wait again."""
        return checks_made >= self.attempts

    @property
    def checks_at_most(self) -> int:
        """The most checks the loop makes, with or without progress."""
        return self.most_checks or self.attempts

    def longest_wait_seconds(self) -> float:
        """The most a loop waits before it gives up: every wait, and every check settling in full."""
        checks = self.checks_at_most
        return sum(self.wait_seconds(made) for made in range(checks)) + checks * self.settle_seconds

    def as_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "first": self.first, "base": self.base, "growth": self.growth, "cap": self.cap, "attempts": self.attempts,
        }
        if self.settle_seconds:
            payload |= {"settle_seconds": self.settle_seconds, "poll_interval": self.poll_interval}
        if self.most_checks:
            payload["most_checks"] = self.most_checks
        return payload

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Schedule:
        """The schedule a check received in its event; raises ValueError naming what is wrong."""
        try:
            return cls(
                first=int(payload["first"]), base=int(payload["base"]), growth=int(payload["growth"]),
                cap=int(payload["cap"]), attempts=int(payload["attempts"]),
                settle_seconds=float(payload.get("settle_seconds", 0.0)),
                poll_interval=float(payload.get("poll_interval", 0.1)),
                most_checks=int(payload.get("most_checks", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"the check's schedule {dict(payload)!r} is not a wait-loop schedule: {exc}") from exc


def schedule_of(event: Mapping[str, Any]) -> Schedule:
    """The schedule in a check's event (the state machine puts it there from the step table)."""
    if "schedule" not in event:
        raise ValueError("a wait-loop check needs the loop's schedule in its event")
    return Schedule.from_payload(event["schedule"])


def settle(
    look: Callable[[], Seen],
    done: Callable[[Seen], bool],
    schedule: Schedule,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Seen:
    """Look until `done(seen)` or the schedule's settle time is up; returns the last thing seen. May block that long."""
    deadline = clock() + schedule.settle_seconds
    seen = look()
    while not done(seen) and clock() + schedule.poll_interval <= deadline:
        sleep(schedule.poll_interval)
        seen = look()
    return seen


def next_round(
    ready: bool, attempt: int, schedule: Schedule, gave_up: Callable[[int], StepError], **details: Any
) -> dict[str, Any]:
    """The loop state after check number `attempt` (0-based) found `ready`; raises `gave_up(checks)` when out of rounds."""
    attempt += 1
    if not ready and schedule.exhausted(attempt):
        raise gave_up(attempt)
    return {"ready": ready, "attempt": attempt, "wait_seconds": schedule.wait_seconds(attempt), **details}
