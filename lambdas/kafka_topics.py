"""The pipeline's Kafka topics: create them before the source connector, delete them in compensation.

Topics are created up front, with the spec's partitions, replication factor
and retention, instead of letting Debezium or the broker auto-create them
with cluster defaults. Every Kafka call is bounded (`ADMIN_TIMEOUT_MS`); an
unreachable or unhealthy cluster raises `KafkaUnavailable`, which the
workflow's `kafka` Retry policy retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from lambdas.errors import KafkaUnavailable, StepError
from lambdas.kafka_security import (
    KafkaSecurity,
    admin_client_options,
    classify_failure,
    connection_failures,
    kafka_security,
)
from lambdas.spec import PipelineSpec

logger = logging.getLogger(__name__)

ADMIN_TIMEOUT_MS = 10_000
DELETE_VISIBLE_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.25
CLEANUP_POLICY = "delete"


class TopicConfigMismatch(StepError):
    """A pipeline topic exists with partitions, replication or retention other than the spec's."""


class TopicRequestRejected(StepError):
    """Kafka refused to create or delete a topic for a reason retrying cannot fix (e.g. too few brokers)."""


def pipeline_topics(spec: PipelineSpec) -> list[str]:
    """Every topic the pipeline uses: one per captured table, the heartbeat and signal tables', Debezium's
    heartbeat topic and its notification topic (incremental snapshot progress)."""
    names = spec.names
    tables = [*spec.source.tables, names.heartbeat_qualified, names.signal_qualified]
    return [*(names.table_topic(table) for table in tables), names.heartbeat_topic, names.notification_topic]


def desired_topic_configs(spec: PipelineSpec) -> dict[str, str]:
    return {"retention.ms": str(spec.kafka.retention_ms), "cleanup.policy": CLEANUP_POLICY}


@contextmanager
def kafka_admin(bootstrap_servers: str, security: KafkaSecurity | None = None) -> Iterator[KafkaAdminClient]:
    """An admin client for the cluster, closed on exit; Kafka's transient failures become `KafkaUnavailable`.

    `security` (`lambdas.kafka_security`; default PLAINTEXT) says how to
    authenticate; a refused SASL login is `KafkaAuthenticationFailed` and a
    refused TLS handshake `KafkaTlsRejected`, both permanent. Blocks for at
    most about `ADMIN_TIMEOUT_MS` while connecting.
    """
    security = security or KafkaSecurity()
    options = admin_client_options(security)
    try:
        with connection_failures() as logged:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap_servers.split(","),
                client_id="cdcflow",
                request_timeout_ms=ADMIN_TIMEOUT_MS,
                bootstrap_timeout_ms=ADMIN_TIMEOUT_MS,
                **options,
            )
    except kafka_errors.KafkaError as exc:
        named = classify_failure(exc, bootstrap_servers, security, logged)
        if named is not None:
            raise named from None
        if not isinstance(exc, kafka_errors.RetriableError):
            raise
        # kafka-python 3 reports "no broker" as KafkaTimeoutError
        during_login = ""
        if security.uses_sasl and any("socket disconnected" in message for message in logged):
            # A broker that does not offer the mechanism, or refuses the login, may just hang up on it.
            during_login = (f" (it closed the connection during the {security.sasl_mechanism} login: the broker "
                            f"may not offer {security.sasl_mechanism}, or refused the login)")
        raise KafkaUnavailable(
            f"Kafka at {bootstrap_servers} did not answer within {ADMIN_TIMEOUT_MS // 1000} s{during_login}: "
            f"{type(exc).__name__}"
        ) from exc
    try:
        yield admin
    except kafka_errors.RetriableError as exc:  # includes KafkaConnectionError and timeouts
        raise KafkaUnavailable(f"Kafka at {bootstrap_servers} failed a request: {exc}") from exc
    finally:
        admin.close()


def ensure_topics(spec: PipelineSpec) -> dict[str, Any]:
    """Create the pipeline's missing topics; check that the existing ones match the spec.

    Idempotent: a second run creates nothing. Existing topics are checked
    before anything is created, so a mismatch (`TopicConfigMismatch`, naming
    the topic and the difference) leaves the cluster as it was. A topic that
    another run creates at the same moment is checked like an existing one.
    Returns `{"topics": [...], "created": [...], "existing": [...]}`.
    """
    topics = pipeline_topics(spec)
    with kafka_admin(spec.kafka.bootstrap_servers, kafka_security(spec.kafka)) as admin:
        existing = [topic for topic in topics if topic in set(admin.list_topics())]
        _check_topics(admin, spec, existing)
        missing = [topic for topic in topics if topic not in existing]
        created, raced = _create_topics(admin, spec, missing) if missing else ([], [])
        _check_topics(admin, spec, raced)
    if created:
        logger.info("Created topics %s", created)
    return {"topics": topics, "created": created, "existing": existing + raced}


def delete_topics(
    spec: PipelineSpec,
    *,
    timeout_seconds: float = DELETE_VISIBLE_TIMEOUT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """Delete the pipeline's topics that exist and block until the cluster no longer lists them.

    Idempotent: returns the topics it deleted, `[]` when none existed. Raises
    `KafkaUnavailable` if the deletion is not visible within `timeout_seconds`
    (running again is safe).
    """
    wanted = pipeline_topics(spec)
    with kafka_admin(spec.kafka.bootstrap_servers, kafka_security(spec.kafka)) as admin:
        present = [topic for topic in wanted if topic in set(admin.list_topics())]
        if not present:
            return []
        result = admin.delete_topics(present, timeout_ms=ADMIN_TIMEOUT_MS, raise_errors=False)
        for outcome in result["topics"]:
            error = kafka_errors.for_code(outcome["error_code"])
            if error not in (kafka_errors.NoError, kafka_errors.UnknownTopicOrPartitionError):
                _raise_for(error, outcome, f"deleting topic {outcome['name']}")
        deadline = clock() + timeout_seconds
        while remaining := set(present) & set(admin.list_topics()):
            if clock() >= deadline:
                raise KafkaUnavailable(f"topics {sorted(remaining)} still listed {timeout_seconds:g} s after deletion")
            sleep(POLL_SECONDS)
    logger.info("Deleted topics %s", present)
    return present


def list_topics_with_prefix(bootstrap_servers: str, prefix: str) -> list[str]:
    """Every topic whose name starts with `prefix`, sorted (for leak checks and reconciliation)."""
    with kafka_admin(bootstrap_servers) as admin:
        return sorted(topic for topic in admin.list_topics() if topic.startswith(prefix))


def _create_topics(admin: KafkaAdminClient, spec: PipelineSpec, topics: list[str]) -> tuple[list[str], list[str]]:
    """Create `topics`; returns (created, already created by someone else meanwhile)."""
    request = {
        topic: {
            "num_partitions": spec.kafka.partitions,
            "replication_factor": spec.kafka.replication_factor,
            "configs": desired_topic_configs(spec),
        }
        for topic in topics
    }
    result = admin.create_topics(request, timeout_ms=ADMIN_TIMEOUT_MS, raise_errors=False)
    created, raced = [], []
    for outcome in result["topics"]:
        error = kafka_errors.for_code(outcome["error_code"])
        if error is kafka_errors.NoError:
            created.append(outcome["name"])
        elif error is kafka_errors.TopicAlreadyExistsError:
            raced.append(outcome["name"])
        else:
            _raise_for(error, outcome, f"creating topic {outcome['name']}")
    if created:
        try:
            admin.wait_for_topics(created, timeout_ms=ADMIN_TIMEOUT_MS)
        except kafka_errors.KafkaTimeoutError as exc:
            raise KafkaUnavailable(f"created topics without leaders after {ADMIN_TIMEOUT_MS // 1000} s: {exc}") from exc
    return created, raced


def _check_topics(admin: KafkaAdminClient, spec: PipelineSpec, topics: list[str]) -> None:
    """Raise `TopicConfigMismatch` naming every difference between `topics` and the spec."""
    if not topics:
        return
    described = {topic["name"]: topic for topic in admin.describe_topics(topics)}
    configs = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, list(desired_topic_configs(spec))) for topic in topics],
        config_filter="all",
    )["topic"]
    problems = []
    for topic in topics:
        partitions = described[topic]["partitions"]
        replication = max((len(p["replica_nodes"]) for p in partitions), default=0)
        if len(partitions) != spec.kafka.partitions:
            problems.append(f"{topic}: {len(partitions)} partitions, spec wants {spec.kafka.partitions}")
        if replication != spec.kafka.replication_factor:
            problems.append(f"{topic}: replication factor {replication}, spec wants {spec.kafka.replication_factor}")
        for key, wanted in desired_topic_configs(spec).items():
            actual = configs[topic].get(key, {}).get("value")
            if actual != wanted:
                problems.append(f"{topic}: {key}={actual}, spec wants {wanted}")
    if problems:
        raise TopicConfigMismatch("; ".join(problems))


def _raise_for(error: type[kafka_errors.KafkaError], outcome: dict[str, Any], doing: str) -> None:
    message = f"{doing}: {error.__name__}: {outcome.get('error_message') or ''}".rstrip(": ")
    if getattr(error, "retriable", False):
        raise KafkaUnavailable(message)
    raise TopicRequestRejected(message)
