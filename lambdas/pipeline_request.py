"""What a team asks for, and how it becomes the spec the workflows run on.

A team's pipeline spec (`schemas/pipeline_request.schema.json`) names the
tables of a registered source connection, a registered Kafka cluster and a
registered sink. It has no field for a host, URL or secret: those come from
the connections, which the platform registers (`lambdas.connections`).
`resolve` checks that the owning team may use each connection and fills
them in, giving the `PipelineSpec` that the API passes to ProvisionPipeline.

Refusals name the field: `ConnectionRefused` (403) when the team may not use
a connection that exists, `RequestInvalid` (422) for everything else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from lambdas.connections import Connection, Kind
from lambdas.spec import MAX_SPEC_BYTES, PipelineSpec, parse_spec, validator_for, violations

SCHEMA_PATH = Path(__file__).parent / "schemas" / "pipeline_request.schema.json"

ConnectionLookup = Callable[[str], Connection | None]


@dataclass(frozen=True)
class Problem:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class RequestInvalid(ValueError):
    """The request does not satisfy the schema or names a connection that cannot serve it."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


class ConnectionRefused(PermissionError):
    """The owning team may not use a connection the request names."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def schema() -> dict[str, Any]:
    return validator_for(SCHEMA_PATH).schema


def validate(document: Any) -> dict[str, Any]:
    """The request document if it satisfies the schema; `RequestInvalid` naming every offending field."""
    if len(json.dumps(document, default=str)) > MAX_SPEC_BYTES:
        raise RequestInvalid([Problem("(spec)", f"larger than {MAX_SPEC_BYTES} bytes")])
    problems = violations(SCHEMA_PATH, document)
    if problems:
        raise RequestInvalid([Problem(field, message) for field, message in problems])
    return document


def _connection(lookup: ConnectionLookup, field: str, name: str, kind: Kind, team: str) -> Connection:
    connection = lookup(name)
    if connection is None:
        raise RequestInvalid([Problem(field, f"no {kind} connection {name!r} is registered")])
    if connection.kind != kind:
        raise RequestInvalid([Problem(field, f"connection {name!r} is a {connection.kind}, not a {kind}")])
    if not connection.allows(team):
        raise ConnectionRefused(field, f"team {team!r} may not use {kind} connection {name!r}")
    return connection


def resolve(document: dict[str, Any], lookup: ConnectionLookup) -> PipelineSpec:
    """The spec ProvisionPipeline runs on: `document` (validated, with its owner set) and its connections.

    The source's RDS instance and whether its reboot waits for approval come
    from the source connection alone: a team cannot name an instance or skip
    the approval the platform asked for.
    """
    team = document["owner"]
    source = _connection(lookup, "source.connection", document["source"]["connection"], "source", team)
    cluster = _connection(lookup, "cluster", document["cluster"], "cluster", team)
    sink = _connection(lookup, "sink.connection", document["sink"]["connection"], "sink", team)

    resolved_source = {
        "connection": source.name,
        "host": source.setting("host"), "port": source.setting("port"), "database": source.setting("database"),
        "admin_secret": source.setting("admin_secret"), "tables": document["source"]["tables"],
    }
    for optional in ("sslmode", "ca_file", "connect_ca_file", "rds_instance_id"):
        if source.setting(optional) is not None:
            resolved_source[optional] = source.setting(optional)
    if source.setting("rds_instance_id"):
        resolved_source["approval_required"] = source.setting("reboot_policy") != "automatic"

    resolved_sink: dict[str, Any] = {"connection": sink.name, "type": sink.setting("type")}
    for key in ("host", "port", "database", "secret", "url", "sslmode", "ca_file", "connect_ca_file"):
        if sink.setting(key) is not None:
            resolved_sink[key] = sink.setting(key)
    if sink.setting("type") == "jdbc":
        resolved_sink["schema"] = document["sink"].get("schema", "public")
    for key in ("truncate", "key_columns"):  # the team's choices for its tables, not the connection's
        if document["sink"].get(key) is not None:
            resolved_sink[key] = document["sink"][key]

    resolved = {
        "pipeline_id": document["pipeline_id"],
        "owner": team,
        "source": resolved_source,
        "kafka": {**document.get("kafka", {}), "cluster": cluster.name,
                  "bootstrap_servers": cluster.setting("bootstrap_servers"),
                  **{key: cluster.setting(key) for key in ("security_protocol", "sasl_mechanism", "secret", "ca_file")
                     if cluster.setting(key) is not None}},
        "connect": {"url": cluster.setting("connect_url")},
        "sink": resolved_sink,
    }
    if "debezium" in document:
        resolved["debezium"] = document["debezium"]
    if document.get("alarms"):
        resolved["alarms"] = document["alarms"]
    return parse_spec(resolved)


def request_view(spec: PipelineSpec | dict[str, Any]) -> dict[str, Any]:
    """The team's view of a resolved spec: what it asked for, with connections named and nothing they hold.

    A spec registered before connections existed has none to name; its
    parts are then left out rather than shown with their hosts.
    """
    document = spec.to_dict() if isinstance(spec, PipelineSpec) else spec
    source, sink, kafka = document["source"], document["sink"], dict(document["kafka"])
    view: dict[str, Any] = {
        "pipeline_id": document["pipeline_id"],
        "owner": document["owner"],
        "source": {key: source[key] for key in ("connection", "tables") if source.get(key) is not None},
        "kafka": {key: kafka[key] for key in ("topic_prefix", "partitions", "replication_factor", "retention_ms")
                  if kafka.get(key) is not None},
        "sink": {key: sink[key] for key in ("connection", "schema", "truncate", "key_columns")
                 if sink.get(key) is not None and
                 (key != "schema" or sink.get("type") == "jdbc")},
    }
    if kafka.get("cluster"):
        view["cluster"] = kafka["cluster"]
    if document.get("debezium"):
        view["debezium"] = document["debezium"]
    if document.get("alarms"):
        view["alarms"] = {key: value for key, value in document["alarms"].items() if value is not None}
    return view
