"""The app entry point and the stack under non-default context."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Annotations, Match, Template
from cdk_nag import AwsSolutionsChecks

from statemachines import catalogue
from infra.config import InvalidSetting, Settings
from infra.functions import CatalogueFunctions
from infra.stack import CdcflowStack
from infra.tables import Tables

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
VPC = "vpc-0123456789abcdef0"
SUBNETS = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
SECURITY_GROUP = "sg-0123456789abcdef0"
MSK_CLUSTER = "arn:aws:kafka:us-east-1:123456789012:cluster/orders/0a1b2c3d-0123-4567-89ab-0123456789ab-2"


@pytest.mark.slow
def test_app_py_synthesizes_with_cdk_nag_and_no_errors(tmp_path):
    env = os.environ | {"CDK_OUTDIR": str(tmp_path), "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    template = json.loads((tmp_path / "Cdcflow.template.json").read_text())
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert len(functions) == len(catalogue.FUNCTIONS)
    # cdk-nag ran, and every rule it checked is compliant or suppressed with a reason.
    [report] = tmp_path.glob("AwsSolutions-*Cdcflow-NagReport.csv")
    with report.open(newline="") as rows:
        compliance = {row["Compliance"] for row in csv.DictReader(rows)}
    assert compliance <= {"Compliant", "Suppressed"} and "Compliant" in compliance
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    errors = [entry["data"] for artifact in manifest["artifacts"].values()
              for entries in artifact.get("metadata", {}).values() for entry in entries
              if entry["type"] in ("aws:cdk:error", "aws:cdk:warning")]
    assert errors == []


@pytest.fixture(scope="module")
def existing_vpc_stack():
    app = cdk.App(context={
        "vpcId": VPC,
        "subnetIds": ",".join(SUBNETS),
        "securityGroupIds": [SECURITY_GROUP],
        "adminSecretPrefix": "team-db-admins/",
        "reconcileSchedule": "rate(1 hour)",
        "mskClusterArns": [MSK_CLUSTER],
        "logLevel": "DEBUG",
        # Packaging is covered by test_infra_stack; skip it here to keep this synth quick.
        "aws:cdk:bundling-stacks": [],
    })
    stack = CdcflowStack(app, "Cdcflow")
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return stack, Template.from_stack(stack)


def test_functions_join_the_given_subnets_and_security_groups(existing_vpc_stack):
    _, template = existing_vpc_stack
    template.resource_count_is("AWS::EC2::VPC", 0)
    template.resource_count_is("AWS::EC2::SecurityGroup", 0)
    in_vpc = [function for function in catalogue.FUNCTIONS if catalogue.VPC_NETWORK in function.permissions]
    for function in in_vpc:
        template.has_resource_properties("AWS::Lambda::Function", {
            "FunctionName": function.function_name,
            "VpcConfig": {"SubnetIds": SUBNETS, "SecurityGroupIds": [SECURITY_GROUP]},
            "Environment": {"Variables": Match.object_like({
                "LOG_LEVEL": "DEBUG", "ADMIN_SECRET_PREFIX": "team-db-admins/",
            })},
        })


def test_context_sets_the_schedule_and_the_admin_secret_prefix(existing_vpc_stack):
    _, template = existing_vpc_stack
    template.has_resource_properties("AWS::Events::Rule", {"ScheduleExpression": "rate(1 hour)"})
    policies = json.dumps(template.find_resources("AWS::IAM::Policy"))
    assert ":secret:team-db-admins/*" in policies
    assert ":secret:cdcflow-admin/*" not in policies


def _role_policy_statements(template: Template, function_name: str) -> list[dict]:
    [function] = [f for f in template.find_resources("AWS::Lambda::Function").values()
                  if f["Properties"]["FunctionName"] == function_name]
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return [statement for policy in template.find_resources("AWS::IAM::Policy").values()
            if {"Ref": role} in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]]


def test_functions_that_reach_kafka_may_use_the_listed_msk_clusters_with_iam(existing_vpc_stack):
    _, template = existing_vpc_stack
    topics = "arn:aws:kafka:us-east-1:123456789012:topic/orders/0a1b2c3d-0123-4567-89ab-0123456789ab-2/*"
    for function in catalogue.FUNCTIONS:
        granted = {(action, resource) for statement in _role_policy_statements(template, function.function_name)
                   for action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
                   if action.startswith("kafka-cluster:")
                   for resource in (statement["Resource"] if isinstance(statement["Resource"], list)
                                    else [statement["Resource"]])}
        if catalogue.VPC_NETWORK in function.permissions:
            assert ("kafka-cluster:Connect", MSK_CLUSTER) in granted, function.key
            assert ("kafka-cluster:CreateTopic", topics) in granted and ("kafka-cluster:DeleteTopic", topics) in granted
            assert {resource for _, resource in granted} <= {MSK_CLUSTER, topics, topics.replace(":topic/", ":group/")}
        else:
            assert granted == set(), function.key


def test_existing_vpc_variant_passes_cdk_nag(existing_vpc_stack):
    stack, _ = existing_vpc_stack
    annotations = Annotations.from_stack(stack)
    findings = (annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
                + annotations.find_warning("*", Match.any_value()))
    assert [(message.id, str(message.entry.data)[:120]) for message in findings] == []


def test_bad_context_fails_the_synth_naming_the_key():
    app = cdk.App(context={"vpcId": VPC})
    with pytest.raises(InvalidSetting, match="subnetIds"):
        CdcflowStack(app, "Cdcflow")


def test_a_catalogue_permission_without_a_grant_fails_the_synth():
    stack = cdk.Stack(cdk.App())
    unknown = catalogue.Function(
        key="Teleport", handler="lambdas.steps.teleport.handler", description="no such step",
        permissions=frozenset({"teleport:anywhere"}),
    )
    with pytest.raises(ValueError, match=r"Teleport names unknown permissions: \['teleport:anywhere'\]"):
        CatalogueFunctions(stack, "Functions", tables=Tables(stack, "Tables"), network=None,
                           settings=Settings(), functions=[unknown])
