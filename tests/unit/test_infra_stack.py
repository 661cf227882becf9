"""The synthesized CdcflowStack: functions, workflows, tables, API, schedule,
alarms, least-privilege IAM, cdk-nag and cfn-lint."""

import json
import re
from pathlib import Path

import aws_cdk as cdk
import pytest
import yaml
from aws_cdk.assertions import Annotations, Match, Template
from cdk_nag import AwsSolutionsChecks
from cfnlint.api import lint_file

from cdcflow import catalogue
from infra import packaging
from infra.config import DEFAULT_ADMIN_SECRET_PREFIX
from infra.stack import CdcflowStack
from infra.state_machines import STATEMACHINES_DIR

pytestmark = pytest.mark.unit

DEFINITIONS = sorted(STATEMACHINES_DIR.glob("*.asl.json"))


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    """The stack as `app.py` builds it (defaults from context), synthesized once for this module."""
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = cdk.App(outdir=str(outdir))
    stack = CdcflowStack(app, "Cdcflow")
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    template = Template.from_stack(stack)
    return stack, template, outdir


@pytest.fixture(scope="module")
def stack(synthesized):
    return synthesized[0]


@pytest.fixture(scope="module")
def template(synthesized):
    return synthesized[1]


@pytest.fixture(scope="module")
def outdir(synthesized) -> Path:
    return synthesized[2]


def _function(template: Template, key: str) -> tuple[str, dict]:
    [(logical_id, resource)] = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"FunctionName": catalogue.by_key(key).function_name}},
    ).items()
    return logical_id, resource


def _logical_id(template: Template, resource_type: str, prefix: str) -> str:
    [logical_id] = [name for name in template.find_resources(resource_type) if name.startswith(prefix)]
    return logical_id


def _role_statements(template: Template, role_logical_id: str) -> list[dict]:
    return [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _function_statements(template: Template, key: str) -> list[dict]:
    _, function = _function(template, key)
    return _role_statements(template, function["Properties"]["Role"]["Fn::GetAtt"][0])


def _actions(statements: list[dict]) -> set[str]:
    return {action for statement in statements
            for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])}


def _statements_with(statements: list[dict], action: str) -> list[dict]:
    return [statement for statement in statements if action in _actions([statement])]


def _as_list(value):
    return value if isinstance(value, list) else [value]


# --- functions ---------------------------------------------------------------------------------

def test_one_function_per_catalogue_entry(template):
    template.resource_count_is("AWS::Lambda::Function", len(catalogue.FUNCTIONS))
    registry = _logical_id(template, "AWS::DynamoDB::Table", "TablesRegistry")
    idempotency = _logical_id(template, "AWS::DynamoDB::Table", "TablesIdempotency")
    layer = _logical_id(template, "AWS::Lambda::LayerVersion", "FunctionsDependencies")
    for function in catalogue.FUNCTIONS:
        template.has_resource_properties("AWS::Lambda::Function", {
            "FunctionName": function.function_name,
            "Handler": function.handler,
            "Timeout": function.timeout_seconds,
            "MemorySize": function.memory_mb,
            "Runtime": packaging.LAMBDA_RUNTIME.name,
            "TracingConfig": {"Mode": "Active"},
            "Layers": [{"Ref": layer}],
            "Environment": {"Variables": Match.object_like({
                "POWERTOOLS_SERVICE_NAME": "cdcflow",
                "POWERTOOLS_METRICS_NAMESPACE": "cdcflow",
                "LOG_LEVEL": "INFO",
                "REGISTRY_TABLE": {"Ref": registry},
                "IDEMPOTENCY_TABLE": {"Ref": idempotency},
                "ADMIN_SECRET_PREFIX": DEFAULT_ADMIN_SECRET_PREFIX,
            })},
        })


def test_each_function_logs_to_its_own_group_with_retention(template):
    for function in catalogue.FUNCTIONS:
        _, resource = _function(template, function.key)
        log_group_id = resource["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        log_group = template.to_json()["Resources"][log_group_id]["Properties"]
        assert log_group["LogGroupName"] == f"/aws/lambda/{function.function_name}"
        assert log_group["RetentionInDays"] > 0


def test_only_functions_that_reach_the_sources_run_in_the_vpc(template):
    for function in catalogue.FUNCTIONS:
        _, resource = _function(template, function.key)
        in_vpc = "VpcConfig" in resource["Properties"]
        assert in_vpc == (catalogue.VPC_NETWORK in function.permissions), function.key
        statements = _function_statements(template, function.key)
        assert ("ec2:CreateNetworkInterface" in _actions(statements)) == in_vpc, function.key


def test_without_a_vpc_in_context_the_stack_creates_one_with_flow_logs(template):
    template.resource_count_is("AWS::EC2::VPC", 1)
    template.resource_count_is("AWS::EC2::FlowLog", 1)
    template.resource_count_is("AWS::EC2::NatGateway", 1)


def test_functions_with_workflow_permissions_know_the_state_machine_arns(template):
    machines = template.find_resources("AWS::StepFunctions::StateMachine")
    for function in catalogue.FUNCTIONS:
        _, resource = _function(template, function.key)
        variables = resource["Properties"]["Environment"]["Variables"]
        arn_variables = {name: value for name, value in variables.items() if name.endswith("_STATE_MACHINE_ARN")}
        if function.permissions & {catalogue.STATES_START, catalogue.STATES_READ, catalogue.STATES_TASK_TOKEN}:
            assert set(arn_variables) == {
                f"{path.name.removesuffix('.asl.json').removesuffix('_pipeline').upper()}_STATE_MACHINE_ARN"
                for path in DEFINITIONS
            }
            if function.key == "Api":  # the names lambdas/api.py reads
                assert {"PROVISION_STATE_MACHINE_ARN", "TEARDOWN_STATE_MACHINE_ARN"} <= set(arn_variables)
            assert {value["Ref"] for value in arn_variables.values()} == set(machines)
        else:
            assert arn_variables == {}, function.key


# --- IAM: each function holds only what its catalogue permissions name ---------------------------

def test_only_functions_with_secrets_write_may_delete_secrets(template):
    for function in catalogue.FUNCTIONS:
        statements = _function_statements(template, function.key)
        deleting = _statements_with(statements, "secretsmanager:DeleteSecret")
        if catalogue.SECRETS_WRITE in function.permissions:
            assert deleting, function.key
            for statement in deleting:
                [resource] = _as_list(statement["Resource"])
                assert resource["Fn::Join"][1][-1].endswith(":secret:cdcflow/*")
        else:
            assert deleting == [], function.key
            assert not any(action.startswith("secretsmanager:") and action not in
                           ("secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret")
                           for action in _actions(statements)), function.key


def test_secret_reads_are_scoped_to_the_admin_and_replication_prefixes(template):
    for function in catalogue.FUNCTIONS:
        reading = _statements_with(_function_statements(template, function.key), "secretsmanager:GetSecretValue")
        if not function.permissions & {catalogue.SECRETS_READ, catalogue.SECRETS_WRITE}:
            assert reading == [], function.key
            continue
        suffixes = {resource["Fn::Join"][1][-1].rsplit(":secret:", 1)[1]
                    for statement in reading for resource in _as_list(statement["Resource"])}
        expected = {"cdcflow/*"} | ({f"{DEFAULT_ADMIN_SECRET_PREFIX}*"}
                                    if catalogue.SECRETS_READ in function.permissions else set())
        assert suffixes == expected, function.key


def test_registry_and_rds_grants_follow_the_catalogue(template):
    registry = _logical_id(template, "AWS::DynamoDB::Table", "TablesRegistry")
    for function in catalogue.FUNCTIONS:
        statements = _function_statements(template, function.key)
        on_registry = [statement for statement in statements
                       if {"Fn::GetAtt": [registry, "Arn"]} in _as_list(statement["Resource"])]
        registry_actions = _actions(on_registry)
        permissions = function.permissions
        assert ("dynamodb:PutItem" in registry_actions) == (catalogue.REGISTRY_WRITE in permissions), function.key
        assert ("dynamodb:GetItem" in registry_actions) == bool(
            permissions & {catalogue.REGISTRY_READ, catalogue.REGISTRY_WRITE}), function.key

        actions = _actions(statements)
        assert ("rds:RebootDBInstance" in actions) == (catalogue.RDS_PARAMETERS in permissions), function.key
        assert ("rds:ModifyDBParameterGroup" in actions) == (catalogue.RDS_PARAMETERS in permissions), function.key
        assert ("rds:DescribeDBInstances" in actions) == (catalogue.RDS_DESCRIBE in permissions), function.key
        for statement in _statements_with(statements, "rds:CreateDBParameterGroup"):
            [resource] = _as_list(statement["Resource"])
            assert resource["Fn::Join"][1][-1].endswith(":pg:cdcflow-*")  # only groups cdcflow manages


def test_workflow_grants_follow_the_catalogue(template):
    for function in catalogue.FUNCTIONS:
        actions = _actions(_function_statements(template, function.key))
        permissions = function.permissions
        assert ("states:StartExecution" in actions) == (catalogue.STATES_START in permissions), function.key
        assert ("states:DescribeExecution" in actions) == (catalogue.STATES_READ in permissions), function.key
        assert ("states:SendTaskSuccess" in actions) == (catalogue.STATES_TASK_TOKEN in permissions), function.key


def test_metrics_are_limited_to_the_cdcflow_namespace(template):
    for function in catalogue.FUNCTIONS:
        for statement in _statements_with(_function_statements(template, function.key), "cloudwatch:PutMetricData"):
            assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "cdcflow"}}


def test_no_function_role_has_managed_policies(template):
    for function in catalogue.FUNCTIONS:
        _, resource = _function(template, function.key)
        role = template.to_json()["Resources"][resource["Properties"]["Role"]["Fn::GetAtt"][0]]
        assert "ManagedPolicyArns" not in role["Properties"], function.key


# --- state machines ------------------------------------------------------------------------------

def test_one_state_machine_per_definition_with_logging_and_tracing(template):
    machines = template.find_resources("AWS::StepFunctions::StateMachine")
    assert DEFINITIONS and len(machines) == len(DEFINITIONS)
    for machine in machines.values():
        properties = machine["Properties"]
        assert properties["StateMachineType"] == "STANDARD"
        assert properties["TracingConfiguration"] == {"Enabled": True}
        assert properties["LoggingConfiguration"]["Level"] == "ALL"
        assert properties["LoggingConfiguration"]["IncludeExecutionData"] is False


def test_definitions_have_every_placeholder_substituted(template, outdir):
    machines = template.find_resources("AWS::StepFunctions::StateMachine")
    function_ids = {catalogue.by_key(function.key).substitution: _function(template, function.key)[0]
                    for function in catalogue.FUNCTIONS}
    definitions = set()
    for machine in machines.values():
        properties = machine["Properties"]
        definition = (outdir / f"asset.{properties['DefinitionS3Location']['Key']}").read_text()
        definitions.add(definition)
        substitutions = properties["DefinitionSubstitutions"]
        for name, value in substitutions.items():
            assert value == {"Fn::GetAtt": [function_ids[name], "Arn"]}
            definition = definition.replace(f"${{{name}}}", "arn:aws:lambda:resolved")
        assert "${" not in definition
        json.loads(definition)  # still valid JSON after substitution
    assert definitions == {path.read_text() for path in DEFINITIONS}  # the files, loaded as they are


def test_state_machine_roles_invoke_exactly_the_functions_their_definitions_name(template, outdir):
    machines = template.find_resources("AWS::StepFunctions::StateMachine")
    for machine in machines.values():
        properties = machine["Properties"]
        statements = _role_statements(template, properties["RoleArn"]["Fn::GetAtt"][0])
        [invoke] = _statements_with(statements, "lambda:InvokeFunction")
        invoked = {reference["Fn::GetAtt"][0] for reference in _as_list(invoke["Resource"])}
        named = set(re.findall(r"\$\{(\w+)FunctionArn\}",
                               (outdir / f"asset.{properties['DefinitionS3Location']['Key']}").read_text()))
        assert invoked == {_function(template, key)[0] for key in named}
        # Beyond invoking: only X-Ray and log delivery.
        others = _actions(statements) - {"lambda:InvokeFunction"}
        assert all(action.startswith(("xray:", "logs:")) for action in others), others


# --- tables --------------------------------------------------------------------------------------

def test_registry_table(template):
    template.has_resource_properties("AWS::DynamoDB::Table", {
        "KeySchema": [{"AttributeName": "pipeline_id", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "SSESpecification": {"SSEEnabled": True},
        "DeletionProtectionEnabled": True,
        "GlobalSecondaryIndexes": [Match.object_like({
            "IndexName": "by-status",
            "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"},
                          {"AttributeName": "pipeline_id", "KeyType": "RANGE"}],
        })],
    })


def test_idempotency_table_expires_records(template):
    template.has_resource_properties("AWS::DynamoDB::Table", {
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "BillingMode": "PAY_PER_REQUEST",
    })


# --- API -----------------------------------------------------------------------------------------

def _api_methods(template: Template) -> dict[tuple[str, str], dict]:
    """The API's methods by (verb, full path)."""
    resources = template.find_resources("AWS::ApiGateway::Resource")

    def full_path(logical_id: str) -> str:
        properties = resources[logical_id]["Properties"]
        parent = properties["ParentId"]
        head = full_path(parent["Ref"]) if "Ref" in parent else ""  # no Ref: the API's root resource
        return f"{head}/{properties['PathPart']}"

    return {
        (method["Properties"]["HttpMethod"], full_path(method["Properties"]["ResourceId"]["Ref"])): method["Properties"]
        for method in template.find_resources("AWS::ApiGateway::Method").values()
    }


def test_api_routes_are_iam_authorized_proxies_to_the_api_function(template):
    api_function, _ = _function(template, "Api")
    methods = _api_methods(template)
    assert set(methods) == {
        ("GET", "/pipelines"), ("POST", "/pipelines"), ("GET", "/pipelines/{id}"), ("DELETE", "/pipelines/{id}"),
        ("POST", "/pipelines/{id}/approval"),
    }
    for (_, path), properties in methods.items():
        assert properties["AuthorizationType"] == "AWS_IAM"
        assert properties["Integration"]["Type"] == "AWS_PROXY"
        assert api_function in json.dumps(properties["Integration"]["Uri"])
        if "{id}" in path:
            assert properties["RequestParameters"] == {"method.request.path.id": True}
            assert "RequestValidatorId" in properties


def test_api_routes_match_the_openapi_document(template):
    openapi = yaml.safe_load((Path(__file__).parents[2] / "docs" / "openapi.yaml").read_text())
    documented = {(verb.upper(), path) for path, item in openapi["paths"].items()
                  for verb in item if verb in ("get", "post", "put", "patch", "delete")}
    assert set(_api_methods(template)) == documented


def test_api_validates_parameters_and_answers_in_the_function_error_shape(template):
    template.has_resource_properties("AWS::ApiGateway::RequestValidator", {"ValidateRequestParameters": True})
    template.has_resource_properties("AWS::ApiGateway::GatewayResponse", {
        "ResponseType": "BAD_REQUEST_PARAMETERS",
        "StatusCode": "400",
        "ResponseTemplates": {"application/json": Match.string_like_regexp('"message"')},
    })


def test_api_stage_traces_and_logs_access(template):
    template.has_resource_properties("AWS::ApiGateway::Stage", {
        "TracingEnabled": True,
        "AccessLogSetting": {"DestinationArn": Match.any_value(), "Format": Match.any_value()},
        "MethodSettings": [Match.object_like({"LoggingLevel": "INFO", "DataTraceEnabled": False})],
    })


# --- schedule and observability -----------------------------------------------------------------

def test_reconcile_runs_on_the_default_schedule(template):
    reconcile, _ = _function(template, "Reconcile")
    template.has_resource_properties("AWS::Events::Rule", {
        "ScheduleExpression": "rate(15 minutes)",
        "State": "ENABLED",
        "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [reconcile, "Arn"]}})],
    })


def test_alarms_on_failed_and_timed_out_executions_and_function_errors(template):
    topic = _logical_id(template, "AWS::SNS::Topic", "ObservabilityAlarmTopic")
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    watched = set()
    for alarm in alarms.values():
        properties = alarm["Properties"]
        assert properties["AlarmActions"] == [{"Ref": topic}]
        [dimension] = properties["Dimensions"]
        watched.add((properties["MetricName"], dimension["Value"]["Ref"]))
    machines = template.find_resources("AWS::StepFunctions::StateMachine")
    functions = [_function(template, function.key)[0] for function in catalogue.FUNCTIONS]
    assert watched == (
        {(metric, machine) for machine in machines for metric in ("ExecutionsFailed", "ExecutionsTimedOut")}
        | {("Errors", function) for function in functions}
    )


def test_alarm_topic_is_encrypted_and_requires_tls(template):
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    template.has_resource_properties("AWS::SNS::TopicPolicy", {"PolicyDocument": {"Statement": Match.array_with([
        Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}),
    ])}})
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_dashboard_shows_executions_failures_errors_and_durations(template):
    [dashboard] = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in ("ExecutionsStarted", "ExecutionsFailed", "ExecutionsTimedOut", "Errors", "Duration"):
        assert metric in body


# --- packaging -----------------------------------------------------------------------------------

def test_code_asset_holds_the_lambdas_package_and_the_layer_the_dependencies(template, outdir):
    _, function = _function(template, "ValidateSpec")
    code = outdir / f"asset.{function['Properties']['Code']['S3Key'].removesuffix('.zip')}"
    assert sorted(path.name for path in code.iterdir()) == ["lambdas"]
    assert (code / "lambdas" / "schemas" / "pipeline_spec.schema.json").is_file()
    assert not list(code.rglob("__pycache__"))

    [layer] = template.find_resources("AWS::Lambda::LayerVersion").values()
    layer_dir = outdir / f"asset.{layer['Properties']['Content']['S3Key'].removesuffix('.zip')}"
    installed = {path.name for path in (layer_dir / "python").iterdir()}
    assert {"psycopg", "psycopg_binary", "kafka", "requests", "aws_lambda_powertools", "jsonschema"} <= installed
    cpython_tag = "cpython-" + packaging.PIP_PYTHON_VERSION.replace(".", "")
    assert any(cpython_tag in path.name for path in (layer_dir / "python" / "psycopg_binary").iterdir())


# --- cdk-nag and cfn-lint ------------------------------------------------------------------------

def test_cdk_nag_aws_solutions_reports_nothing_unjustified(stack, template):
    annotations = Annotations.from_stack(stack)
    errors = annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
    warnings = annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert [(message.id, str(message.entry.data)[:120]) for message in errors + warnings] == []


def test_cdk_nag_suppressions_each_give_a_reason(template):
    for logical_id, resource in template.to_json()["Resources"].items():
        for suppression in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            assert len(suppression["reason"]) >= 40, (logical_id, suppression)


def test_cfn_lint_finds_no_errors(template, tmp_path):
    path = tmp_path / "Cdcflow.template.json"
    path.write_text(json.dumps(template.to_json()))
    errors = [f"{match.rule.id} {match.message}" for match in lint_file(path) if match.rule.id.startswith("E")]
    assert errors == []
