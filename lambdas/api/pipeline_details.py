"""What `GET /pipelines/{id}` adds to the registry entry: its connectors' states, its slot, its spec history.

Read-only: one `GET /connectors?expand=status` to the pipeline's Kafka Connect
cluster, with a short timeout, so a cluster that does not answer costs the
describe a few seconds and is reported as such rather than failing it. Only
what a team may see: connector and task states, never a worker's address or a
task's stack trace (which can name hosts).
"""

from __future__ import annotations

from typing import Any

from lambdas import registry
from lambdas.connect.client import ConnectClient
from lambdas.connect.errors import ConnectorNotFound, ConnectRequestRejected
from lambdas.errors import ConnectUnavailable
from lambdas.pipeline_request import request_view
from lambdas.spec import PipelineSpec, parse_spec

# (connect, read) seconds: a describe must answer even when the cluster does not.
CONNECT_TIMEOUT = (2.0, 5.0)
# Statuses whose pipeline has (or may have) connectors on its cluster.
_WITH_CONNECTORS = frozenset({registry.PipelineStatus.PROVISIONING, registry.PipelineStatus.ACTIVE,
                              registry.PipelineStatus.PAUSED, registry.PipelineStatus.FAILED,
                              registry.PipelineStatus.DELETING})


def connector_states(spec: PipelineSpec) -> dict[str, Any]:
    """`{"connectors": [{"name", "role", "state", "tasks": [{"id", "state"}]}]}`, or with `connectors_error`.

    A connector the cluster does not have is `ABSENT`; when the cluster does
    not answer every state is `UNKNOWN` and `connectors_error` says why.
    """
    names = spec.names
    wanted = (("source", names.source_connector), ("sink", names.sink_connector))
    try:
        with ConnectClient(spec.connect.url, timeout=CONNECT_TIMEOUT) as client:
            statuses = client.list_with_statuses()
    except (ConnectUnavailable, ConnectRequestRejected, ConnectorNotFound) as error:
        return {"connectors": [{"name": name, "role": role, "state": "UNKNOWN", "tasks": []} for role, name in wanted],
                "connectors_error": f"Kafka Connect did not answer ({type(error).__name__})"}
    connectors = []
    for role, name in wanted:
        status = statuses.get(name)
        if status is None:
            connectors.append({"name": name, "role": role, "state": "ABSENT", "tasks": []})
            continue
        tasks = [{"id": task.get("id"), "state": task.get("state")} for task in status.get("tasks") or []]
        connectors.append({"name": name, "role": role, "state": (status.get("connector") or {}).get("state"),
                           "tasks": sorted(tasks, key=lambda task: task["id"] if isinstance(task["id"], int) else 0)})
    return {"connectors": connectors}


def details(entry: registry.RegistryEntry) -> dict[str, Any]:
    """The additive fields of `GET /pipelines/{id}`: connectors, slot, spec history (each spec as the team's view)."""
    spec = parse_spec(entry.spec)
    found: dict[str, Any] = {"slot": {"name": spec.names.replication_slot, "lag_bytes": entry.slot_lag_bytes}}
    if entry.status in _WITH_CONNECTORS:
        found.update(connector_states(spec))
    if entry.spec_history:
        found["spec_history"] = [{"spec": request_view(item["spec"]), "at": item.get("at"), "by": item.get("by")}
                                 for item in entry.spec_history if isinstance(item, dict) and "spec" in item]
    return found
