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
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


@dataclass(frozen=True)
class SourceSpec:
    host: str
    port: int
    database: str
    admin_secret: str
    tables: tuple[str, ...]
    rds_instance_id: str | None = None
    approval_required: bool = False


@dataclass(frozen=True)
class KafkaSpec:
    bootstrap_servers: str
    topic_prefix: str = "cdcflow"
    partitions: int = 1
    replication_factor: int = 1
    retention_ms: int = 604_800_000


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


@dataclass(frozen=True)
class DebeziumSpec:
    snapshot_mode: str = "initial"
    heartbeat_interval_ms: int = 10_000


@dataclass(frozen=True)
class PipelineSpec:
    pipeline_id: str
    owner: str
    source: SourceSpec
    kafka: KafkaSpec
    connect: ConnectSpec
    sink: SinkSpec
    debezium: DebeziumSpec

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
        return document

    def fingerprint(self) -> str:
        """A stable hash of the spec: equal specs give equal fingerprints."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _field_path(error: ValidationError) -> str:
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(spec)"


def validation_problems(document: Any) -> list[str]:
    """Every schema violation of `document`, each naming its field; empty when valid."""
    problems = []
    for error in sorted(_validator().iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
        problems.append(f"{_field_path(error)}: {error.message}")
    return problems


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
    )
