"""What reconciliation counts as drift, and when a pipeline is DEGRADED: pure decisions, no I/O.

The sweep (`lambdas.reconcile.sweep`) observes connectors, slots and publications,
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
  as it was: reconciliation does not guess;
- a PAUSED pipeline is as its team asked: its connectors are meant to be
  PAUSED (neither restarted nor counted as drift), and it stays PAUSED
  whatever is found; a missing slot or connector, a connector found
  RUNNING or FAILED, or a slot lag beyond the threshold is reported as a
  problem, and the lag (the WAL the slot retains while nothing reads it) is
  recorded as for any pipeline.
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

# Statuses whose pipelines are checked by a sweep (PAUSED and BROKEN ones are observed, never repaired).
RECONCILED_STATUSES = frozenset(
    {PipelineStatus.ACTIVE, PipelineStatus.DEGRADED, PipelineStatus.PAUSED, PipelineStatus.BROKEN}
)
# Statuses whose pipelines own their resources: these are never orphans.
LIVE_STATUSES = frozenset(
    {PipelineStatus.PROVISIONING, PipelineStatus.ACTIVE, PipelineStatus.DEGRADED, PipelineStatus.PAUSED,
     PipelineStatus.BROKEN, PipelineStatus.DELETING}
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
    wal_status: str | None = None  # reserved, extended, unreserved, lost
    confirmed_flush_lsn: int | None = None
    decoded_txns: int | None = None  # the slot's decoding statistics (total_txns): they only grow while it lives


@dataclass(frozen=True)
class HealthRecord:
    """What reconciliation remembers of a pipeline between sweeps (kept on its registry entry)."""

    failed_sweeps: int = 0  # consecutive sweeps that found a connector or task FAILED
    restarts: tuple[str, ...] = ()  # ISO-8601 times of the restarts within the restart window
    slot_lag_bytes: int | None = None
    checked_at: str | None = None
    # The slot as last seen, for telling it from one re-created under its name: recorded for one provisioning
    # (`execution_arn`) on one run of the server (`server_started_at`).
    execution_arn: str | None = None
    server_started_at: str | None = None
    slot_decoded_txns: int | None = None
    slot_inactive_since: str | None = None
    broken: str | None = None  # why the slot was found broken, once it was

    def to_dict(self) -> dict[str, Any]:
        return {
            "failed_sweeps": self.failed_sweeps,
            "restarts": list(self.restarts),
            "slot_lag_bytes": self.slot_lag_bytes,
            "checked_at": self.checked_at,
            "execution_arn": self.execution_arn,
            "server_started_at": self.server_started_at,
            "slot_decoded_txns": self.slot_decoded_txns,
            "slot_inactive_since": self.slot_inactive_since,
            "broken": self.broken,
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any] | None) -> HealthRecord:
        if not document:
            return cls()
        lag = document.get("slot_lag_bytes")
        decoded = document.get("slot_decoded_txns")
        return cls(
            failed_sweeps=int(document.get("failed_sweeps", 0)),
            restarts=tuple(str(at) for at in document.get("restarts", ())),
            slot_lag_bytes=None if lag is None else int(lag),
            checked_at=document.get("checked_at"),
            execution_arn=document.get("execution_arn"),
            server_started_at=document.get("server_started_at"),
            slot_decoded_txns=None if decoded is None else int(decoded),
            slot_inactive_since=document.get("slot_inactive_since"),
            broken=document.get("broken"),
        )


@dataclass(frozen=True)
class Assessment:
    """The outcome of `assess`: the status to record, the record to keep, and why."""

    status: PipelineStatus
    health: HealthRecord
    problems: tuple[str, ...] = field(default=())  # why the pipeline is DEGRADED (or what is wrong with a PAUSED one)


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


def format_lsn(position: int) -> str:
    """A WAL position as PostgreSQL writes it: 24125048 -> `0/1701C78`."""
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def slot_broken(
    slot: SlotObservation | None,
    previous: HealthRecord,
    *,
    execution_arn: str | None,
    server_started_at: str | None,
    connector_lsn: int | None,
) -> str | None:
    """Why the pipeline's slot no longer holds every change since the connector's position; None if nothing says so.

    The slot is broken when it is gone (dropped by hand: Debezium would
    create a new one from the current WAL position and skip what was written
    meanwhile); when PostgreSQL invalidated it (`wal_status` lost); or when it
    was re-created under its name: its confirmed position is beyond the
    position the source connector's committed offsets resume from (the
    connector flushes the slot only after committing), or its decoding
    statistics went back since the last sweep while the server kept running
    (they only grow for one slot; a server restart may reset them, and then
    nothing is concluded). `previous` is compared only when it was recorded
    for the same provisioning (`execution_arn`) and was not broken (a
    rebuilt pipeline starts over). Pure.
    """
    if slot is None:
        return None
    if not slot.exists:
        return (f"replication slot {slot.name} is gone: the changes written since it vanished may never reach the "
                "sink (a connector would create a new slot from the current WAL position)")
    if slot.wal_status == "lost":
        return (f"replication slot {slot.name} was invalidated (wal_status lost): PostgreSQL removed WAL it had not "
                "yet delivered")
    if connector_lsn is not None and slot.confirmed_flush_lsn is not None and slot.confirmed_flush_lsn > connector_lsn:
        return (f"replication slot {slot.name} confirms {format_lsn(slot.confirmed_flush_lsn)}, beyond the source "
                f"connector's committed offset {format_lsn(connector_lsn)}: it was re-created, and the changes in "
                "between were never read")
    comparable = (previous.execution_arn is not None and previous.execution_arn == execution_arn
                  and previous.server_started_at is not None and previous.server_started_at == server_started_at
                  and previous.broken is None)
    if (comparable and previous.slot_decoded_txns is not None and slot.decoded_txns is not None
            and slot.decoded_txns < previous.slot_decoded_txns):
        return (f"replication slot {slot.name} was dropped and created again: its decoding statistics went back "
                f"from {previous.slot_decoded_txns} to {slot.decoded_txns} transactions while the server kept "
                "running, so changes written in between may never reach the sink")
    return None


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
    broken: str | None = None,
    execution_arn: str | None = None,
    server_started_at: str | None = None,
) -> Assessment:
    """Decide a reconciled pipeline's status from this sweep's observations and its record.

    `connectors` or `slot` is None when that side could not be observed.
    `restarts_made` counts the restarts this sweep asked Connect for;
    `other_problems` are drift the caller found and could not repair;
    `broken` is why the slot cannot be trusted (`slot_broken`): the pipeline
    becomes BROKEN, from ACTIVE, DEGRADED or PAUSED, and a BROKEN one stays
    so until something else (a rebuild, a teardown) changes its status.
    `execution_arn` and `server_started_at` are recorded with the slot's
    statistics for the next sweep's comparison. Pure.
    """
    problems: list[str] = list(other_problems)
    if broken:
        problems.insert(0, broken)
    failed_sweeps = previous.failed_sweeps
    paused = status is PipelineStatus.PAUSED
    if connectors is not None and paused:
        problems += [f"connector {connector.name} is {connector.state} while the pipeline is PAUSED"
                     for connector in connectors if connector.state not in ("PAUSED", "MISSING")]
        problems += [f"connector {connector.name} is missing" for connector in connectors if connector.state == "MISSING"]
    elif connectors is not None:
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
    identity: dict[str, Any] = {}
    if slot is not None:
        slot_lag = slot.lag_bytes
        if not slot.exists and not broken:
            problems.append(f"replication slot {slot.name} is missing")
        elif slot.lag_bytes is not None and slot.lag_bytes > settings.lag_threshold_bytes:
            problems.append(
                f"replication slot {slot.name} is {slot.lag_bytes} bytes behind "
                f"(threshold {settings.lag_threshold_bytes})"
            )
        inactive = slot.exists and not slot.active
        identity = {
            "execution_arn": execution_arn,
            "server_started_at": server_started_at,
            "slot_decoded_txns": slot.decoded_txns,
            "slot_inactive_since": (previous.slot_inactive_since or now.isoformat(timespec="seconds"))
            if inactive else None,
        }

    is_broken = bool(broken) or status is PipelineStatus.BROKEN
    health = replace(
        previous,
        failed_sweeps=failed_sweeps,
        restarts=restarts,
        slot_lag_bytes=slot_lag,
        checked_at=now.isoformat(timespec="seconds"),
        broken=(broken or previous.broken) if is_broken else None,
        **identity,
    )
    if is_broken:
        return Assessment(PipelineStatus.BROKEN, health, tuple(problems))
    if paused:
        return Assessment(PipelineStatus.PAUSED, health, tuple(problems))
    if problems:
        return Assessment(PipelineStatus.DEGRADED, health, tuple(problems))
    if connectors is None or slot is None:
        return Assessment(status, health)
    return Assessment(PipelineStatus.ACTIVE, health)


def is_stuck(status: PipelineStatus, updated_at: str, now: datetime, settings: ReconcileSettings) -> bool:
    """True for a PROVISIONING or DELETING entry not updated for longer than `settings.stuck_after`."""
    return status in IN_FLIGHT_STATUSES and now - datetime.fromisoformat(updated_at) > settings.stuck_after
