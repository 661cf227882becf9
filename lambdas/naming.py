"""Every name cdcflow derives from a pipeline id, in one place.

The platform prefix `cdcflow` marks what cdcflow owns: reconciliation treats
anything carrying it without a registry entry as an orphan. Pipeline ids are
restricted by the spec schema to `^[a-z][a-z0-9_]{2,39}$`, so every name here
stays within PostgreSQL's 63-byte identifier limit and needs no escaping
beyond `psycopg.sql.Identifier`.
"""

import re
from dataclasses import dataclass

PLATFORM_PREFIX = "cdcflow"
HEARTBEAT_SCHEMA = "cdcflow"
HEARTBEAT_TOPIC_PREFIX = "__debezium-heartbeat"
NOTIFICATION_TOPIC_PREFIX = "__debezium-notification"
# What Debezium's topic naming replaces with `_` (AbstractTopicNamingStrategy: a topic is [a-zA-Z0-9._-]).
_TOPIC_UNSAFE = re.compile(r"[^a-zA-Z0-9._-]")


@dataclass(frozen=True)
class PipelineNames:
    pipeline_id: str
    topic_prefix: str

    @property
    def replication_role(self) -> str:
        return f"{PLATFORM_PREFIX}_{self.pipeline_id}"

    @property
    def publication(self) -> str:
        return f"{PLATFORM_PREFIX}_{self.pipeline_id}"

    @property
    def replication_slot(self) -> str:
        return f"{PLATFORM_PREFIX}_{self.pipeline_id}"

    @property
    def heartbeat_schema(self) -> str:
        return HEARTBEAT_SCHEMA

    @property
    def heartbeat_table(self) -> str:
        return f"heartbeat_{self.pipeline_id}"

    @property
    def heartbeat_qualified(self) -> str:
        return f"{HEARTBEAT_SCHEMA}.{self.heartbeat_table}"

    @property
    def source_connector(self) -> str:
        return f"{PLATFORM_PREFIX}-{self.pipeline_id}-source"

    @property
    def sink_connector(self) -> str:
        return f"{PLATFORM_PREFIX}-{self.pipeline_id}-sink"

    @property
    def debezium_topic_prefix(self) -> str:
        """Debezium's `topic.prefix`: unique per pipeline."""
        return f"{self.topic_prefix}.{self.pipeline_id}"

    def table_topic(self, qualified_table: str) -> str:
        """Debezium's topic for `schema.table`: `<topic.prefix>.<schema>.<table>`.

        As Debezium names it: a character a topic name may not hold (a space)
        becomes `_`; letters keep their case.
        """
        return _TOPIC_UNSAFE.sub("_", f"{self.debezium_topic_prefix}.{qualified_table}")

    @property
    def heartbeat_topic(self) -> str:
        return f"{HEARTBEAT_TOPIC_PREFIX}.{self.debezium_topic_prefix}"

    @property
    def signal_table(self) -> str:
        """Debezium's signal table (`signal.data.collection`): cdcflow writes `execute-snapshot` signals there."""
        return f"signal_{self.pipeline_id}"

    @property
    def signal_qualified(self) -> str:
        return f"{HEARTBEAT_SCHEMA}.{self.signal_table}"

    @property
    def notification_topic(self) -> str:
        """The topic Debezium's sink notification channel writes to (snapshot progress)."""
        return f"{NOTIFICATION_TOPIC_PREFIX}.{self.debezium_topic_prefix}"

    def sink_table(self, qualified_table: str) -> str:
        """The sink-side table for a captured `schema.table`: `<schema>_<table>`, in the sink's schema."""
        schema, table = qualified_table.split(".", 1)
        return f"{schema}_{table}"

    @property
    def replication_secret(self) -> str:
        return f"{PLATFORM_PREFIX}/{self.pipeline_id}/replication"

    def execution_name(self, spec_fingerprint: str) -> str:
        """Step Functions execution name: one per pipeline id and spec, so a retried request reuses it."""
        return f"{self.pipeline_id}-{spec_fingerprint[:16]}"
