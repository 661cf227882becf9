"""What an UpdatePipeline changes: a team's partial spec merged over the pipeline's, and the difference it makes.

`PATCH /pipelines/{id}` sends part of a team's spec (`merge_patch` lays it
over the registered one: objects merge key by key, anything else, lists
included, replaces); `PUT` sends the whole. Either way the resolved new spec
is compared with the registered one by `diff`, and `refusals` lists what an
update may not change on a running pipeline (its id and owner, the
connections it runs on, the Kafka topics' shape): those need a teardown and a
new provisioning.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from lambdas.spec import PipelineSpec

# Fields of the resolved spec an update may not change, each with why.
FIXED_FIELDS: dict[tuple[str, ...], str] = {
    ("pipeline_id",): "names the pipeline",
    ("owner",): "names the owning team",
    ("source", "connection"): "names the source database, which holds the pipeline's slot and publication",
    ("source", "host"): "names the source database",
    ("source", "port"): "names the source database",
    ("source", "database"): "names the source database",
    ("kafka", "cluster"): "names the Kafka cluster holding the pipeline's topics",
    ("kafka", "bootstrap_servers"): "names the Kafka cluster holding the pipeline's topics",
    ("kafka", "topic_prefix"): "names the pipeline's topics",
    ("kafka", "partitions"): "is a property of the existing topics",
    ("kafka", "replication_factor"): "is a property of the existing topics",
    ("kafka", "retention_ms"): "is a property of the existing topics",
    ("sink", "connection"): "names the sink the pipeline writes to",
    ("sink", "type"): "names the sink the pipeline writes to",
    ("sink", "schema"): "names where the sink tables are",
}


def merge_patch(document: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`document` with `patch` laid over it: objects merge key by key, any other value replaces.

    `document` is not changed. A key whose patch value is null is removed
    (JSON Merge Patch, RFC 7396).
    """
    merged = copy.deepcopy(document)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _get(document: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(document, dict):
            return None
        document = document.get(part)
    return document


def refusals(previous: PipelineSpec, new: PipelineSpec) -> list[tuple[str, str]]:
    """(field, message) for every field the update changes that a running pipeline cannot change."""
    before, after = previous.to_dict(), new.to_dict()
    found = []
    for path, reason in FIXED_FIELDS.items():
        old, now = _get(before, path), _get(after, path)
        if old != now:
            found.append((".".join(path), f"cannot change on a running pipeline ({old!r} -> {now!r}): it {reason}; "
                                          "tear the pipeline down and provision a new one"))
    return found


@dataclass(frozen=True)
class SpecChange:
    """The difference between the registered spec and the new one."""

    tables_added: tuple[str, ...]
    tables_removed: tuple[str, ...]
    debezium_changed: tuple[str, ...]  # fields of `debezium` whose value changes
    sink_changed: tuple[str, ...]  # fields of `sink` whose value changes (a sink connection's settings)
    source_changed: tuple[str, ...]  # fields of `source` other than tables (TLS settings of the connection)
    # Other sections of the spec whose value changes (alarm thresholds...): recorded with the new spec.
    other_changed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.tables_added or self.tables_removed or self.debezium_changed or self.sink_changed
                    or self.source_changed or self.other_changed)

    @property
    def source_connector_changes(self) -> bool:
        return bool(self.tables_added or self.tables_removed or self.debezium_changed or self.source_changed)

    def to_dict(self, previous: PipelineSpec, keep_topics: bool = False) -> dict[str, Any]:
        """The change as the API answers it: what is added, removed, changed, and what stays behind."""
        names = previous.names
        return {
            "tables_added": list(self.tables_added),
            "tables_removed": list(self.tables_removed),
            "debezium_changed": list(self.debezium_changed),
            "sink_changed": list(self.sink_changed),
            "source_changed": list(self.source_changed),
            "other_changed": list(self.other_changed),
            # Removing a table stops its events; what reached the sink stays there.
            "sink_tables_left": [f"{previous.sink.schema}.{names.sink_table(table)}" for table in self.tables_removed],
            "topics_deleted": [] if keep_topics else [names.table_topic(table) for table in self.tables_removed],
            "topics_kept": [names.table_topic(table) for table in self.tables_removed] if keep_topics else [],
        }


def _changed(before: dict[str, Any], after: dict[str, Any], skip: frozenset[str] = frozenset()) -> tuple[str, ...]:
    return tuple(sorted(key for key in set(before) | set(after) if key not in skip and before.get(key) != after.get(key)))


def diff(previous: PipelineSpec, new: PipelineSpec) -> SpecChange:
    """What changes from `previous` to `new`; tables keep the order the new (or old) spec lists them."""
    before, after = previous.to_dict(), new.to_dict()
    old_tables, new_tables = list(previous.source.tables), list(new.source.tables)
    return SpecChange(
        tables_added=tuple(table for table in new_tables if table not in old_tables),
        tables_removed=tuple(table for table in old_tables if table not in new_tables),
        debezium_changed=_changed(before.get("debezium", {}), after.get("debezium", {})),
        sink_changed=_changed(before["sink"], after["sink"]),
        source_changed=_changed(before["source"], after["source"], skip=frozenset({"tables"})),
        other_changed=_changed(before, after, skip=SECTIONS_COMPARED),
    )


# The sections `diff` compares field by field (or `refusals` guards); any other top-level field is compared whole.
SECTIONS_COMPARED = frozenset({"pipeline_id", "owner", "source", "kafka", "connect", "sink", "debezium"})
