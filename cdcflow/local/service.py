"""What the stack needs to know to run one service."""

import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cdcflow.local.config import StackConfig


@dataclass(frozen=True)
class Service:
    """One long-running process of the local stack.

    `prepare` is idempotent and runs before every start (it writes configuration
    and creates what is missing); `probe` returns None once the service answers
    as it should, else a short reason; `after_ready` is idempotent and runs on
    every `up`, also when the service was already running.
    """

    name: str
    listeners: Callable[[StackConfig], Mapping[str, int]]
    prepare: Callable[[StackConfig], None]
    command: Callable[[StackConfig], list[str]]
    probe: Callable[[StackConfig], str | None]
    ready_timeout_seconds: float
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    after_ready: Callable[[StackConfig], None] | None = None
    # Services that must be ready before this one starts.
    needs: tuple[str, ...] = ()
    # Runs from the jars that cdcflow.local.fetch resolves.
    needs_jars: bool = False
    # Started only when `up` is asked for it by name; stopped by every `down`.
    optional: bool = False
