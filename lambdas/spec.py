"""The pipeline spec: its JSON Schema, validation, and a typed model.

`parse_spec` is the one entry point: it validates a raw document against
`schemas/pipeline_spec.schema.json`, fills defaults, and returns an immutable
`PipelineSpec`. Errors name the offending field, e.g.
`source.tables[1]: 'public.Orders; drop' does not match ...`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from lambdas.errors import SpecInvalid
from lambdas.naming import PipelineNames

SCHEMA_PATH = Path(__file__).parent / "schemas" / "pipeline_spec.schema.json"
MAX_SPEC_BYTES = 64 * 1024


@cache
def validator_for(path: Path) -> Draft202012Validator:
    """The validator of the JSON Schema at `path`, read once."""
    return Draft202012Validator(json.loads(path.read_text()))


def schema() -> dict[str, Any]:
    return validator_for(SCHEMA_PATH).schema


def violations(path: Path, document: Any, whole: str = "(spec)") -> list[tuple[str, str]]:
    """Every violation of the schema at `path` by `document`, as (field, message), ordered by field."""
    errors = sorted(validator_for(path).iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    return [(field_path(error, whole), error.message) for error in errors]


@dataclass(frozen=True)
class SourceSpec:
    host: str
    port: int
    database: str
    admin_secret: str
    tables: tuple[str, ...]
    rds_instance_id: str | None = None
    approval_required: bool = True  # a reboot waits for a person unless the connection's policy is automatic
    connection: str | None = None
    sslmode: str | None = None
    ca_file: str | None = None
    connect_ca_file: str | None = None


@dataclass(frozen=True)
class KafkaSpec:
    bootstrap_servers: str
    topic_prefix: str = "cdcflow"
    partitions: int = 1
    replication_factor: int = 1
    retention_ms: int = 604_800_000
    cluster: str | None = None
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    secret: str | None = None
    ca_file: str | None = None


@dataclass(frozen=True)
class ConnectSpec:
    url: str


@dataclass(frozen=True)
class SinkSpec:
    type: Literal["jdbc", "opensearch"]
    host: str | None = None
    port: int | None = None
    database: str | None = None
    secret: str | None = None
    schema: str = "public"
    url: str | None = None
    connection: str | None = None
    sslmode: str | None = None
    ca_file: str | None = None
    connect_ca_file: str | None = None
    truncate: Literal["apply", "ignore"] | None = None
    key_columns: dict[str, list[str]] | None = None

    @property
    def applies_truncate(self) -> bool:
        """A TRUNCATE at the source empties the sink table: a JDBC sink's default, never an OpenSearch sink's."""
        return self.type == "jdbc" and self.truncate != "ignore"


@dataclass(frozen=True)
class DebeziumSpec:
    snapshot_mode: str = "backfill"  # lambdas/backfill.py
    heartbeat_interval_ms: int = 10_000


@dataclass(frozen=True)
class AlarmsSpec:
    """The pipeline's alarm thresholds; an unset one takes the platform default (`lambdas.alarms.KINDS`)."""

    slot_lag_bytes: int | None = None
    slot_inactive_minutes: int | None = None
    connector_failed_sweeps: int | None = None
    heartbeat_stale_minutes: int | None = None


@dataclass(frozen=True)
class PipelineSpec:
    pipeline_id: str
    owner: str
    source: SourceSpec
    kafka: KafkaSpec
    connect: ConnectSpec
    sink: SinkSpec
    debezium: DebeziumSpec
    alarms: AlarmsSpec = AlarmsSpec()

    @property
    def names(self) -> PipelineNames:
        return PipelineNames(self.pipeline_id, self.kafka.topic_prefix)

    def to_dict(self) -> dict[str, Any]:
        """The spec as a document `parse_spec` accepts: defaults filled, unset optionals left out.

        The schema has no nulls, and every step re-validates the spec it is
        given, so an unset optional must be absent rather than `None`.
        """
        document = asdict(self, dict_factory=lambda fields: {key: value for key, value in fields if value is not None})
        document["source"]["tables"] = list(self.source.tables)
        if not document.get("alarms"):
            document.pop("alarms", None)  # no thresholds set: the spec (and its fingerprint) is as before alarms
        return document

    def fingerprint(self) -> str:
        """A stable hash of the spec: equal specs give equal fingerprints."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def spec_document(spec: PipelineSpec | dict[str, Any]) -> dict[str, Any]:
    """The spec as the workflows' input carries it: defaults filled, unset optionals left out.

    Accepts a `PipelineSpec` or a stored document (the registry keeps unset
    optionals as nulls). Unset optionals must go: the schema has no nulls,
    and every step validates the spec it is given. Equal specs give equal
    documents, so a retried request sends the same execution input
    (StartExecution's idempotency compares it).
    """
    return _without_unset(spec.to_dict() if isinstance(spec, PipelineSpec) else spec)


def _without_unset(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_unset(item) for key, item in value.items() if item is not None}
    return value


def field_path(error: ValidationError, whole: str = "(spec)") -> str:
    """Where a schema violation is, as the API names fields: `source.tables[1]`, or `(spec)` for the whole."""
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or whole


def validation_problems(document: Any) -> list[str]:
    """Every schema violation of `document`, each naming its field; empty when valid."""
    return [f"{field}: {message}" for field, message in violations(SCHEMA_PATH, document)]


def parse_spec(document: Any) -> PipelineSpec:
    """Validate a raw spec and return the typed model with defaults filled.

    Raises `SpecInvalid` naming every offending field; nothing else is checked
    here (reachability and credentials are the steps' business).
    """
    if len(json.dumps(document, default=str)) > MAX_SPEC_BYTES:
        raise SpecInvalid(f"(spec): larger than {MAX_SPEC_BYTES} bytes")
    problems = validation_problems(document)
    if problems:
        raise SpecInvalid("; ".join(problems))
    source = dict(document["source"])
    source["tables"] = tuple(source["tables"])
    return PipelineSpec(
        pipeline_id=document["pipeline_id"],
        owner=document["owner"],
        source=SourceSpec(**source),
        kafka=KafkaSpec(**document["kafka"]),
        connect=ConnectSpec(**document["connect"]),
        sink=SinkSpec(**document["sink"]),
        debezium=DebeziumSpec(**document.get("debezium", {})),
        alarms=AlarmsSpec(**document.get("alarms", {})),
    )
