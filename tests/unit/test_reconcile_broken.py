"""BROKEN: a slot that vanished, was re-created or was invalidated, decided from what a sweep saw (pure), and
the metrics and exit code that follow."""

from datetime import UTC, datetime

import pytest

from cdcflow.operate_cli import EXIT_PIPELINE_BROKEN, EXIT_SWEEP_INCOMPLETE, reconcile_exit_code
from lambdas.reconcile.clusters import committed_lsn
from lambdas.reconcile.health import allowed_transition
from lambdas.reconcile.policy import (
    ConnectorObservation, HealthRecord, ReconcileSettings, SlotObservation, assess, format_lsn, slot_broken,
)
from lambdas.reconcile.report import PipelineReport, alarm_metrics
from lambdas.registry import PipelineStatus

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
RUN = "2026-12-02T05:00:00+00:00"
EXECUTION = "arn:aws:states:us-east-1:000000000000:execution:ProvisionPipeline:orders"
SEEN = HealthRecord(execution_arn=EXECUTION, server_started_at=RUN, slot_decoded_txns=120)
RUNNING = [ConnectorObservation("cdcflow-orders-source", "RUNNING"), ConnectorObservation("cdcflow-orders-sink", "RUNNING")]


def slot(**fields) -> SlotObservation:
    return SlotObservation(**{"name": "cdcflow_orders", "exists": True, "active": True, "lag_bytes": 0,
                              "wal_status": "reserved", "confirmed_flush_lsn": 5000, "decoded_txns": 130, **fields})


def broken(observed, previous=SEEN, *, server=RUN, connector_lsn=6000, execution=EXECUTION):
    return slot_broken(observed, previous, execution_arn=execution, server_started_at=server,
                       connector_lsn=connector_lsn)


def test_a_healthy_slot_is_not_broken():
    assert broken(slot()) is None
    assert broken(None) is None  # the source did not answer: nothing is concluded


def test_a_vanished_slot_is_broken():
    assert "is gone" in broken(SlotObservation("cdcflow_orders", exists=False))


def test_an_invalidated_slot_is_broken():
    assert "wal_status lost" in broken(slot(wal_status="lost"))
    assert broken(slot(wal_status="unreserved")) is None  # at risk (its alarm), not yet lost


def test_a_slot_ahead_of_the_connectors_committed_offset_was_re_created():
    reason = broken(slot(confirmed_flush_lsn=9000), connector_lsn=6000)
    assert f"confirms {format_lsn(9000)}" in reason and f"offset {format_lsn(6000)}" in reason
    assert broken(slot(confirmed_flush_lsn=6000), connector_lsn=6000) is None
    assert broken(slot(confirmed_flush_lsn=9000), connector_lsn=None) is None  # no offsets committed yet


def test_decoding_statistics_that_went_back_while_the_server_ran_mean_a_new_slot():
    assert "went back from 120 to 3" in broken(slot(decoded_txns=3))
    # A restart of the server may reset statistics; another provisioning's record is no baseline;
    # a record of a slot already found broken (since rebuilt) is none either.
    assert broken(slot(decoded_txns=3), server="2026-12-02T05:30:00+00:00") is None
    assert broken(slot(decoded_txns=3), execution=EXECUTION + "-again") is None
    assert broken(slot(decoded_txns=3), previous=HealthRecord(**{**SEEN.to_dict(), "restarts": (),
                                                                 "broken": "gone"})) is None


def test_committed_lsn_is_the_furthest_position_of_the_offsets():
    offsets = [{"partition": {"server": "cdcflow.orders"},
                "offset": {"lsn": 24125048, "lsn_proc": 24125100, "lsn_commit": 24125000, "txId": 900,
                           "ts_usec": 1}}]
    assert committed_lsn(offsets) == 24125100
    assert committed_lsn([]) is None and committed_lsn(None) is None


@pytest.mark.parametrize("status", [PipelineStatus.ACTIVE, PipelineStatus.DEGRADED, PipelineStatus.PAUSED])
def test_a_broken_slot_makes_the_pipeline_broken_with_the_reason(status):
    reason = broken(SlotObservation("cdcflow_orders", exists=False))
    assessment = assess(status, SEEN, ReconcileSettings(), NOW, connectors=RUNNING,
                        slot=SlotObservation("cdcflow_orders", exists=False), broken=reason,
                        execution_arn=EXECUTION, server_started_at=RUN)

    assert assessment.status is PipelineStatus.BROKEN
    assert assessment.problems[0] == reason and assessment.health.broken == reason
    assert allowed_transition(status, PipelineStatus.BROKEN)


def test_a_broken_pipeline_stays_broken_when_its_slot_looks_healthy_again():
    previous = HealthRecord(execution_arn=EXECUTION, broken="replication slot cdcflow_orders is gone")
    assessment = assess(PipelineStatus.BROKEN, previous, ReconcileSettings(), NOW, connectors=RUNNING, slot=slot(),
                        execution_arn=EXECUTION, server_started_at=RUN)

    assert assessment.status is PipelineStatus.BROKEN and assessment.health.broken == previous.broken
    assert not allowed_transition(PipelineStatus.BROKEN, PipelineStatus.ACTIVE)


def test_the_health_record_keeps_what_the_next_sweep_compares():
    assessment = assess(PipelineStatus.ACTIVE, HealthRecord(), ReconcileSettings(), NOW, connectors=RUNNING,
                        slot=slot(active=False), execution_arn=EXECUTION, server_started_at=RUN)

    health = HealthRecord.from_dict(assessment.health.to_dict())
    assert (health.execution_arn, health.server_started_at, health.slot_decoded_txns) == (EXECUTION, RUN, 130)
    assert health.slot_inactive_since == NOW.isoformat(timespec="seconds")


def test_the_alarm_metrics_of_a_broken_and_of_a_paused_pipeline():
    broken_report = PipelineReport("orders", PipelineStatus.ACTIVE, PipelineStatus.BROKEN, source_connector="RUNNING",
                                   broken="gone")
    paused = PipelineReport("refunds", PipelineStatus.PAUSED, PipelineStatus.PAUSED, source_connector="PAUSED",
                            slot_active=False, slot_lag_bytes=4096, wal_status="unreserved", slot_inactive_minutes=90,
                            heartbeat_age_seconds=3600.0)

    assert alarm_metrics(broken_report)["SlotBroken"] == 1
    assert alarm_metrics(paused) == {"SlotLagBytes": 4096, "SlotInactiveMinutes": None, "SlotWalAtRisk": 1,
                                     "ConnectorFailedSweeps": None, "HeartbeatAgeSeconds": None, "SlotBroken": 0}


def test_reconcile_exits_6_for_a_broken_pipeline_even_when_the_sweep_was_incomplete():
    pipeline = {"pipeline_id": "orders", "status": "BROKEN", "problems": ["gone"], "errors": [], "restarted": [],
                "publication_added": [], "publication_removed": []}
    sweep_error = {"target": "secrets", "location": "secretsmanager", "error": "x", "pipelines": [], "scope": "sweep"}
    report = {"pipelines": [pipeline], "errors": [sweep_error], "orphans": [], "stuck": []}

    assert reconcile_exit_code(report) == EXIT_PIPELINE_BROKEN
    assert reconcile_exit_code({**report, "pipelines": []}) == EXIT_SWEEP_INCOMPLETE


class Connect:
    """A stand-in Connect client: offsets as Debezium commits them, and the restarts asked for."""

    def __init__(self, offset_lsn: int | None) -> None:
        self.offset_lsn, self.restarts = offset_lsn, []

    def offsets(self, name: str) -> list[dict]:
        return [] if self.offset_lsn is None else [{"partition": {}, "offset": {"lsn": self.offset_lsn}}]

    def restart(self, name: str, **options: object) -> None:
        self.restarts.append(name)


def connect_sweep(observed: SlotObservation, offset_lsn: int | None) -> tuple[Connect, PipelineReport]:
    from lambdas.reconcile import sweep
    from lambdas.registry import RegistryEntry
    from tests.unit.factories import pipeline_spec

    spec = pipeline_spec("orders")
    entry = RegistryEntry("orders", "team", spec.to_dict(), spec.fingerprint(), PipelineStatus.ACTIVE, EXECUTION,
                          "2026-12-02T05:00:00", "2026-12-02T05:00:00", 3)
    report = PipelineReport("orders", PipelineStatus.ACTIVE, PipelineStatus.ACTIVE)
    pipeline = sweep._Pipeline(entry, spec, report=report, slot=observed, previous=SEEN, server_started_at=RUN)
    failed = {"connector": {"state": "RUNNING"}, "tasks": [{"id": 0, "state": "FAILED", "trace": "boom"}]}
    statuses = {spec.names.source_connector: failed, spec.names.sink_connector: failed}
    client = Connect(offset_lsn)
    sweep._check_connectors(client, statuses, pipeline)
    return client, report


def test_the_connectors_of_a_pipeline_whose_slot_was_re_created_are_not_restarted():
    client, report = connect_sweep(slot(confirmed_flush_lsn=9000), offset_lsn=6000)

    assert client.restarts == [] and report.restarted == []
    assert any("cannot be trusted" in note for note in report.notes)


def test_the_failed_connectors_of_a_healthy_pipeline_are_restarted():
    client, report = connect_sweep(slot(confirmed_flush_lsn=5000), offset_lsn=6000)

    assert client.restarts == ["cdcflow-orders-source", "cdcflow-orders-sink"] == report.restarted
