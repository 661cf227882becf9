"""Reconciliation's view of the Kafka Connect and Kafka clusters.

Each function makes a bounded number of calls per cluster, whatever the
number of pipelines on it: one request reads every connector's status, one
admin connection lists every topic.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kafka.errors as kafka_errors

from lambdas.kafka_topics import ADMIN_TIMEOUT_MS, kafka_admin
from lambdas.reconcile.policy import ConnectorObservation, classify_connector


def observe_connectors(statuses: dict[str, dict[str, Any]], names: Iterable[str]) -> list[ConnectorObservation]:
    """The observations of connectors `names`, MISSING for those the cluster does not have."""
    return [classify_connector(name, statuses.get(name)) for name in names]


# The WAL positions a Debezium PostgreSQL offset carries: the last event's, the last processed and committed.
_OFFSET_LSN_KEYS = ("lsn", "lsn_proc", "lsn_commit")


def committed_lsn(offsets: list[dict[str, Any]] | None) -> int | None:
    """The furthest WAL position a Debezium PostgreSQL connector's committed offsets name; None without one.

    Debezium confirms a position to its slot only after Connect committed the
    offset holding it, so a slot that confirms more than this was not the one
    the connector read. Pure.
    """
    positions = [
        int(value) for entry in offsets or [] for key, value in (entry.get("offset") or {}).items()
        if key in _OFFSET_LSN_KEYS and not isinstance(value, bool) and str(value).isdigit()
    ]
    return max(positions) if positions else None


def list_topics(bootstrap_servers: str) -> list[str]:
    """Every topic of the cluster, sorted, over one admin connection. Raises `KafkaUnavailable`."""
    with kafka_admin(bootstrap_servers) as admin:
        return sorted(admin.list_topics())


def delete_orphan_topics(bootstrap_servers: str, topics: list[str]) -> dict[str, str | None]:
    """Delete `topics` in one request; returns each topic's error (None when deleted or already gone).

    Raises `KafkaUnavailable` when the cluster does not answer at all.
    """
    if not topics:
        return {}
    with kafka_admin(bootstrap_servers) as admin:
        result = admin.delete_topics(topics, timeout_ms=ADMIN_TIMEOUT_MS, raise_errors=False)
    outcomes: dict[str, str | None] = {}
    for outcome in result["topics"]:
        error = kafka_errors.for_code(outcome["error_code"])
        gone = error in (kafka_errors.NoError, kafka_errors.UnknownTopicOrPartitionError)
        outcomes[outcome["name"]] = None if gone else f"{error.__name__}: {outcome.get('error_message') or ''}".rstrip(": ")
    return outcomes
