"""The pipelines' CloudWatch alarms on moto: created by PutAlarms, gone after DeleteAlarms, states as described."""

import boto3
import pytest

from lambdas import alarms, aws
from lambdas.steps import alarms as alarm_steps
from statemachines.provision_pipeline import PROVISION
from statemachines.teardown_pipeline import TEARDOWN
from tests.unit.factories import pipeline_spec, raw_spec

pytestmark = pytest.mark.unit

TOPIC = "arn:aws:sns:us-east-1:123456789012:cdcflow-alarms"


EXECUTION = "arn:aws:states:us-east-1:000000000000:execution:ProvisionPipeline:orders"


def step_event(state_name: str, document: dict) -> dict:
    return {"spec": document, "execution_id": EXECUTION, "state_name": state_name}


@pytest.fixture
def cloudwatch(registry_table, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_IDEMPOTENCY_DISABLED", "1")
    monkeypatch.setenv(alarms.TOPIC_ENV, TOPIC)
    aws.reset_clients()
    return boto3.client("cloudwatch", region_name="us-east-1")


def metric_alarms(cloudwatch) -> dict[str, dict]:
    return {alarm["AlarmName"]: alarm for alarm in cloudwatch.describe_alarms()["MetricAlarms"]}


def test_put_alarms_creates_one_alarm_per_metric_on_the_pipeline_dimension(cloudwatch):
    document = raw_spec("orders")
    document["alarms"] = {"slot_lag_bytes": 4096, "heartbeat_stale_minutes": 5}

    alarm_steps.put_handler(step_event("PutAlarms", document), None)

    found = metric_alarms(cloudwatch)
    assert sorted(found) == sorted(f"cdcflow-pipeline-orders-{kind.key}" for kind in alarms.KINDS)
    lag = found["cdcflow-pipeline-orders-slot-lag"]
    assert (lag["Namespace"], lag["MetricName"]) == ("cdcflow", "SlotLagBytes")
    assert lag["Dimensions"] == [{"Name": "pipeline_id", "Value": "orders"}]
    assert lag["Threshold"] == 4096 and lag["ComparisonOperator"] == "GreaterThanThreshold"
    assert lag["AlarmActions"] == [TOPIC]
    assert lag["AlarmDescription"].endswith("docs/runbooks.md#slot-lag")
    # From the spec in minutes, compared in seconds; the others keep the platform defaults.
    assert found["cdcflow-pipeline-orders-heartbeat-stale"]["Threshold"] == 300
    assert found["cdcflow-pipeline-orders-slot-inactive"]["Threshold"] == 30
    assert found["cdcflow-pipeline-orders-connector-failed"]["Threshold"] == 2
    assert found["cdcflow-pipeline-orders-slot-broken"]["MetricName"] == "SlotBroken"


def test_delete_alarms_removes_only_that_pipelines_alarms_and_may_run_twice(cloudwatch):
    alarms.put_alarms(pipeline_spec("orders"))
    alarms.put_alarms(pipeline_spec("orders_eu"))

    first = alarm_steps.delete_handler(step_event("DeleteAlarms", raw_spec("orders")), None)
    second = alarm_steps.delete_handler(step_event("DeleteAlarms", raw_spec("orders")), None)

    assert len(first["deleted"]) == len(alarms.KINDS) and second["deleted"] == []
    assert sorted(metric_alarms(cloudwatch)) == sorted(
        f"cdcflow-pipeline-orders_eu-{kind.key}" for kind in alarms.KINDS)


def test_the_rollback_and_the_teardown_delete_the_alarms_provisioning_puts():
    put = next(task for task in PROVISION.tasks() if task.name == "PutAlarms")
    rollback = [task.name for task in PROVISION.compensation_chain()]
    teardown = [task.name for task in TEARDOWN.tasks()]

    assert put.undo == "DeleteAlarms" and rollback[0] == "DeleteAlarms"
    assert teardown.index("DeleteAlarms") < teardown.index("DeleteConnectors")
    # Alarms go up last, just before the pipeline is marked ACTIVE, whether or not a backfill follows.
    steps = [task.name for task in PROVISION.tasks_of(PROVISION.steps)]
    after_alarms = steps[steps.index("PutAlarms") + 1:]
    assert after_alarms == ["MarkActive", "MarkActiveBackfilling", "StartBackfill", "CheckBackfillCopied",
                            "MarkBackfilled", "MarkBackfillFailed"]


def test_states_are_described_and_set_from_a_local_evaluation(cloudwatch):
    spec = pipeline_spec("orders")
    alarms.put_alarms(spec)
    before = {alarm["alarm"]: alarm["state"] for alarm in alarms.describe_states("orders")}
    states = alarms.evaluate(spec, {"SlotLagBytes": 2 * 1024**3, "SlotBroken": 0, "HeartbeatAgeSeconds": None})

    assert states["slot-lag"][0] == "ALARM" and states["slot-broken"][0] == "OK"
    assert "heartbeat-stale" not in states  # not observed: CloudWatch would keep its state
    assert alarms.record_states("orders", states) == []
    described = {alarm["alarm"]: alarm["state"] for alarm in alarms.describe_states("orders")}
    assert described["slot-lag"] == "ALARM" and described["slot-broken"] == "OK"
    assert described["heartbeat-stale"] == before["heartbeat-stale"]


def test_the_alarms_in_alarm_of_every_pipeline_come_from_one_listing(cloudwatch):
    for pipeline_id in ("orders", "orders_eu", "quiet"):
        alarms.put_alarms(pipeline_spec(pipeline_id))
    for name in ("cdcflow-pipeline-orders_eu-slot-lag", "cdcflow-pipeline-orders_eu-slot-broken",
                 "cdcflow-pipeline-orders-connector-failed"):
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="test")
    cloudwatch.put_metric_alarm(AlarmName="someone-elses-alarm", MetricName="M", Namespace="N", Statistic="Maximum",
                                Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    cloudwatch.set_alarm_state(AlarmName="someone-elses-alarm", StateValue="ALARM", StateReason="test")

    assert alarms.firing_alarms() == {"orders_eu": ["slot-broken", "slot-lag"], "orders": ["connector-failed"]}


def test_a_view_of_the_alarms_names_cloudwatch_being_unreadable_instead_of_failing(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    aws.reset_clients()

    view = alarms.alarm_view("orders")

    assert view["alarms"] is None and "could not be read" in view["alarms_error"]
