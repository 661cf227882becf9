"""One Lambda function per catalogue entry, each with its own role holding only
the grants its named permissions ask for.

What each named permission of `cdcflow.catalogue` becomes:

| permission | grant |
| --- | --- |
| `registry:read` | read items of the registry table and its index |
| `registry:write` | read and write items of the registry table |
| `idempotency` | read and write items of the idempotency table |
| `secrets:read` | `GetSecretValue`/`DescribeSecret` on secrets named `<adminSecretPrefix>*` (the admin secrets specs name) and `cdcflow/*` (the replication secrets) |
| `secrets:write` | create, tag, delete and restore secrets named `cdcflow/*` only |
| `rds:describe` | describe DB instances and parameter groups |
| `rds:parameters` | modify DB parameter groups; create, tag and attach `cdcflow-*` ones; reboot DB instances |
| `states:start` / `states:read` / `states:task-token` | start executions / read executions / send task success or failure, for the stack's state machines (granted by `grant_workflows`) |
| `cloudwatch:metrics` | `PutMetricData` in the `cdcflow` namespace only |
| `network:source` | run in the VPC subnets that reach PostgreSQL, Kafka and Connect |

Environment of every function: `POWERTOOLS_SERVICE_NAME` and
`POWERTOOLS_METRICS_NAMESPACE` (`cdcflow`), `LOG_LEVEL`, `REGISTRY_TABLE`,
`IDEMPOTENCY_TABLE`, `ADMIN_SECRET_PREFIX`; functions with a `states:*`
permission also get `<WORKFLOW>_STATE_MACHINE_ARN` per state machine, the
workflow named without its `_pipeline` suffix (`PROVISION_STATE_MACHINE_ARN`,
`TEARDOWN_STATE_MACHINE_ARN`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import Construct

from cdcflow import catalogue
from cdcflow.catalogue import LambdaFunction
from infra.config import Settings
from infra.network import SourceNetwork
from infra.packaging import LAMBDA_RUNTIME, dependency_layer_code, lambda_code
from infra.tables import Tables

SERVICE_NAME = "cdcflow"
METRICS_NAMESPACE = "cdcflow"
REPLICATION_SECRET_PREFIX = "cdcflow/"  # lambdas/naming.py: cdcflow/<pipeline id>/replication
RDS_MANAGED_GROUP_PREFIX = "cdcflow-"  # lambdas/rds.py: cdcflow-<instance>-<family>
LOG_RETENTION = logs.RetentionDays.THREE_MONTHS

_GRANTED_AT_CREATION = frozenset({
    catalogue.REGISTRY_READ, catalogue.REGISTRY_WRITE, catalogue.IDEMPOTENCY,
    catalogue.SECRETS_READ, catalogue.SECRETS_WRITE, catalogue.RDS_DESCRIBE, catalogue.RDS_PARAMETERS,
    catalogue.METRICS, catalogue.VPC_NETWORK,
})
_WORKFLOW_PERMISSIONS = frozenset({catalogue.STATES_START, catalogue.STATES_READ, catalogue.STATES_TASK_TOKEN})

# Lambda's own list (AWSLambdaVPCAccessExecutionRole) of what it needs to attach a function to subnets.
_VPC_ACCESS_ACTIONS = [
    "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
]


def state_machine_env_var(workflow_name: str) -> str:
    """`provision_pipeline` -> `PROVISION_STATE_MACHINE_ARN`, `reconcile` -> `RECONCILE_STATE_MACHINE_ARN`."""
    return f"{workflow_name.removesuffix('_pipeline').upper()}_STATE_MACHINE_ARN"


class CatalogueFunctions(Construct):
    """The catalogue's functions, by catalogue key, sharing one code asset and one dependency layer."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        tables: Tables,
        network: SourceNetwork | None,
        settings: Settings,
        functions: Sequence[LambdaFunction] = catalogue.FUNCTIONS,
    ) -> None:
        super().__init__(scope, construct_id)
        for function in functions:
            unknown = function.permissions - _GRANTED_AT_CREATION - _WORKFLOW_PERMISSIONS
            if unknown:
                raise ValueError(f"catalogue function {function.key} names unknown permissions: {sorted(unknown)}")
            if catalogue.VPC_NETWORK in function.permissions and network is None:
                raise ValueError(f"catalogue function {function.key} needs {catalogue.VPC_NETWORK} but no network was given")
        self._tables = tables
        self._network = network
        self._settings = settings
        self._catalogue = {function.key: function for function in functions}

        code = lambda_code()
        self.dependencies = lambda_.LayerVersion(
            self, "Dependencies",
            code=dependency_layer_code(),
            compatible_runtimes=[LAMBDA_RUNTIME],
            compatible_architectures=[lambda_.Architecture.X86_64],
            description="cdcflow third-party packages (infra/lambda-layer-requirements.txt)",
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.by_key: dict[str, lambda_.Function] = {
            function.key: self._function(function, code) for function in functions
        }

    def _function(self, function: LambdaFunction, code: lambda_.Code) -> lambda_.Function:
        log_group = logs.LogGroup(
            self, f"{function.key}Logs",
            log_group_name=f"/aws/lambda/{function.function_name}",
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.DESTROY,
        )
        role = iam.Role(
            self, f"{function.key}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{function.function_name}: {function.description}",
        )
        log_group.grant_write(role)
        in_vpc = catalogue.VPC_NETWORK in function.permissions
        if in_vpc:
            # Added before the function exists: Lambda checks these when it attaches the subnets.
            role.add_to_policy(iam.PolicyStatement(actions=_VPC_ACCESS_ACTIONS, resources=["*"]))

        tables, settings = self._tables, self._settings
        lambda_function = lambda_.Function(
            self, function.key,
            function_name=function.function_name,
            description=function.description,
            runtime=LAMBDA_RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler=function.handler,
            code=code,
            layers=[self.dependencies],
            timeout=Duration.seconds(function.timeout_seconds),
            memory_size=function.memory_mb,
            role=role,
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment={
                "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "LOG_LEVEL": settings.log_level,
                "REGISTRY_TABLE": tables.registry.table_name,
                "IDEMPOTENCY_TABLE": tables.idempotency.table_name,
                "ADMIN_SECRET_PREFIX": settings.admin_secret_prefix,
            },
            **(self._vpc_placement() if in_vpc else {}),
        )
        self._grant(function, lambda_function)
        self._suppress_findings(function, role, lambda_function)
        return lambda_function

    def _vpc_placement(self) -> dict[str, object]:
        network = self._network
        assert network is not None  # checked in __init__
        return {"vpc": network.vpc, "vpc_subnets": network.subnets, "security_groups": network.security_groups}

    def _grant(self, function: LambdaFunction, lambda_function: lambda_.Function) -> None:
        permissions = function.permissions
        registry, idempotency = self._tables.registry, self._tables.idempotency
        if catalogue.REGISTRY_WRITE in permissions:
            registry.grant_read_write_data(lambda_function)
        elif catalogue.REGISTRY_READ in permissions:
            registry.grant_read_data(lambda_function)
        if catalogue.IDEMPOTENCY in permissions:
            idempotency.grant_read_write_data(lambda_function)

        if catalogue.SECRETS_READ in permissions:
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                resources=[self._secret_arns(self._settings.admin_secret_prefix),
                           self._secret_arns(REPLICATION_SECRET_PREFIX)],
            ))
        if catalogue.SECRETS_WRITE in permissions:
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["secretsmanager:CreateSecret", "secretsmanager:TagResource", "secretsmanager:DeleteSecret",
                         "secretsmanager:RestoreSecret", "secretsmanager:DescribeSecret",
                         "secretsmanager:GetSecretValue"],
                resources=[self._secret_arns(REPLICATION_SECRET_PREFIX)],
            ))

        if catalogue.RDS_DESCRIBE in permissions:
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["rds:DescribeDBInstances"], resources=[self._rds_arns("db")],
            ))
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["rds:DescribeDBParameterGroups", "rds:DescribeDBParameters"], resources=[self._rds_arns("pg")],
            ))
        if catalogue.RDS_PARAMETERS in permissions:
            # Enabling logical replication edits the instance's custom parameter group, or creates
            # (and tags) a cdcflow-managed one and attaches it, then reboots the instance.
            managed_groups = self._rds_arns("pg", RDS_MANAGED_GROUP_PREFIX)
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["rds:ModifyDBParameterGroup"], resources=[self._rds_arns("pg")],
            ))
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["rds:CreateDBParameterGroup", "rds:AddTagsToResource"], resources=[managed_groups],
            ))
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["rds:ModifyDBInstance"], resources=[self._rds_arns("db"), managed_groups],
            ))
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["rds:RebootDBInstance"], resources=[self._rds_arns("db")],
            ))

        if catalogue.METRICS in permissions:
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"], resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
            ))

    def grant_workflows(self, state_machines: Mapping[str, sfn.StateMachine]) -> None:
        """Give the functions with `states:*` permissions the state machines' ARNs and their grants."""
        for key, function in self._catalogue.items():
            permissions = function.permissions & _WORKFLOW_PERMISSIONS
            if not permissions:
                continue
            lambda_function = self.by_key[key]
            for workflow_name, state_machine in state_machines.items():
                lambda_function.add_environment(state_machine_env_var(workflow_name), state_machine.state_machine_arn)
                if catalogue.STATES_START in permissions:
                    state_machine.grant_start_execution(lambda_function)
                if catalogue.STATES_READ in permissions:
                    state_machine.grant_read(lambda_function)
                if catalogue.STATES_TASK_TOKEN in permissions:
                    state_machine.grant_task_response(lambda_function)
            if catalogue.STATES_READ in permissions:
                NagSuppressions.add_resource_suppressions(lambda_function.role, [NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Reading executions needs their ARNs, which end in the execution name; "
                           "the wildcard is limited to executions of this stack's state machines",
                    applies_to=[RegexAppliesTo(regex=r"/^Resource::arn:<AWS::Partition>:states:<AWS::Region>:"
                                                     r"<AWS::AccountId>:execution:.*:\*$/")],
                )], apply_to_children=True)

    def _secret_arns(self, name_prefix: str) -> str:
        # Secret ARNs end in a random suffix ("-AbCdEf"), hence the trailing wildcard.
        return Stack.of(self).format_arn(
            service="secretsmanager", resource="secret", resource_name=f"{name_prefix}*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def _rds_arns(self, resource: str, name_prefix: str = "") -> str:
        return Stack.of(self).format_arn(
            service="rds", resource=resource, resource_name=f"{name_prefix}*", arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def _suppress_findings(self, function: LambdaFunction, role: iam.Role, lambda_function: lambda_.Function) -> None:
        """Justify, finding by finding, the wildcards that the grants above cannot avoid."""
        permissions = function.permissions
        unscoped = ["xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing)"]
        if catalogue.METRICS in permissions:
            unscoped.append("cloudwatch:PutMetricData, held to the cdcflow namespace by a condition")
        if catalogue.VPC_NETWORK in permissions:
            unscoped.append("the EC2 network-interface actions Lambda uses to attach the function to its subnets")
        suppressions = [NagPackSuppression(
            id="AwsSolutions-IAM5",
            reason="These actions support no resource-level permissions: " + "; ".join(unscoped),
            applies_to=["Resource::*"],
        )]
        if catalogue.SECRETS_READ in permissions or catalogue.SECRETS_WRITE in permissions:
            suppressions.append(NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="Secrets are named per pipeline at run time; access is held to the cdcflow/ prefix "
                       "(replication secrets) and, for reading, the configured admin secret prefix",
                applies_to=[f"Resource::{_nag_arn('secretsmanager', 'secret:' + prefix)}*"
                            for prefix in (self._settings.admin_secret_prefix, REPLICATION_SECRET_PREFIX)],
            ))
        if permissions & {catalogue.RDS_DESCRIBE, catalogue.RDS_PARAMETERS}:
            suppressions.append(NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="The source RDS instance and its parameter group are named by each pipeline spec at run time",
                applies_to=[f"Resource::{_nag_arn('rds', resource)}*"
                            for resource in ("db:", "pg:", f"pg:{RDS_MANAGED_GROUP_PREFIX}")],
            ))
        if permissions & {catalogue.REGISTRY_READ, catalogue.REGISTRY_WRITE}:
            registry = self._tables.registry
            logical_id = Stack.of(self).resolve(Stack.of(self).get_logical_id(registry.node.default_child))
            suppressions.append(NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="The wildcard covers only the registry table's own indexes (listing by status)",
                applies_to=[f"Resource::<{logical_id}.Arn>/index/*"],
            ))
        NagSuppressions.add_resource_suppressions(role, suppressions, apply_to_children=True)
        NagSuppressions.add_resource_suppressions(lambda_function, [NagPackSuppression(
            id="AwsSolutions-L1",
            reason="The runtime is pinned deliberately, one step from the project's development Python (3.11), "
                   "and the dependency layer's wheels are built for it; moving up is a tested change",
        )])


def _nag_arn(service: str, resource: str) -> str:
    """An ARN in this account and region as cdk-nag prints it in a finding."""
    return f"arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>:{resource}"
