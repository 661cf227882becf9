"""`cdcflow reconcile`: how a sweep's report is shown, and the exit code scripts alert on.

The sweep itself is replaced by a fake that returns a report built from the
real report classes (so the JSON shape is the one the Reconcile function
returns); `reconcile_on_aws` is driven through a stubbed Lambda client.
"""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from typer.testing import CliRunner

from cdcflow import operate_cli
from cdcflow.cli import app
from cdcflow.errors import ServiceFailed
from cdcflow.reconcile_runner import reconcile_on_aws
from lambdas.reconcile.orphans import Orphan
from lambdas.reconcile.policy import ReconcileSettingsInvalid
from lambdas.reconcile.report import PipelineReport, ReconcileReport, StuckExecution, TargetError, count_statuses
from lambdas.registry import PipelineStatus

ACTIVE, DEGRADED = PipelineStatus.ACTIVE, PipelineStatus.DEGRADED


def healthy_pipeline(pipeline_id: str = "orders") -> PipelineReport:
    return PipelineReport(
        pipeline_id,
        ACTIVE,
        ACTIVE,
        source_connector="RUNNING",
        sink_connector="RUNNING",
        slot_active=True,
        slot_lag_bytes=3 * 1024**2,
    )


def report(
    *,
    repair: bool = False,
    pipelines: list[PipelineReport] | None = None,
    orphans: list[Orphan] = (),
    stuck: list[StuckExecution] = (),
    errors: list[TargetError] = (),
) -> dict[str, Any]:
    pipelines = [healthy_pipeline()] if pipelines is None else pipelines
    sweep = ReconcileReport(
        started_at="2026-11-23T01:00:00+00:00",
        finished_at="2026-11-23T01:00:02+00:00",
        repair=repair,
        registered=len(pipelines),
        pipelines=pipelines,
        orphans=list(orphans),
        stuck=list(stuck),
        errors=list(errors),
        status_counts=count_statuses([pipeline.status for pipeline in pipelines]),
    )
    return json.loads(json.dumps(sweep.to_dict()))


ORPHAN_SLOT = Orphan("slot", "cdcflow_gone", "127.0.0.1:55432/source", "gone", "no registry entry for pipeline 'gone'")


@pytest.fixture
def sweep(monkeypatch):
    """Replace the local sweep: `sweep.report = ...` sets what it returns; `sweep.calls` records its arguments."""

    class FakeSweep:
        def __init__(self) -> None:
            self.report: dict[str, Any] | Exception = report()
            self.calls: list[dict[str, Any]] = []

        def __call__(self, environment, *, repair, repair_only=None):
            self.calls.append({"environment": environment, "repair": repair, "repair_only": repair_only})
            if isinstance(self.report, Exception):
                raise self.report
            return self.report

    fake = FakeSweep()
    monkeypatch.setattr(operate_cli, "reconcile_locally", fake)
    monkeypatch.setattr(operate_cli, "local_stack_environment", lambda: {"REGISTRY_TABLE": "registry"})
    return fake


def run(*arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["reconcile", *arguments], env={"COLUMNS": "220"})
    return result.exit_code, result.output


def test_a_healthy_sweep_shows_each_pipeline_and_exits_0(sweep):
    code, output = run()
    assert code == 0
    assert "orders" in output
    assert "RUNNING" in output
    assert "active, lag 3.0 MiB" in output
    assert "healthy: nothing to repair" in output
    assert sweep.calls == [{"environment": {"REGISTRY_TABLE": "registry"}, "repair": False, "repair_only": None}]


def test_a_degraded_pipeline_is_drift_shown_with_its_problem_and_exits_4(sweep):
    degraded = PipelineReport(
        "payments",
        ACTIVE,
        DEGRADED,
        source_connector="FAILED",
        sink_connector="RUNNING",
        slot_active=False,
        slot_lag_bytes=None,
        restarted=["cdcflow-payments-source"],
        problems=["connector cdcflow-payments-source FAILED in 3 sweeps"],
        notes=["replication slot cdcflow_payments is inactive: no connector is reading it"],
    )
    sweep.report = report(pipelines=[healthy_pipeline(), degraded])
    code, output = run()
    assert code == operate_cli.EXIT_DRIFT_FOUND == 4
    assert "ACTIVE → DEGRADED" in output
    assert "restarted cdcflow-payments-source" in output
    assert "connector cdcflow-payments-source FAILED in 3 sweeps" in output
    assert "inactive" in output
    assert "drift found: 2 finding(s)" in output
    assert "payments is DEGRADED" in output


def test_a_restart_or_a_realigned_publication_alone_is_drift(sweep):
    realigned = PipelineReport("orders", ACTIVE, ACTIVE, publication_added=["public.refunds"])
    sweep.report = report(pipelines=[realigned])
    code, output = run()
    assert code == 4
    assert "publication + public.refunds" in output
    assert "orders: publication re-aligned" in output


def test_orphans_are_listed_and_kept_without_repair(sweep):
    sweep.report = report(orphans=[ORPHAN_SLOT])
    code, output = run()
    assert code == 4
    assert "cdcflow_gone" in output
    assert "127.0.0.1:55432/source" in output
    assert "kept (--repair deletes it)" in output
    assert "orphan slot cdcflow_gone at 127.0.0.1:55432/source (left in place)" in output


def test_repair_passes_the_chosen_pipelines_and_shows_what_was_deleted(sweep):
    failed = Orphan("topic", "cdcflow.gone.public.t", "127.0.0.1:9092", "gone", "no registry entry", error="boom")
    sweep.report = report(repair=True, orphans=[Orphan(**{**ORPHAN_SLOT.to_dict(), "deleted": True}), failed])
    code, output = run("--repair", "--only", "gone", "--only", "old")
    assert sweep.calls[0]["repair"] is True
    assert sweep.calls[0]["repair_only"] == ["gone", "old"]
    assert "(repair)" in output
    assert "deleted" in output
    assert "not deleted: boom" in output
    assert code == 4  # found, even if repaired: the next sweep confirms it is gone


def test_only_without_repair_is_refused_before_any_sweep(sweep):
    code, output = run("--only", "gone")
    assert code == 2
    assert "--only chooses which orphans --repair deletes" in output
    assert sweep.calls == []


def test_stuck_executions_are_drift(sweep):
    stuck = StuckExecution(
        "slow", PipelineStatus.PROVISIONING, "arn:aws:states:x", "CreateSlot", "2026-11-22T23:00:00+00:00", 120
    )
    sweep.report = report(stuck=[stuck])
    code, output = run()
    assert code == 4
    assert "stuck executions" in output
    assert "CreateSlot" in output
    assert "slow stuck in PROVISIONING for 120 min" in output


def test_a_pipeline_whose_own_source_is_down_is_a_finding_about_it_and_exits_4(sweep):
    # One FAILED pipeline with an unreachable source must not make every sweep "incomplete".
    dead = PipelineReport("refunds", PipelineStatus.FAILED, PipelineStatus.FAILED,
                          errors=["source 10.0.0.9:5432/shop could not be checked: DatabaseUnavailable: refused"])
    error = TargetError("source", "10.0.0.9:5432/shop", "DatabaseUnavailable: connection refused", ("refunds",))
    sweep.report = report(pipelines=[healthy_pipeline(), dead], errors=[error])
    code, output = run()
    assert code == operate_cli.EXIT_DRIFT_FOUND == 4
    assert "incomplete:" not in output
    assert "refunds could not be checked or repaired: source 10.0.0.9:5432/shop" in output
    assert "refunds is FAILED" in output
    assert sweep.report["summary"]["sweep_errors"] == 0
    assert sweep.report["summary"]["unreachable_pipelines"] == ["refunds"]
    assert sweep.report["errors"][0]["scope"] == "pipelines"


def test_what_the_sweep_itself_could_not_check_outweighs_drift_and_exits_5(sweep):
    unchecked = PipelineReport("refunds", ACTIVE, ACTIVE, errors=["source 10.0.0.9:5432/shop could not be checked"])
    dependency = TargetError("source", "10.0.0.9:5432/shop", "DatabaseUnavailable: connection refused", ("refunds",))
    secrets = TargetError("secrets", "secretsmanager", "AwsApiThrottled: rate exceeded")
    sweep.report = report(pipelines=[unchecked], orphans=[ORPHAN_SLOT], errors=[dependency, secrets])
    code, output = run()
    assert code == operate_cli.EXIT_SWEEP_INCOMPLETE == 5
    assert "could not check" in output
    assert "DatabaseUnavailable: connection refused" in output
    assert "AwsApiThrottled: rate exceeded" in output
    assert "not seen" in output  # connectors and slot of a pipeline whose source was down
    assert "incomplete:" in output
    assert sweep.report["errors"][1]["scope"] == "sweep"


def test_a_dependency_no_pipeline_names_is_the_sweeps_own_gap(sweep):
    orphan_scan = TargetError("kafka", "kafka:9092", "KafkaUnavailable: no answer")
    sweep.report = report(errors=[orphan_scan])
    code, output = run()
    assert code == 5
    assert "incomplete:" in output


def test_a_report_without_scopes_is_judged_by_the_same_rule(sweep):
    # A Reconcile function deployed before the `scope` field answers without it.
    error = TargetError("source", "db:5432/shop", "DatabaseUnavailable: refused", ("refunds",))
    document = report(errors=[error])
    del document["errors"][0]["scope"]
    sweep.report = document
    assert run()[0] == 4  # refunds' own source: a finding about refunds
    document["errors"][0]["target"] = "registry"
    assert run()[0] == 5


def test_json_prints_the_report_itself_with_the_same_exit_code(sweep):
    sweep.report = report(orphans=[ORPHAN_SLOT])
    code, output = run("--json")
    assert code == 4
    assert json.loads(output) == sweep.report


def test_names_are_printed_as_written_not_read_as_markup(sweep):
    sweep.report = report(orphans=[Orphan("connector", "cdcflow-abc-source", "http://c:8083", "abc", "[bold]odd[/]")])
    code, output = run()
    assert code == 4
    assert "[bold]odd[/]" in output


def test_an_unreadable_registry_exits_3_naming_it(sweep):
    sweep.report = EndpointConnectionError(endpoint_url="http://127.0.0.1:8000/")
    code, output = run()
    assert code == 3
    assert "cannot read the pipeline registry" in output
    assert "http://127.0.0.1:8000/" in output


def test_a_bad_reconcile_setting_exits_2_naming_it(sweep):
    sweep.report = ReconcileSettingsInvalid("reconcile settings: RECONCILE_STUCK_AFTER_MINUTES must be an integer")
    code, output = run()
    assert code == 2
    assert "RECONCILE_STUCK_AFTER_MINUTES must be an integer" in output


class FakeSession:
    """What `reconcile_on_aws` needs of a boto3 session: a Lambda client (here a stubbed one)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def client(self, service: str, **_: Any) -> Any:
        assert service == "lambda"
        return self._client


def _payload(document: Any) -> StreamingBody:
    raw = json.dumps(document).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


@pytest.fixture
def lambda_client():
    client = boto3.client("lambda", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber


def test_on_aws_the_deployed_function_is_invoked_with_the_repair_scope(lambda_client):
    client, stubber = lambda_client
    sweep = report(repair=True)
    stubber.add_response(
        "invoke",
        {"StatusCode": 200, "Payload": _payload(sweep)},
        {
            "FunctionName": "cdcflow-reconcile",
            "InvocationType": "RequestResponse",
            "Payload": json.dumps({"repair": True, "pipelines": ["a", "b"]}).encode(),
        },
    )
    assert reconcile_on_aws(FakeSession(client), repair=True, repair_only=["b", "a"]) == sweep
    stubber.assert_no_pending_responses()


def test_on_aws_a_failed_invocation_names_the_function_and_its_error(lambda_client):
    client, stubber = lambda_client
    stubber.add_response(
        "invoke",
        {
            "StatusCode": 200,
            "FunctionError": "Unhandled",
            "Payload": _payload({"errorType": "ValueError", "errorMessage": "repair: must be true or false"}),
        },
    )
    with pytest.raises(ServiceFailed, match="cdcflow-reconcile function failed: ValueError: repair: must be true"):
        reconcile_on_aws(FakeSession(client), repair=False)


@pytest.mark.parametrize(
    ("lag_bytes", "shown"),
    [(512, "lag 512 B"), (3 * 1024, "lag 3.0 KiB"), (5 * 1024**3 // 2, "lag 2.5 GiB"), (None, "lag unknown")],
)
def test_slot_lag_is_shown_in_a_readable_unit(sweep, lag_bytes, shown):
    pipeline = healthy_pipeline()
    pipeline.slot_lag_bytes = lag_bytes
    sweep.report = report(pipelines=[pipeline])
    code, output = run()
    assert code == 0
    assert shown in output


def _service(name: str, state: str, optional: bool = False):
    from pathlib import Path

    from cdcflow.local.stack import ServiceStatus

    return ServiceStatus(name, {}, None, state, None, Path("/dev/null"), optional)


def test_the_local_sweep_needs_every_service_up_but_an_optional_one_never_started(monkeypatch, tmp_path):
    monkeypatch.setenv("CDCFLOW_LOCAL_STATE_DIR", str(tmp_path))
    statuses = [_service("postgres", "up"), _service("opensearch", "down", optional=True)]
    monkeypatch.setattr(operate_cli.cdcflow.local, "status", lambda config: statuses)

    assert operate_cli.local_stack_environment()["REGISTRY_TABLE"]

    statuses[1] = _service("opensearch", "unhealthy", optional=True)
    with pytest.raises(operate_cli.ServiceUnreachable, match="opensearch not up"):
        operate_cli.local_stack_environment()
    statuses[1] = _service("kafka", "down")
    with pytest.raises(operate_cli.ServiceUnreachable, match="kafka not up"):
        operate_cli.local_stack_environment()
