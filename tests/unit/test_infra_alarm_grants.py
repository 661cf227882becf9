"""The CDK stack's side of the pipelines' alarms: who may put, delete and read them, and where they notify."""

import json

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from infra.stack import CdcflowStack
from statemachines import catalogue

pytestmark = pytest.mark.unit

ALARM_WRITES = {"cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"}


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.from_stack(CdcflowStack(cdk.App(), "Alarms"))


def function(template: Template, key: str) -> dict:
    [resource] = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"FunctionName": catalogue.by_key(key).function_name}}).values()
    return resource


def statements(template: Template, key: str) -> list[dict]:
    role = function(template, key)["Properties"]["Role"]["Fn::GetAtt"][0]
    return [statement for policy in template.find_resources("AWS::IAM::Policy").values()
            if {"Ref": role} in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]]


def actions(statement: dict) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


@pytest.mark.parametrize("key", ["PutAlarms", "DeleteAlarms"])
def test_the_alarm_steps_may_change_only_the_pipelines_alarms(template, key):
    granted = [statement for statement in statements(template, key) if actions(statement) & ALARM_WRITES]

    assert granted and all(ALARM_WRITES <= actions(statement) for statement in granted)
    assert all(json.dumps(statement["Resource"]).endswith(':alarm:cdcflow-pipeline-*"]]}') for statement in granted)


def test_the_alarm_steps_get_the_topic_the_alarms_notify(template):
    [topic_id] = template.find_resources("AWS::SNS::Topic")
    for key in ("PutAlarms", "DeleteAlarms"):
        assert function(template, key)["Properties"]["Environment"]["Variables"]["ALARM_TOPIC_ARN"] == {"Ref": topic_id}


def test_the_api_reads_the_alarms_and_changes_none(template):
    api = statements(template, "Api")

    assert any("cloudwatch:DescribeAlarms" in actions(statement) for statement in api)
    assert not [statement for statement in api if actions(statement) & ALARM_WRITES]
    # No other function may touch the pipelines' alarms.
    others = [key for key in ("CreateSlot", "Reconcile", "MarkPipeline")
              if any(actions(statement) & ALARM_WRITES for statement in statements(template, key))]
    assert others == []


def test_the_pipelines_alarms_may_publish_to_the_topic(template):
    [policy] = template.find_resources("AWS::SNS::TopicPolicy").values()
    [statement] = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid") ==
                   "PipelineAlarmsPublish"]

    assert statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and statement["Action"] == "sns:Publish"
    assert "cdcflow-pipeline-*" in json.dumps(statement["Condition"]["ArnLike"]["aws:SourceArn"])
