"""GET /pipelines/{id}'s connectors, slot and spec history: read from Kafka Connect, shown as a team may see them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lambdas import registry
from lambdas.api import pipeline_details
from lambdas.connect.client import ConnectClient
from lambdas.errors import ConnectUnavailable
from tests.unit.factories import pipeline_spec, request_spec, resolved_spec

pytestmark = pytest.mark.unit


def _entry(status: registry.PipelineStatus, **changes) -> registry.RegistryEntry:
    spec = pipeline_spec()
    return replace(registry.RegistryEntry(
        pipeline_id=spec.pipeline_id, owner=spec.owner, spec=spec.to_dict(), spec_fingerprint=spec.fingerprint(),
        status=status, execution_arn="arn:aws:states:us-east-1:1:execution:ProvisionPipeline:x",
        created_at="2026-01-01T00:00:00Z", updated_at="2026-01-01T00:00:00Z", version=1), **changes)


def test_connector_and_task_states_come_from_connect_without_workers_or_traces(monkeypatch):
    spec = pipeline_spec()
    names = spec.names
    monkeypatch.setattr(ConnectClient, "list_with_statuses", lambda self: {
        names.source_connector: {"connector": {"state": "RUNNING", "worker_id": "10.0.0.7:8083"},
                                 "tasks": [{"id": 0, "state": "FAILED", "worker_id": "10.0.0.7:8083",
                                            "trace": "org.postgresql.util.PSQLException: db.internal:5432"}]},
        "someone-elses": {"connector": {"state": "RUNNING"}, "tasks": []}})
    found = pipeline_details.details(_entry(registry.PipelineStatus.ACTIVE, slot_lag_bytes=4096))

    assert found["connectors"] == [
        {"name": names.source_connector, "role": "source", "state": "RUNNING", "tasks": [{"id": 0, "state": "FAILED"}]},
        {"name": names.sink_connector, "role": "sink", "state": "ABSENT", "tasks": []}]
    assert found["slot"] == {"name": names.replication_slot, "lag_bytes": 4096}
    assert "10.0.0.7" not in str(found) and "db.internal" not in str(found)
    assert "spec_history" not in found


def test_a_cluster_that_does_not_answer_is_reported_and_the_describe_still_answers(monkeypatch):
    def unreachable(self):
        raise ConnectUnavailable("GET /connectors: connection refused")
    monkeypatch.setattr(ConnectClient, "list_with_statuses", unreachable)
    found = pipeline_details.details(_entry(registry.PipelineStatus.PAUSED))

    assert [connector["state"] for connector in found["connectors"]] == ["UNKNOWN", "UNKNOWN"]
    assert found["connectors_error"] == "Kafka Connect did not answer (ConnectUnavailable)"


def test_a_deleted_pipeline_asks_connect_nothing_and_its_spec_history_is_the_teams_view(monkeypatch):
    def asked(self):
        raise AssertionError("a DELETED pipeline has no connectors to ask about")
    monkeypatch.setattr(ConnectClient, "list_with_statuses", asked)
    earlier = resolved_spec(request_spec()).to_dict()
    history = ({"spec": earlier, "at": "2026-01-02T00:00:00Z", "by": "arn:aws:iam::1:user/someone"},)
    found = pipeline_details.details(_entry(registry.PipelineStatus.DELETED, spec_history=history))

    assert "connectors" not in found
    (item,) = found["spec_history"]
    assert item["at"] == "2026-01-02T00:00:00Z" and item["by"] == "arn:aws:iam::1:user/someone"
    assert item["spec"]["source"]["connection"] == earlier["source"]["connection"]
    assert "host" not in item["spec"]["source"] and "admin_secret" not in str(item["spec"])
