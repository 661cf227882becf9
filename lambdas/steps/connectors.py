"""PutSourceConnector / PutSinkConnector / CheckConnector / DeleteConnectors.

Credentials are resolved here from their secrets, at the moment Connect
needs them; they never travel through the state machine.
"""

from typing import Any

from lambdas.common import step_handler
from lambdas.connect.client import ConnectClient
from lambdas.connect.credentials import login_from_secret
from lambdas.connect.deploy import check_connector, delete_pipeline_connectors, put_connector
from lambdas.connect.sink_config import sink_config
from lambdas.connect.source_config import debezium_source_config
from lambdas.source.heartbeat import heartbeat_action_query
from lambdas.spec import PipelineSpec


@step_handler
def put_source_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    config = debezium_source_config(spec, login_from_secret(spec.names.replication_secret), heartbeat_action_query(spec))
    with ConnectClient(spec.connect.url) as client:
        return put_connector(client, spec.names.source_connector, config)


@step_handler
def put_sink_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    login = login_from_secret(spec.sink.secret) if spec.sink.secret else None
    with ConnectClient(spec.connect.url) as client:
        return put_connector(client, spec.names.sink_connector, sink_config(spec, login))


@step_handler(idempotent=False)  # polled by a wait-loop: each call must look again
def check_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    name = spec.names.source_connector if event["connector"] == "source" else spec.names.sink_connector
    with ConnectClient(spec.connect.url) as client:
        return check_connector(client, name, attempt=int(event.get("attempt", 0)))


@step_handler
def delete_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    with ConnectClient(spec.connect.url) as client:
        return {"deleted": delete_pipeline_connectors(client, spec)}
