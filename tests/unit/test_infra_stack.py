"""The synthesized CdcflowStack: functions, workflows, tables, API, schedule,
alarms, least-privilege IAM, cdk-nag and cfn-lint."""

import json
import re
from pathlib import Path

import aws_cdk as cdk
import pytest
import yaml
from aws_calls import reachable_operations
from aws_cdk.assertions import Annotations, Match, Template
from cdk_nag import AwsSolutionsChecks
from cfnlint.api import lint_file

from infra import packaging
from infra.config import (
    DEFAULT_ADMIN_SECRET_PREFIX,
    DEFAULT_API_RESERVED_CONCURRENCY,
    DEFAULT_API_THROTTLE_BURST,
    DEFAULT_API_THROTTLE_RATE,
    Settings,
)
from infra.stack import CdcflowStack
from infra.state_machines import STATEMACHINES_DIR
from statemachines import catalogue

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
            if function.key == "Api":  # the names lambdas/executions.py reads
                assert {"PROVISION_STATE_MACHINE_ARN", "TEARDOWN_STATE_MACHINE_ARN"} <= set(arn_variables)
            assert {value["Ref"] for value in arn_variables.values()} == set(machines)
        else:
            assert arn_variables == {}, function.key


# --- IAM: each function holds only what its catalogue permissions name ---------------------------

def test_only_functions_with_secrets_delete_may_delete_secrets(template):
    for function in catalogue.FUNCTIONS:
        statements = _function_statements(template, function.key)
        deleting = _statements_with(statements, "secretsmanager:DeleteSecret")
        if catalogue.SECRETS_DELETE in function.permissions:
            assert deleting, function.key
            for statement in deleting:
                [resource] = _as_list(statement["Resource"])
                assert resource["Fn::Join"][1][-1].endswith(":secret:cdcflow/*")
        else:
            assert deleting == [], function.key
        if not function.permissions & {catalogue.SECRETS_WRITE, catalogue.SECRETS_DELETE, catalogue.SECRETS_LIST}:
            assert not any(action.startswith("secretsmanager:") and action not in
                           ("secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret")
                           for action in _actions(statements)), function.key


# What IAM asks for besides the operation itself, for the calls the code makes (tags given at creation).
_IMPLIED_ACTIONS = {
    "secretsmanager:CreateSecret": {"secretsmanager:TagResource"},
    "rds:CopyDBParameterGroup": {"rds:AddTagsToResource"},
}


@pytest.mark.parametrize("service", ["secretsmanager", "rds"])
def test_each_role_allows_exactly_the_calls_its_code_makes(template, service):
    """Every operation a function's code can reach is allowed; no mutating one beyond them is."""
    for function in catalogue.FUNCTIONS:
        called = {f"{service}:{operation}" for operation in reachable_operations(function.handler, service)}
        allowed = {action for action in _actions(_function_statements(template, function.key))
                   if action.startswith(f"{service}:")}
        assert called <= allowed, (function.key, sorted(called - allowed))
        implied = set().union(*(_IMPLIED_ACTIONS.get(action, set()) for action in called))
        # Describe* and List* come as a family with `*:describe`/`*:read`; anything that changes is exact.
        changing = {action for action in allowed if not action.split(":")[1].startswith(("Describe", "List", "Get"))}
        assert changing <= called | implied, (function.key, sorted(changing - called - implied))


def test_reconcile_role_has_the_secret_actions_its_orphan_repair_calls(template):
    called = reachable_operations(catalogue.by_key("Reconcile").handler, "secretsmanager")
    # The analysis must see the calls this test is about, or it proves nothing.
    assert {"ListSecrets", "DeleteSecret", "DescribeSecret", "GetSecretValue"} <= called
    statements = _function_statements(template, "Reconcile")
    [listing] = _statements_with(statements, "secretsmanager:ListSecrets")
    assert listing["Resource"] == "*"  # ListSecrets has no resource type or condition key
    assert _as_list(listing["Action"]) == ["secretsmanager:ListSecrets"]
    [deleting] = _statements_with(statements, "secretsmanager:DeleteSecret")
    [resource] = _as_list(deleting["Resource"])
    assert resource["Fn::Join"][1][-1].endswith(":secret:cdcflow/*")
    assert not _statements_with(statements, "secretsmanager:CreateSecret")


def test_reboot_source_instance_may_only_reboot_and_describe(template):
    actions = {action for action in _actions(_function_statements(template, "RebootSourceInstance"))
               if action.startswith("rds:")}
    assert actions == {"rds:RebootDBInstance", "rds:DescribeDBInstances", "rds:DescribeDBParameterGroups",
                       "rds:DescribeDBParameters", "rds:ListTagsForResource"}
    ensure = _actions(_function_statements(template, "EnsureLogicalReplication"))
    assert "rds:ModifyDBParameterGroup" in ensure
    assert "rds:RebootDBInstance" not in ensure


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
        assert ("rds:RebootDBInstance" in actions) == (catalogue.RDS_REBOOT in permissions), function.key
        assert ("rds:ModifyDBParameterGroup" in actions) == (catalogue.RDS_PARAMETERS in permissions), function.key
        assert ("rds:DescribeDBInstances" in actions) == (catalogue.RDS_DESCRIBE in permissions), function.key
        assert ("rds:DeleteDBParameterGroup" in actions) == (catalogue.RDS_RESTORE in permissions), function.key
        assert "rds:CreateDBParameterGroup" not in actions, function.key  # copies only, never a group from scratch
        for action in ("rds:ModifyDBParameterGroup", "rds:DeleteDBParameterGroup", "rds:AddTagsToResource"):
            for statement in _statements_with(statements, action):
                [resource] = _as_list(statement["Resource"])
                assert resource["Fn::Join"][1][-1].endswith(":pg:cdcflow-*"), (function.key, action)


def _resource_suffixes(statement: dict) -> list[str]:
    return [resource if isinstance(resource, str) else resource["Fn::Join"][1][-1]
            for resource in _as_list(statement["Resource"])]


def test_the_tags_iam_conditions_on_are_the_tags_the_code_sets():
    from infra import functions
    from lambdas import rds, secrets

    assert functions.SECRET_USE_TAG == secrets.USE_TAG
    assert functions.SECRET_MANAGED_TAG == secrets.MANAGED_TAG
    assert functions.SECRET_PIPELINE_TAG == secrets.PIPELINE_TAG
    assert functions.SECRET_TEAM_TAG == secrets.TEAM_TAG
    assert set(secrets.managed_tags("orders", "team-orders")) == {
        functions.SECRET_MANAGED_TAG, functions.SECRET_PIPELINE_TAG, functions.SECRET_TEAM_TAG}
    assert functions.RDS_MANAGED_TAG == rds.MANAGED_TAG
    assert rds.dedicated_group_name("shop-db").startswith(functions.RDS_MANAGED_GROUP_PREFIX)


def test_every_secret_statement_is_narrowed_by_a_tag(template):
    for function in catalogue.FUNCTIONS:
        for statement in _function_statements(template, function.key):
            actions = _actions([statement])
            if not any(action.startswith("secretsmanager:") for action in actions) or actions == {
                    "secretsmanager:ListSecrets"}:
                continue
            [suffix] = _resource_suffixes(statement)
            conditions = statement.get("Condition", {})
            if "secretsmanager:CreateSecret" in actions:
                assert suffix.endswith(":secret:cdcflow/*")
                assert conditions["StringEquals"] == {"aws:RequestTag/cdcflow:managed": "true"}
                assert conditions["Null"] == {"aws:RequestTag/cdcflow:pipeline": "false",
                                              "aws:RequestTag/cdcflow:team": "false"}
                assert conditions["ForAllValues:StringEquals"] == {
                    "aws:TagKeys": ["cdcflow:managed", "cdcflow:pipeline", "cdcflow:team"]}
            elif suffix.endswith(f":secret:{DEFAULT_ADMIN_SECRET_PREFIX}*"):
                assert actions == {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}, function.key
                assert conditions == {"StringEquals": {"secretsmanager:ResourceTag/cdcflow:use": "true"}}
            else:
                assert suffix.endswith(":secret:cdcflow/*"), (function.key, suffix)
                assert conditions == {"StringEquals": {"secretsmanager:ResourceTag/cdcflow:managed": "true"}}, \
                    (function.key, actions)


def test_rds_changes_need_the_managed_tag_on_the_instance_or_the_group(template):
    read_only = {"rds:DescribeDBInstances", "rds:DescribeDBParameterGroups", "rds:DescribeDBParameters",
                 "rds:ListTagsForResource"}
    instance_tag = {"StringEquals": {"rds:db-tag/cdcflow:managed": "true"}}
    group_tag = {"StringEquals": {"rds:pg-tag/cdcflow:managed": "true"}}
    request_tag = {"StringEquals": {"aws:RequestTag/cdcflow:managed": "true"}}
    seen = set()
    for function in catalogue.FUNCTIONS:
        for statement in _function_statements(template, function.key):
            actions = {action for action in _actions([statement]) if action.startswith("rds:")}
            if not actions or actions <= read_only:
                continue
            assert len(actions) == 1, (function.key, actions)  # one action per statement: one condition each
            [action], [suffix] = actions, _resource_suffixes(statement)
            condition = statement.get("Condition")
            seen.add(action)
            if suffix.endswith(":db:*"):
                assert condition == instance_tag, (function.key, action)
            elif action in ("rds:CopyDBParameterGroup", "rds:AddTagsToResource"):
                assert condition == request_tag, (function.key, action)
            elif suffix.endswith(":pg:cdcflow-*"):
                assert condition == group_tag, (function.key, action)
            else:
                # Re-attaching the original group: the instance side of the same call needs the instance tag.
                assert (function.key, action, suffix.endswith(":pg:*")) == (
                    "RestoreParameterGroup", "rds:ModifyDBInstance", True)
                assert condition is None
    assert seen == {"rds:CopyDBParameterGroup", "rds:AddTagsToResource", "rds:ModifyDBParameterGroup",
                    "rds:ModifyDBInstance", "rds:DeleteDBParameterGroup", "rds:RebootDBInstance"}


def test_the_compensation_alone_may_delete_parameter_groups(template):
    restore = _actions(_function_statements(template, "RestoreParameterGroup"))
    assert {action for action in restore if action.startswith("rds:")} == {
        "rds:ModifyDBInstance", "rds:DeleteDBParameterGroup", "rds:DescribeDBInstances",
        "rds:DescribeDBParameterGroups", "rds:DescribeDBParameters", "rds:ListTagsForResource"}
    ensure = _actions(_function_statements(template, "EnsureLogicalReplication"))
    assert "rds:DeleteDBParameterGroup" not in ensure and "rds:RebootDBInstance" not in ensure


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


def test_principals_table_is_keyed_by_principal_and_kept(template):
    from lambdas import principals

    template.has_resource_properties("AWS::DynamoDB::Table", {
        "KeySchema": [{"AttributeName": principals.PARTITION_KEY, "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "SSESpecification": {"SSEEnabled": True},
        "DeletionProtectionEnabled": True,
    })


def test_only_the_api_reads_the_principals_table_and_nothing_writes_it(template):
    principals_table = _logical_id(template, "AWS::DynamoDB::Table", "TablesPrincipals")
    assert catalogue.PRINCIPALS_READ in catalogue.by_key("Api").permissions
    for function in catalogue.FUNCTIONS:
        statements = [statement for statement in _function_statements(template, function.key)
                      if {"Fn::GetAtt": [principals_table, "Arn"]} in _as_list(statement["Resource"])]
        actions = _actions(statements)
        reads = catalogue.PRINCIPALS_READ in function.permissions
        assert ("dynamodb:GetItem" in actions) == reads, function.key
        assert not actions & {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                              "dynamodb:BatchWriteItem"}, function.key
        environment = _function(template, function.key)[1]["Properties"]["Environment"]["Variables"]
        assert ("PRINCIPALS_TABLE" in environment) == reads, function.key
        if reads:
            assert environment["PRINCIPALS_TABLE"] == {"Ref": principals_table}


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
        ("PATCH", "/pipelines/{id}"), ("PUT", "/pipelines/{id}"),
        ("POST", "/pipelines/{id}/approval"), ("POST", "/pipelines/{id}/pause"), ("POST", "/pipelines/{id}/resume"),
        ("POST", "/pipelines/{id}/resync"),
        ("GET", "/connections"), ("POST", "/connections"),
        ("GET", "/connections/{name}"), ("DELETE", "/connections/{name}"),
    }
    for (_, path), properties in methods.items():
        assert properties["AuthorizationType"] == "AWS_IAM"
        assert properties["Integration"]["Type"] == "AWS_PROXY"
        assert api_function in json.dumps(properties["Integration"]["Uri"])
        for parameter in ("id", "name"):
            if f"{{{parameter}}}" in path:
                assert properties["RequestParameters"] == {f"method.request.path.{parameter}": True}
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


def test_api_stage_throttles_every_method_by_default(template):
    template.has_resource_properties("AWS::ApiGateway::Stage", {
        "MethodSettings": [Match.object_like({
            "HttpMethod": "*", "ResourcePath": "/*",
            "ThrottlingRateLimit": DEFAULT_API_THROTTLE_RATE, "ThrottlingBurstLimit": DEFAULT_API_THROTTLE_BURST,
        })],
    })


def test_only_the_api_and_reconcile_reserve_concurrency(template):
    reserved = {}
    for function in catalogue.FUNCTIONS:
        _, resource = _function(template, function.key)
        reserved[function.key] = resource["Properties"].get("ReservedConcurrentExecutions")
    assert reserved.pop("Api") == DEFAULT_API_RESERVED_CONCURRENCY
    assert reserved.pop("Reconcile") == 1  # one sweep at a time; the lease covers sweeps outside Lambda
    assert set(reserved.values()) == {None}


def test_api_limits_come_from_the_settings():
    app = cdk.App()
    settings = Settings(api_throttle_rate=7, api_throttle_burst=9, api_reserved_concurrency=3)
    overridden = Template.from_stack(CdcflowStack(app, "Limits", settings=settings))
    overridden.has_resource_properties("AWS::ApiGateway::Stage", {
        "MethodSettings": [Match.object_like({"ThrottlingRateLimit": 7, "ThrottlingBurstLimit": 9})],
    })
    overridden.has_resource_properties("AWS::Lambda::Function", {
        "FunctionName": catalogue.by_key("Api").function_name, "ReservedConcurrentExecutions": 3,
    })


# --- schedule and observability -----------------------------------------------------------------

def test_failed_reconcile_runs_go_to_an_encrypted_queue(template):
    reconcile, _ = _function(template, "Reconcile")
    queue = _logical_id(template, "AWS::SQS::Queue", "ScheduleFailedRuns")
    template.has_resource_properties("AWS::SQS::Queue", {"SqsManagedSseEnabled": True,
                                                         "MessageRetentionPeriod": 14 * 86400})
    template.has_resource_properties("AWS::Lambda::EventInvokeConfig", {
        "FunctionName": {"Ref": reconcile},
        "MaximumRetryAttempts": 2,
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [queue, "Arn"]}}},
    })
    template.has_resource_properties("AWS::Events::Rule", {
        "Targets": [Match.object_like({"DeadLetterConfig": {"Arn": {"Fn::GetAtt": [queue, "Arn"]}}})],
    })
    # Only TLS callers may use the queue.
    [policy] = template.find_resources("AWS::SQS::QueuePolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for statement in statements)
    # The function's role may send to it (the on-failure destination).
    assert any("sqs:SendMessage" in _as_list(statement["Action"])
               for statement in _statements_with(_function_statements(template, "Reconcile"), "sqs:SendMessage"))


def test_reconcile_may_touch_only_its_lease_in_the_idempotency_table(template):
    idempotency = _logical_id(template, "AWS::DynamoDB::Table", "TablesIdempotency")
    statements = [statement for statement in _function_statements(template, "Reconcile")
                  if {"Fn::GetAtt": [idempotency, "Arn"]} in _as_list(statement["Resource"])]
    [lease] = statements
    assert lease["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["reconcile-lease"]}}
    assert set(_as_list(lease["Action"])) == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                              "dynamodb:DeleteItem"}


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
        value = dimension["Value"]
        watched.add((properties["MetricName"], value["Ref"] if "Ref" in value else value["Fn::GetAtt"][0]))
    machines = template.find_resources("AWS::StepFunctions::StateMachine")
    functions = [_function(template, function.key)[0] for function in catalogue.FUNCTIONS]
    failed_runs = _logical_id(template, "AWS::SQS::Queue", "ScheduleFailedRuns")
    assert watched == (
        {(metric, machine) for machine in machines for metric in ("ExecutionsFailed", "ExecutionsTimedOut")}
        | {("Errors", function) for function in functions}
        | {("ApproximateNumberOfMessagesVisible", failed_runs)}
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


def test_a_step_may_update_only_the_registry_attributes_of_its_current_step(template):
    # CreateSlot has no registry permission of its own: recording its step is all it may do to the registry.
    updates = _statements_with(_function_statements(template, "CreateSlot"), "dynamodb:UpdateItem")
    [statement] = [update for update in updates if "TablesRegistry" in str(update)]
    statement_text = str(statement)
    assert _actions([statement]) == {"dynamodb:UpdateItem"}
    assert "TablesRegistry" in statement_text and "TablesIdempotency" not in statement_text
    assert statement["Condition"] == {
        "ForAllValues:StringEquals": {"dynamodb:Attributes": ["pipeline_id", "status", "current_step", "updated_at",
                                                              "version"]},
        "StringEqualsIfExists": {"dynamodb:ReturnValues": ["NONE"]},
    }


def test_only_the_api_reads_and_writes_the_connections_table(template):
    connections_table = _logical_id(template, "AWS::DynamoDB::Table", "TablesConnections")
    for function in catalogue.FUNCTIONS:
        statements = [statement for statement in _function_statements(template, function.key)
                      if {"Fn::GetAtt": [connections_table, "Arn"]} in _as_list(statement["Resource"])]
        writes = catalogue.CONNECTIONS_WRITE in function.permissions
        assert ("dynamodb:PutItem" in _actions(statements)) == writes, function.key
        environment = _function(template, function.key)[1]["Properties"]["Environment"]["Variables"]
        assert ("CONNECTIONS_TABLE" in environment) == writes, function.key
    assert catalogue.CONNECTIONS_WRITE in catalogue.by_key("Api").permissions
