"""Timestamps as Step Functions writes and reads them (RFC 3339, UTC, milliseconds)."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_timestamp(text: str) -> float | None:
    """Seconds since the epoch for an RFC 3339 timestamp with a zone (`2016-03-14T01:59:00Z`), else None."""
    if not isinstance(text, str) or "T" not in text:
        return None
    try:
        moment = datetime.fromisoformat(text.upper() if text.endswith("z") else text)
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def iso_timestamp(epoch_seconds: float) -> str:
    """`2026-11-22T20:37:57.123Z`: the form of `$$.Execution.StartTime` and `$$.State.EnteredTime`."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def as_datetime(epoch_seconds: float) -> datetime:
    """The aware UTC datetime boto3 returns for a timestamp field."""
    return datetime.fromtimestamp(epoch_seconds, tz=UTC)
