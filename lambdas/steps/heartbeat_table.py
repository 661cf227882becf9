"""CreateHeartbeatTable / DropHeartbeatTable: the table Debezium's heartbeat action writes to."""

from typing import Any

from lambdas.common import step_handler
from lambdas.source.connection import connect_admin
from lambdas.source.heartbeat import drop_heartbeat_table, ensure_heartbeat_table
from lambdas.spec import PipelineSpec


@step_handler
def create_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    with connect_admin(spec.source) as conn:
        return ensure_heartbeat_table(conn, spec)


@step_handler
def drop_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    with connect_admin(spec.source) as conn:
        return {"dropped": drop_heartbeat_table(conn, spec)}
