"""CreateHeartbeatTable / DropHeartbeatTable: the table Debezium's heartbeat action writes to.

Dropping also removes its copy at a JDBC sink, which only heartbeats and
canaries ever wrote to.
"""

from typing import Any

from lambdas.common import step_handler
from lambdas.source.canary import drop_canary_sink_table
from lambdas.source.connection import connect_admin, connect_sink
from lambdas.source.heartbeat import drop_heartbeat_table, ensure_heartbeat_table
from lambdas.spec import PipelineSpec


@step_handler
def create_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    with connect_admin(spec.source) as conn:
        return ensure_heartbeat_table(conn, spec)


@step_handler
def drop_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    with connect_admin(spec.source) as conn:
        dropped = drop_heartbeat_table(conn, spec)
    sink_copy_dropped = False
    if spec.sink.type == "jdbc":
        with connect_sink(spec.sink) as conn:
            sink_copy_dropped = drop_canary_sink_table(conn, spec)
    return {"dropped": dropped, "sink_copy_dropped": sink_copy_dropped}
