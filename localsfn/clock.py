"""Clocks: what time it is for the engine's timers, events and Wait states.

The engine asks its clock for the time and never sleeps itself: timers
are due times in a heap, and the engine's loop waits for the earliest one
through `Clock.wait`. `SystemClock` waits for real; `VirtualClock` jumps
straight to the due time once the engine has nothing else to do, so tests
pay no Wait or Retry time while the order of events stays what it would be.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    virtual: bool

    def now(self) -> float:
        """Seconds since the epoch."""

    def wait(self, condition: threading.Condition, due: float | None) -> None:
        """Block on `condition` (held by the caller) until notified or until `due`; may return early."""


class SystemClock:
    """Wall-clock time; waits really wait."""

    virtual = False

    def now(self) -> float:
        return time.time()

    def wait(self, condition: threading.Condition, due: float | None) -> None:
        condition.wait(None if due is None else max(0.0, due - time.time()))


class VirtualClock:
    """Time that moves only when the engine is idle and a timer is due.

    Starts at the wall-clock time of its creation (or `start`). The engine
    calls `advance_to` with its earliest timer when no work is runnable and
    no Lambda call is in flight, so a Wait of a day and a Retry backoff of
    an hour complete at once, in the order their due times give. Time
    stands still while a handler runs, so a task's TimeoutSeconds never
    fires on virtual time before its handler returns.
    """

    virtual = True

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance_to(self, moment: float) -> None:
        """Move the clock forward to `moment`; never backwards."""
        with self._lock:
            self._now = max(self._now, moment)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds` (for tests that step time by hand)."""
        with self._lock:
            self._now += max(0.0, seconds)

    def wait(self, condition: threading.Condition, due: float | None) -> None:
        # Virtual time does not pass while waiting: wait for new work only.
        # The timeout bounds how long a missed notification could stall the loop.
        condition.wait(1.0)
