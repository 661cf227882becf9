"""What reconciliation counts as drift, and when a pipeline is DEGRADED: pure decisions, no I/O.

The sweep (`lambdas.reconcile`) observes connectors, slots and publications,
then asks `assess` what the pipeline's status should be. Everything here is a
plain function of its arguments (the clock is passed in), so the rules are
tested without any service.

The rules, with their settings:

- a connector or task found FAILED is restarted; a pipeline whose connectors
  are found FAILED in `degrade_after_failed_sweeps` sweeps in a row, or that
  was restarted `degrade_after_restarts` times within `restart_window`
  (a connector that fails again after every restart), is DEGRADED;
- a replication slot more than `lag_threshold_bytes` behind the server's WAL
  is DEGRADED (the slot pins that WAL on the source's disk);
- a missing slot or connector is DEGRADED at once: a restart cannot bring it
  back, and recreating a slot would silently skip changes;
- a pipeline with none of these problems is ACTIVE, so a DEGRADED one
  recovers by itself once it is healthy again;
- when part of a pipeline could not be observed (its source or Connect
  cluster did not answer) and nothing observed is wrong, its status is left
  as it was: reconciliation does not guess.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from lambdas.connect.traces import summarise_trace
from lambdas.registry import PipelineStatus

ConnectorState = Literal["RUNNING", "FAILED", "PAUSED", "PENDING", "MISSING"]

# Statuses whose pipelines are checked and repaired by a sweep.
RECONCILED_STATUSES = frozenset({PipelineStatus.ACTIVE, PipelineStatus.DEGRADED})
# Statuses whose pipelines own their resources: these are never orphans.
LIVE_STATUSES = frozenset(
    {PipelineStatus.PROVISIONING, PipelineStatus.ACTIVE, PipelineStatus.DEGRADED, PipelineStatus.DELETING}
)
# Statuses in which a workflow execution is under way; an entry not updated for long is stuck.
IN_FLIGHT_STATUSES = frozenset({PipelineStatus.PROVISIONING, PipelineStatus.DELETING})


class ReconcileSettingsInvalid(ValueError):
    """A reconciliation setting (an environment variable) is not a valid number."""


@dataclass(frozen=True)
class ReconcileSettings:
    """Thresholds of a sweep. `from_env` reads each from its `RECONCILE_*` variable."""

    lag_threshold_bytes: int = 1024**3  # 1 GiB of WAL pinned by a slot
    degrade_after_failed_sweeps: int = 3
    degrade_after_restarts: int = 6
    restart_window: timedelta = timedelta(hours=24)
    stuck_after: timedelta = timedelta(minutes=60)

    def __post_init__(self) -> None:
        for name in ("lag_threshold_bytes", "degrade_after_failed_sweeps", "degrade_after_restarts"):
            if getattr(self, name) < (0 if name == "lag_threshold_bytes" else 1):
                raise ReconcileSettingsInvalid(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("restart_window", "stuck_after"):
            if getattr(self, name) <= timedelta(0):
                raise ReconcileSettingsInvalid(f"{name} must be a positive duration, got {getattr(self, name)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ReconcileSettings:
        """Settings from the environment; an unset variable keeps the default above.

        | variable | default |
        | --- | --- |
        | `RECONCILE_LAG_THRESHOLD_BYTES` | 1073741824 (1 GiB) |
        | `RECONCILE_DEGRADE_AFTER_FAILED_SWEEPS` | 3 |
        | `RECONCILE_DEGRADE_AFTER_RESTARTS` | 6 |
        | `RECONCILE_RESTART_WINDOW_MINUTES` | 1440 (24 hours) |
        | `RECONCILE_STUCK_AFTER_MINUTES` | 60 |

        Raises `ReconcileSettingsInvalid` naming the variable for a value that
        is not a positive integer.
        """
        defaults = cls()

        def integer(variable: str, default: int) -> int:
            raw = environ.get(variable, "").strip()
            if not raw:
                return default
            try:
                return int(raw)
            except ValueError:
                raise ReconcileSettingsInvalid(f"{variable} must be an integer, got {raw!r}") from None

        def minutes(variable: str, default: timedelta) -> timedelta:
            return timedelta(minutes=integer(variable, int(default.total_seconds() // 60)))

        try:
            return cls(
                lag_threshold_bytes=integer("RECONCILE_LAG_THRESHOLD_BYTES", defaults.lag_threshold_bytes),
                degrade_after_failed_sweeps=integer(
                    "RECONCILE_DEGRADE_AFTER_FAILED_SWEEPS", defaults.degrade_after_failed_sweeps
                ),
                degrade_after_restarts=integer("RECONCILE_DEGRADE_AFTER_RESTARTS", defaults.degrade_after_restarts),
                restart_window=minutes("RECONCILE_RESTART_WINDOW_MINUTES", defaults.restart_window),
                stuck_after=minutes("RECONCILE_STUCK_AFTER_MINUTES", defaults.stuck_after),
            )
        except ReconcileSettingsInvalid as exc:
            raise ReconcileSettingsInvalid(f"reconcile settings: {exc}") from None


@dataclass(frozen=True)
class ConnectorObservation:
    """One connector as a sweep found it."""

    name: str
    state: ConnectorState
    failed_tasks: tuple[int, ...] = ()
    trace_summary: str | None = None

    @property
    def failed(self) -> bool:
        return self.state == "FAILED"


@dataclass(frozen=True)
class SlotObservation:
    """The pipeline's replication slot: absent, or present with its activity and lag."""

    name: str
    exists: bool
    active: bool = False
    lag_bytes: int | None = None  # None for a slot that has never confirmed a position


@dataclass(frozen=True)
class HealthRecord:
    """What reconciliation remembers of a pipeline between sweeps (kept on its registry entry)."""

    failed_sweeps: int = 0  # consecutive sweeps that found a connector or task FAILED
    restarts: tuple[str, ...] = ()  # ISO-8601 times of the restarts within the restart window
    slot_lag_bytes: int | None = None
    checked_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "failed_sweeps": self.failed_sweeps,
            "restarts": list(self.restarts),
            "slot_lag_bytes": self.slot_lag_bytes,
            "checked_at": self.checked_at,
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any] | None) -> HealthRecord:
        if not document:
            return cls()
        lag = document.get("slot_lag_bytes")
        return cls(
            failed_sweeps=int(document.get("failed_sweeps", 0)),
            restarts=tuple(str(at) for at in document.get("restarts", ())),
            slot_lag_bytes=None if lag is None else int(lag),
            checked_at=document.get("checked_at"),
        )


@dataclass(frozen=True)
class Assessment:
    """The outcome of `assess`: the status to record, the record to keep, and why."""

    status: PipelineStatus
    health: HealthRecord
    problems: tuple[str, ...] = field(default=())  # why the pipeline is DEGRADED; empty when it is not


def classify_connector(name: str, status: Mapping[str, Any] | None) -> ConnectorObservation:
    """A connector's state from Connect's status document (`GET /connectors/{name}/status`), or MISSING for None.

    FAILED when the connector or any task failed; RUNNING when the connector
    and every task (at least one) run; PAUSED when the connector is paused;
    PENDING for anything else (starting, rebalancing, restarting).
    """
    if status is None:
        return ConnectorObservation(name, "MISSING")
    connector = status.get("connector") or {}
    connector_state = connector.get("state", "UNASSIGNED")
    tasks = status.get("tasks") or []
    failed_tasks = tuple(sorted(int(task.get("id", -1)) for task in tasks if task.get("state") == "FAILED"))
    if connector_state == "FAILED" or failed_tasks:
        traces = [connector.get("trace")] if connector_state == "FAILED" else []
        traces += [task.get("trace") for task in tasks if task.get("state") == "FAILED"]
        summaries = [summarise_trace(trace) for trace in traces if trace]
        return ConnectorObservation(name, "FAILED", failed_tasks, "; ".join(summaries) or None)
    if connector_state == "PAUSED":
        return ConnectorObservation(name, "PAUSED")
    if connector_state == "RUNNING" and tasks and all(task.get("state") == "RUNNING" for task in tasks):
        return ConnectorObservation(name, "RUNNING")
    return ConnectorObservation(name, "PENDING")


def publication_drift(wanted: Sequence[str], actual: Sequence[str]) -> tuple[list[str], list[str]]:
    """The tables to add to and to remove from a publication that holds `actual` but should hold `wanted`."""
    return sorted(set(wanted) - set(actual)), sorted(set(actual) - set(wanted))


def recent_restarts(restarts: Sequence[str], now: datetime, window: timedelta) -> tuple[str, ...]:
    """The restart times of `restarts` that fall within `window` before `now`, oldest first."""
    return tuple(sorted(at for at in restarts if now - datetime.fromisoformat(at) < window))


def assess(
    status: PipelineStatus,
    previous: HealthRecord,
    settings: ReconcileSettings,
    now: datetime,
    *,
    connectors: Sequence[ConnectorObservation] | None,
    slot: SlotObservation | None,
    restarts_made: int = 0,
    other_problems: Sequence[str] = (),
) -> Assessment:
    """Decide a reconciled pipeline's status from this sweep's observations and its record.

    `connectors` or `slot` is None when that side could not be observed.
    `restarts_made` counts the restarts this sweep asked Connect for;
    `other_problems` are drift the caller found and could not repair. Pure.
    """
    problems: list[str] = list(other_problems)
    failed_sweeps = previous.failed_sweeps
    if connectors is not None:
        failing = [connector for connector in connectors if connector.failed]
        failed_sweeps = failed_sweeps + 1 if failing else 0
        if failing and failed_sweeps >= settings.degrade_after_failed_sweeps:
            names = ", ".join(connector.name for connector in failing)
            problems.append(f"{names} FAILED in {failed_sweeps} sweeps in a row")
        problems += [f"connector {connector.name} is missing" for connector in connectors if connector.state == "MISSING"]

    restarts = recent_restarts(
        [*previous.restarts, *[now.isoformat(timespec="seconds")] * restarts_made], now, settings.restart_window
    )
    if len(restarts) >= settings.degrade_after_restarts:
        hours = settings.restart_window.total_seconds() / 3600
        problems.append(f"{len(restarts)} connector restarts within {hours:g} h")

    slot_lag = previous.slot_lag_bytes
    if slot is not None:
        slot_lag = slot.lag_bytes
        if not slot.exists:
            problems.append(f"replication slot {slot.name} is missing")
        elif slot.lag_bytes is not None and slot.lag_bytes > settings.lag_threshold_bytes:
            problems.append(
                f"replication slot {slot.name} is {slot.lag_bytes} bytes behind "
                f"(threshold {settings.lag_threshold_bytes})"
            )

    health = replace(
        previous,
        failed_sweeps=failed_sweeps,
        restarts=restarts,
        slot_lag_bytes=slot_lag,
        checked_at=now.isoformat(timespec="seconds"),
    )
    if problems:
        return Assessment(PipelineStatus.DEGRADED, health, tuple(problems))
    if connectors is None or slot is None:
        return Assessment(status, health)
    return Assessment(PipelineStatus.ACTIVE, health)


def is_stuck(status: PipelineStatus, updated_at: str, now: datetime, settings: ReconcileSettings) -> bool:
    """True for a PROVISIONING or DELETING entry not updated for longer than `settings.stuck_after`."""
    return status in IN_FLIGHT_STATUSES and now - datetime.fromisoformat(updated_at) > settings.stuck_after
