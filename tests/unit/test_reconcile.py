"""The sweep and its Lambda handler with the registry and secrets on moto, and dependencies that do not answer.

The healthy paths (restarts, re-alignment, lag, orphans in PostgreSQL and
Kafka) run against the real local stack in tests/integration/test_reconcile_stack.py.
"""

from __future__ import annotations

import io
import json
import socket
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from lambdas import reconcile, registry
from lambdas.common.observability import logger
from lambdas.errors import KafkaUnavailable
from lambdas.reconcile import sweep
from lambdas.reconcile.policy import ReconcileSettingsInvalid
from lambdas.registry import PipelineStatus
from lambdas.secrets import USE_TAG
from tests.unit.factories import create_state_machine, pipeline_spec


def closed_port() -> int:
    """A local TCP port nothing listens on (connections to it are refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


DB_PORT = closed_port()
CONNECT_URL = f"http://127.0.0.1:{closed_port()}"


# Where these pipelines' source, Kafka and Connect are: nothing answers there.
UNREACHABLE = {"source_host": "127.0.0.1", "source_port": DB_PORT, "bootstrap_servers": "127.0.0.1:1",
               "connect_url": CONNECT_URL}


@pytest.fixture
def aws_mocks(registry_table, monkeypatch):
    monkeypatch.setenv("IDEMPOTENCY_TABLE", "cdcflow-idempotency")  # where the handler takes its lease
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name="shop/admin", SecretString=json.dumps({"username": "admin", "password": "admin-pw-1"}),
                          Tags=[{"Key": USE_TAG, "Value": "true"}])
    return secrets


@pytest.fixture
def kafka_down(monkeypatch):
    # kafka-python waits out its bootstrap timeout before it gives up on a refused port; the sweep only sees the error.
    def unavailable(bootstrap_servers: str) -> list[str]:
        raise KafkaUnavailable(f"Kafka at {bootstrap_servers} did not answer within 10 s: KafkaTimeoutError")

    monkeypatch.setattr(sweep, "list_topics", unavailable)


def provisioned(pipeline_id: str, status: PipelineStatus) -> registry.RegistryEntry:
    registry.register(pipeline_spec(pipeline_id, **UNREACHABLE), f"arn:aws:states:us-east-1:0:execution:provision:{pipeline_id}")
    if status is not PipelineStatus.PROVISIONING:
        registry.mark(pipeline_id, status)
    return registry.get(pipeline_id)


def test_unreachable_source_and_connect_are_reported_and_statuses_are_kept(aws_mocks, kafka_down):
    provisioned("orders", PipelineStatus.ACTIVE)
    provisioned("payments", PipelineStatus.DEGRADED)

    report = reconcile.reconcile()

    assert {(e.target, e.location, e.pipelines) for e in report.errors} == {
        ("source", f"127.0.0.1:{DB_PORT}/shop", ("orders", "payments")),
        ("connect", CONNECT_URL, ("orders", "payments")),
        ("kafka", "127.0.0.1:1", ("orders", "payments")),
    }
    assert [e.error.split(":")[0] for e in sorted(report.errors, key=lambda e: e.target)] == [
        "ConnectUnavailable", "KafkaUnavailable", "DatabaseUnavailable",
    ]
    assert [(p.pipeline_id, p.status) for p in report.pipelines] == [
        ("orders", PipelineStatus.ACTIVE), ("payments", PipelineStatus.DEGRADED),
    ]
    assert all(len(p.errors) == 3 and p.restarted == [] for p in report.pipelines)
    assert registry.get("orders").status is PipelineStatus.ACTIVE
    assert registry.get("payments").status is PipelineStatus.DEGRADED
    assert "admin-pw-1" not in json.dumps(report.to_dict())


def test_orphaned_secrets_are_reported_and_deleted_only_with_repair(aws_mocks, kafka_down):
    provisioned("orders", PipelineStatus.ACTIVE)
    provisioned("gone", PipelineStatus.DELETED)
    for pipeline_id in ("orders", "gone", "stray"):
        aws_mocks.create_secret(Name=f"cdcflow/{pipeline_id}/replication", SecretString="{}")
    aws_mocks.create_secret(Name="cdcflow/shared/admin", SecretString="{}")  # not a shape cdcflow generates

    report = reconcile.reconcile(repair=False)
    assert [(o.name, o.reason, o.deleted) for o in report.orphans] == [
        ("cdcflow/gone/replication", "pipeline 'gone' is DELETED", False),
        ("cdcflow/stray/replication", "pipeline 'stray' has no registry entry", False),
    ]
    assert len(aws_mocks.list_secrets()["SecretList"]) == 5

    report = reconcile.reconcile(repair=True)
    assert [(o.name, o.deleted, o.error) for o in report.orphans] == [
        ("cdcflow/gone/replication", True, None), ("cdcflow/stray/replication", True, None),
    ]
    assert report.repairs_done == 2
    remaining = sorted(s["Name"] for s in aws_mocks.list_secrets()["SecretList"])
    assert remaining == ["cdcflow/orders/replication", "cdcflow/shared/admin", "shop/admin"]
    assert reconcile.reconcile(repair=True).orphans == []


def test_an_orphan_whose_pipeline_is_registered_during_the_sweep_is_kept(aws_mocks, kafka_down, monkeypatch):
    aws_mocks.create_secret(Name="cdcflow/late/replication", SecretString="{}")
    listed = sweep._registered_entries

    def register_right_after_listing():
        entries = listed()
        provisioned("late", PipelineStatus.PROVISIONING)  # a provisioning that starts mid-sweep
        return entries

    monkeypatch.setattr(sweep, "_registered_entries", register_right_after_listing)
    report = reconcile.reconcile(repair=True)
    assert report.orphans == []
    assert aws_mocks.describe_secret(SecretId="cdcflow/late/replication")["Name"] == "cdcflow/late/replication"


def test_entries_stuck_in_flight_are_reported(aws_mocks, kafka_down):
    provisioned("slow", PipelineStatus.PROVISIONING)
    provisioned("leaving", PipelineStatus.DELETING)
    provisioned("done", PipelineStatus.ACTIVE)
    later = datetime.now(UTC) + timedelta(minutes=90)
    report = reconcile.reconcile(now=later)
    assert [(s.pipeline_id, s.status) for s in report.stuck] == [
        ("leaving", PipelineStatus.DELETING), ("slow", PipelineStatus.PROVISIONING),
    ]
    assert all(s.minutes_since_update in (89, 90) for s in report.stuck)
    assert reconcile.reconcile().stuck == []
    assert report.status_counts == {"PROVISIONING": 1, "DELETING": 1, "ACTIVE": 1, "DEGRADED": 0}


def test_the_registry_is_read_across_pages(aws_mocks, kafka_down, monkeypatch):
    monkeypatch.setattr(sweep, "REGISTRY_PAGE_SIZE", 2)
    for index in range(5):
        provisioned(f"pipe_{index}", PipelineStatus.ACTIVE)
    report = reconcile.reconcile()
    assert report.registered == 5
    assert [p.pipeline_id for p in report.pipelines] == [f"pipe_{index}" for index in range(5)]


@pytest.fixture
def log_buffer():
    buffer = io.StringIO()
    previous = logger.registered_handler.setStream(buffer)
    yield buffer
    logger.registered_handler.setStream(previous)


def test_handler_reads_repair_from_the_event_and_returns_the_report(aws_mocks, kafka_down, log_buffer, capsys):
    provisioned("gone", PipelineStatus.DELETED)
    aws_mocks.create_secret(Name="cdcflow/gone/replication", SecretString="{}")
    scheduled = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}

    document = reconcile.handler(scheduled, None)
    assert document["repair"] is False
    assert document["summary"]["orphans_found"] == 1 and document["orphans"][0]["deleted"] is False
    json.dumps(document)
    logged = [json.loads(line) for line in log_buffer.getvalue().splitlines()]
    assert [line["message"] for line in logged] == ["Reconciliation finished"]  # one line per run
    assert logged[0]["reconcile_report"]["summary"] == document["summary"]
    assert any('"OrphansFound"' in line for line in capsys.readouterr().out.splitlines())

    document = reconcile.handler({"repair": True}, None)
    assert document["repair"] is True and document["orphans"][0]["deleted"] is True


@pytest.mark.parametrize("event", [{"repair": "yes"}, {"repair": 1}, {"repair": None}])
def test_handler_rejects_a_repair_flag_that_is_not_a_boolean(aws_mocks, event):
    with pytest.raises(ValueError, match="repair: must be true or false"):
        reconcile.handler(event, None)


def test_handler_rejects_bad_settings_before_touching_anything(aws_mocks, monkeypatch):
    monkeypatch.setenv("RECONCILE_LAG_THRESHOLD_BYTES", "lots")
    provisioned("gone", PipelineStatus.DELETED)
    aws_mocks.create_secret(Name="cdcflow/gone/replication", SecretString="{}")
    with pytest.raises(ReconcileSettingsInvalid, match="RECONCILE_LAG_THRESHOLD_BYTES must be an integer"):
        reconcile.handler({"repair": True}, None)
    assert aws_mocks.describe_secret(SecretId="cdcflow/gone/replication")


def test_repair_can_be_limited_to_named_pipelines(aws_mocks, kafka_down):
    for pipeline_id in ("gone", "stray"):
        aws_mocks.create_secret(Name=f"cdcflow/{pipeline_id}/replication", SecretString="{}")
    document = reconcile.handler({"repair": True, "pipelines": ["stray"]}, None)
    assert [(o["pipeline_id"], o["deleted"]) for o in document["orphans"]] == [("gone", False), ("stray", True)]
    assert [s["Name"] for s in aws_mocks.list_secrets()["SecretList"] if s["Name"].startswith("cdcflow/")] == [
        "cdcflow/gone/replication"
    ]


@pytest.mark.parametrize("pipelines", ["stray", [""], [1]])
def test_handler_rejects_a_repair_scope_that_is_not_a_list_of_ids(aws_mocks, pipelines):
    with pytest.raises(ValueError, match="pipelines: must be a list of pipeline ids"):
        reconcile.handler({"repair": True, "pipelines": pipelines}, None)


def test_the_log_line_leaves_out_healthy_unchanged_pipelines():
    def pipeline(pipeline_id: str, status: str = "ACTIVE", previous: str = "ACTIVE", **changes) -> dict:
        empty = {key: [] for key in ("restarted", "publication_added", "publication_removed", "problems", "notes", "errors")}
        return {"pipeline_id": pipeline_id, "status": status, "previous_status": previous, **empty, **changes}

    document = {"summary": {"reconciled": 4}, "pipelines": [
        pipeline("quiet"),
        pipeline("recovered", previous="DEGRADED"),
        pipeline("restarted", restarted=["cdcflow-restarted-source"]),
        pipeline("lagging", status="DEGRADED", previous="DEGRADED"),
    ]}
    logged = reconcile._loggable(document)
    assert [p["pipeline_id"] for p in logged["pipelines"]] == ["recovered", "restarted", "lagging"]
    assert logged["summary"] == document["summary"]


def test_a_failed_pipeline_whose_source_is_down_is_named_and_does_not_make_the_sweep_incomplete(aws_mocks, kafka_down):
    from cdcflow.operate_cli import reconcile_exit_code
    from cdcflow.reconcile_runner import reconcile_findings, reconcile_incomplete

    provisioned("dead", PipelineStatus.FAILED)

    document = json.loads(json.dumps(reconcile.reconcile().to_dict()))

    assert {(e["target"], tuple(e["pipelines"]), e["scope"]) for e in document["errors"]} == {
        ("source", ("dead",), "pipelines"), ("connect", ("dead",), "pipelines"), ("kafka", ("dead",), "pipelines"),
    }
    assert document["summary"]["sweep_errors"] == 0
    assert document["summary"]["unreachable_pipelines"] == ["dead"]
    assert not reconcile_incomplete(document)
    assert any(f"source 127.0.0.1:{DB_PORT}/shop is unreachable" in line and "serves dead" in line
               for line in reconcile_findings(document))
    assert reconcile_exit_code(document) == 4


def test_only_a_lifecycle_execution_still_running_holds_a_pipeline(aws_mocks):
    """A stopped update ran no compensation and released nothing: its claim must not shield what it left."""
    sfn = boto3.client("stepfunctions")
    machine = create_state_machine(sfn, "UpdatePipeline")
    entry = provisioned("orders", PipelineStatus.ACTIVE)
    assert not sweep._held(entry)

    claimed = f"{machine.replace(':stateMachine:', ':execution:')}:orders-update-1"
    registry.claim_lifecycle(entry, "update", claimed)
    assert sweep._held(registry.get("orders"))  # claimed, not started yet: the API starts it next

    running = sfn.start_execution(stateMachineArn=machine, name="orders-update-1", input="{}")["executionArn"]
    assert running == claimed and sweep._held(registry.get("orders"))

    sfn.stop_execution(executionArn=running)
    assert not sweep._held(registry.get("orders"))
