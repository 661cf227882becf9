"""Which resources carrying the `cdcflow` prefix belong to no live pipeline: pure classification.

A resource is cdcflow's when its name has the shape `lambdas.naming` gives
it (`cdcflow_<id>`, `cdcflow-<id>-source`, `cdcflow/<id>/replication`, ...);
names that merely start with `cdcflow` but have another shape are not ours
and are never reported, so a repair cannot delete them.

It is expected where a live pipeline's spec puts it: a slot, publication or
heartbeat table in the pipeline's source database, its role on the source's
server (roles are per server, not per database), its connectors on its
Connect cluster, its topics on its Kafka cluster, its replication secret. A
live pipeline is one in PROVISIONING, ACTIVE, DEGRADED or DELETING. Anything
else is an orphan: no registry entry at all, an entry that is DELETED, or one
that is FAILED (its workflow ended and its compensations should have removed
everything, so what is left leaked), or a resource in a place the pipeline's
spec does not name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lambdas.kafka_topics import pipeline_topics
from lambdas.naming import HEARTBEAT_SCHEMA, HEARTBEAT_TOPIC_PREFIX, NOTIFICATION_TOPIC_PREFIX, PLATFORM_PREFIX
from lambdas.registry import PipelineStatus
from lambdas.spec import PipelineSpec

ResourceKind = Literal["slot", "publication", "role", "heartbeat_table", "connector", "topic", "secret"]

_ID = r"[a-z][a-z0-9_]{2,39}"  # the spec schema's pipeline id
_PATTERNS: dict[ResourceKind, re.Pattern[str]] = {
    "slot": re.compile(rf"{PLATFORM_PREFIX}_({_ID})"),
    "publication": re.compile(rf"{PLATFORM_PREFIX}_({_ID})"),
    "role": re.compile(rf"{PLATFORM_PREFIX}_({_ID})"),
    "heartbeat_table": re.compile(rf"{re.escape(HEARTBEAT_SCHEMA)}\.heartbeat_({_ID})"),
    "connector": re.compile(rf"{PLATFORM_PREFIX}-({_ID})-(?:source|sink)"),
    # Topics of pipelines whose `kafka.topic_prefix` is the platform's: `cdcflow.<id>.<schema>.<table>`.
    "topic": re.compile(rf"(?:(?:{re.escape(HEARTBEAT_TOPIC_PREFIX)}|{re.escape(NOTIFICATION_TOPIC_PREFIX)})\.)?"
                        rf"{PLATFORM_PREFIX}\.({_ID})(?:\..+)?"),
    "secret": re.compile(rf"{PLATFORM_PREFIX}/({_ID})/replication"),
}


@dataclass(frozen=True)
class Orphan:
    """A cdcflow resource no live pipeline owns, and what became of it."""

    kind: ResourceKind
    name: str
    location: str  # `host:port/database`, `host:port`, a Connect URL, Kafka's bootstrap servers, or `secretsmanager`
    pipeline_id: str
    reason: str
    deleted: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "location": self.location,
            "pipeline_id": self.pipeline_id,
            "reason": self.reason,
            "deleted": self.deleted,
            "error": self.error,
        }


def pipeline_id_of(kind: ResourceKind, name: str) -> str | None:
    """The pipeline id in a cdcflow resource name of `kind`, or None when the name is not cdcflow's shape."""
    match = _PATTERNS[kind].fullmatch(name)
    return match.group(1) if match else None


def source_database(spec: PipelineSpec) -> str:
    """The location of a pipeline's per-database objects: `host:port/database`."""
    return f"{source_server(spec)}/{spec.source.database}"


def source_server(spec: PipelineSpec) -> str:
    """The location of a pipeline's role: `host:port` (roles belong to the server)."""
    return f"{spec.source.host}:{spec.source.port}"


def expected_names(kind: ResourceKind, spec: PipelineSpec) -> list[str]:
    """The names of `kind` the pipeline of `spec` owns."""
    names = spec.names
    match kind:
        case "slot":
            return [names.replication_slot]
        case "publication":
            return [names.publication]
        case "role":
            return [names.replication_role]
        case "heartbeat_table":
            return [names.heartbeat_qualified]
        case "connector":
            return [names.source_connector, names.sink_connector]
        case "topic":
            return pipeline_topics(spec)
        case "secret":
            return [names.replication_secret]


def expected_location(kind: ResourceKind, spec: PipelineSpec) -> str:
    """Where the pipeline of `spec` keeps its resources of `kind` (the `location` of an `Orphan`)."""
    match kind:
        case "slot" | "publication" | "heartbeat_table":
            return source_database(spec)
        case "role":
            return source_server(spec)
        case "connector":
            return spec.connect.url
        case "topic":
            return spec.kafka.bootstrap_servers
        case "secret":
            return "secretsmanager"


def find_orphans(
    kind: ResourceKind,
    location: str,
    names: Iterable[str],
    live_specs: Iterable[PipelineSpec],
    statuses: Mapping[str, PipelineStatus],
) -> list[Orphan]:
    """The cdcflow resources of `kind` among `names`, found at `location`, that no live pipeline owns.

    `live_specs` are the specs of the live pipelines; `statuses` maps every
    registered pipeline id to its status and only words the reason. Names
    without the cdcflow shape are skipped. Pure; sorted by name.
    """
    expected = {
        name for spec in live_specs if expected_location(kind, spec) == location for name in expected_names(kind, spec)
    }
    orphans = []
    for name in sorted(set(names) - expected):
        pipeline_id = pipeline_id_of(kind, name)
        if pipeline_id is None:
            continue
        orphans.append(Orphan(kind, name, location, pipeline_id, _reason(pipeline_id, statuses.get(pipeline_id))))
    return orphans


def _reason(pipeline_id: str, status: PipelineStatus | None) -> str:
    if status is None:
        return f"pipeline {pipeline_id!r} has no registry entry"
    if status in (PipelineStatus.DELETED, PipelineStatus.FAILED):
        return f"pipeline {pipeline_id!r} is {status.value}"
    return f"pipeline {pipeline_id!r} ({status.value}) does not keep this resource here"
