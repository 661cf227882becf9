"""PutSourceConnector / PutSinkConnector / CheckConnector / DeleteConnectors / RemoveSourceConnector.

An OpenSearch sink's indices belong with its connector: created before it is
put, deleted once the connectors are gone (unless the event says `keep_index`).

Connector configs name their secrets, never hold them: the password is a
`${secretsmanager:<secret>:password}` reference that the Connect worker
resolves (`lambdas.connect.secret_refs`). The step reads each secret only for
its user name, which also proves the secret exists and is readable before
Connect is asked to resolve it. Nothing read here travels through the state
machine.
"""

from dataclasses import replace
from typing import Any

from lambdas.backfill import BACKFILL_MODE
from lambdas.common import step_handler
from lambdas.connect.client import ConnectClient
from lambdas.connect.credentials import login_from_secret
from lambdas.connect.deploy import (
    check_connector, delete_connector, delete_pipeline_connectors, forget_offsets, put_connector,
)
from lambdas.connect.secret_refs import SecretLogin
from lambdas.connect.sink_config import sink_config
from lambdas.connect.source_config import debezium_source_config
from lambdas.opensearch import delete_indices, ensure_indices, pipeline_indices
from lambdas.source.heartbeat import heartbeat_action_query
from lambdas.spec import PipelineSpec
from lambdas.wait_loop import schedule_of


@step_handler
def put_source_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """PutSourceConnector. With `"snapshot": "initial"` (a rebuild), a backfilling spec's connector takes Debezium's
    initial snapshot instead: the rebuild has no backfill phase, and the canary it waits for follows the snapshot."""
    if event.get("snapshot") == "initial" and spec.debezium.snapshot_mode == BACKFILL_MODE:
        spec = replace(spec, debezium=replace(spec.debezium, snapshot_mode="initial"))
    secret = spec.names.replication_secret
    login = SecretLogin(login_from_secret(secret).username, secret)
    config = debezium_source_config(spec, login, heartbeat_action_query(spec))
    with ConnectClient(spec.connect.url) as client:
        return put_connector(client, spec.names.source_connector, config)


@step_handler
def put_sink_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    login = login_from_secret(spec.sink.secret) if spec.sink.secret else None
    if spec.sink.type == "opensearch":
        ensure_indices(spec.sink.url, pipeline_indices(spec), login)
    reference = SecretLogin(login.username, spec.sink.secret) if login is not None and spec.sink.secret else None
    with ConnectClient(spec.connect.url) as client:
        return put_connector(client, spec.names.sink_connector, sink_config(spec, reference))


@step_handler(idempotent=False)  # polled by a wait-loop: each call must look again
def check_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    name = spec.names.source_connector if event["connector"] == "source" else spec.names.sink_connector
    with ConnectClient(spec.connect.url) as client:
        return check_connector(client, name, attempt=int(event.get("attempt", 0)), schedule=schedule_of(event))


@step_handler
def remove_source_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """RemoveSourceConnector (RebuildPipeline): the source connector goes, with its committed offsets, so the one
    put next starts with an initial snapshot instead of resuming from a position its new slot never saw."""
    name = spec.names.source_connector
    with ConnectClient(spec.connect.url) as client:
        if name not in set(client.list_connectors()):
            return {"deleted": False, "offsets_forgotten": False}
        forgotten = forget_offsets(client, name)
        return {"deleted": delete_connector(client, name), "offsets_forgotten": forgotten}


@step_handler
def delete_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    with ConnectClient(spec.connect.url) as client:
        result: dict[str, Any] = {"deleted": delete_pipeline_connectors(client, spec)}
    if spec.sink.type == "opensearch" and not event.get("keep_index", False):
        # After the connector is gone: it would create an index again with its next write.
        login = login_from_secret(spec.sink.secret) if spec.sink.secret else None
        result["indices_deleted"] = delete_indices(spec.sink.url, pipeline_indices(spec), login)
    return result
