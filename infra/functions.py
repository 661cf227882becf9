"""One Lambda function per catalogue entry, each with its own role holding only
the grants its named permissions ask for.

What each named permission of `statemachines.catalogue` becomes:

| permission | grant |
| --- | --- |
| `registry:read` | read items of the registry table and its index |
| `registry:write` | read and write items of the registry table |
| `registry:step` | `UpdateItem` on the registry table, only of `current_step`, `updated_at`, `version` and `status` (read by its condition) (`dynamodb:Attributes`), returning nothing |
| `idempotency` | read and write items of the idempotency table |
| `principals:read` | read items of the principals table; the function gets `PRINCIPALS_TABLE` |
| `connections:write` | read and write items of the connections table (admins register through the API; every request resolves its spec there); the function gets `CONNECTIONS_TABLE` |
| `secrets:read` | `GetSecretValue`/`DescribeSecret` on secrets named `<adminSecretPrefix>*` tagged `cdcflow:use=true` (the admin secrets registered connections name), and on `cdcflow/*` tagged `cdcflow:managed=true` (the replication secrets) |
| `secrets:write` | create secrets named `cdcflow/*` only with the tags `cdcflow:managed=true`, `cdcflow:pipeline` and `cdcflow:team` (and no others); read, restore and put a new value into those tagged `cdcflow:managed=true` |
| `secrets:delete` | describe and delete (with a recovery window) secrets named `cdcflow/*` tagged `cdcflow:managed=true` |
| `secrets:list` | `ListSecrets`, which has no resource type or condition key to narrow it (it returns names and metadata, never values) |
| `rds:describe` | describe DB instances, parameter groups and their parameters, and list parameter groups' tags |
| `rds:parameters` | copy a parameter group only into one tagged `cdcflow:managed=true` (`aws:RequestTag`); modify `cdcflow-*` groups tagged so (`rds:pg-tag`); attach such a group to an instance tagged `cdcflow:managed=true` (`rds:db-tag`) |
| `rds:restore` | attach a group (the instance's original) to an instance tagged `cdcflow:managed=true`; delete `cdcflow-*` groups tagged so |
| `rds:reboot` | reboot DB instances tagged `cdcflow:managed=true` |
| `reconcile:lease` | get, put, update and delete the one `reconcile-lease` item of the idempotency table (`dynamodb:LeadingKeys`) |
| `states:start` / `states:read` / `states:task-token` | start executions / read executions / send task success or failure, for the stack's state machines (granted by `grant_workflows`) |
| `cloudwatch:metrics` | `PutMetricData` in the `cdcflow` namespace only |
| `cloudwatch:alarms` | `PutMetricAlarm`, `DeleteAlarms`, `TagResource` and `DescribeAlarms` on alarms named `cdcflow-pipeline-*` only; the function gets `ALARM_TOPIC_ARN` (the alarms' action) |
| `cloudwatch:alarms-read` | `DescribeAlarms` on alarms named `cdcflow-pipeline-*` only |
| `network:source` | run in the VPC subnets that reach PostgreSQL, Kafka and Connect; with `mskClusterArns`, also `kafka-cluster:Connect`/`DescribeCluster` on those clusters, create, describe, read and delete their topics, and describe and alter their consumer groups (MSK IAM access control) |

Environment of every function: `POWERTOOLS_SERVICE_NAME` and
`POWERTOOLS_METRICS_NAMESPACE` (`cdcflow`), `LOG_LEVEL`, `REGISTRY_TABLE`,
`IDEMPOTENCY_TABLE`, `ADMIN_SECRET_PREFIX`; functions with a `states:*`
permission also get `<WORKFLOW>_STATE_MACHINE_ARN` per state machine, the
workflow named without its `_pipeline` suffix (`PROVISION_STATE_MACHINE_ARN`,
`TEARDOWN_STATE_MACHINE_ARN`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jsii
from aws_cdk import ArnFormat, AspectPriority, Aspects, Duration, IAspect, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import Construct, IConstruct

from infra.config import Settings
from infra.network import SourceNetwork
from infra.packaging import LAMBDA_RUNTIME, dependency_layer_code, lambda_code
from infra.tables import Tables
from statemachines import catalogue
from statemachines.catalogue import Function
from statemachines.model import REGISTRY_STEP

# The attributes lambdas.registry.record_step writes (a unit test keeps the two equal).
STEP_ATTRIBUTES = ("pipeline_id", "status", "current_step", "updated_at", "version")

SERVICE_NAME = "cdcflow"
METRICS_NAMESPACE = "cdcflow"
REPLICATION_SECRET_PREFIX = "cdcflow/"  # lambdas/naming.py: cdcflow/<pipeline id>/replication
PIPELINE_ALARM_PREFIX = "cdcflow-pipeline-"  # lambdas/alarms.py: ALARM_NAME_PREFIX
RDS_MANAGED_GROUP_PREFIX = "cdcflow-"  # lambdas/rds.py: cdcflow-<instance>
# The tags IAM conditions on (lambdas/secrets.py, lambdas/rds.py; a unit test keeps them equal).
SECRET_USE_TAG = "cdcflow:use"  # the platform sets it on the admin secrets its connections name
SECRET_MANAGED_TAG = "cdcflow:managed"  # cdcflow sets it on the replication secrets it creates
SECRET_PIPELINE_TAG = "cdcflow:pipeline"
SECRET_TEAM_TAG = "cdcflow:team"
RDS_MANAGED_TAG = "cdcflow:managed"  # the platform sets it on instances cdcflow may change; cdcflow on its groups
_SECRET_READ_ACTIONS = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
_MANAGED_SECRET = {"StringEquals": {f"secretsmanager:ResourceTag/{SECRET_MANAGED_TAG}": "true"}}
# RDS's own tag condition keys for DB instances and DB parameter groups (RDS User Guide, "Specifying
# conditions: Using custom tags").
_MANAGED_INSTANCE = {"StringEquals": {f"rds:db-tag/{RDS_MANAGED_TAG}": "true"}}
_MANAGED_GROUP = {"StringEquals": {f"rds:pg-tag/{RDS_MANAGED_TAG}": "true"}}
RECONCILE_LEASE_KEY = "reconcile-lease"  # lambdas/reconcile/lease.py: LEASE_ID
# One sweep at a time; the lease (lambdas/reconcile/lease.py) also keeps out sweeps run outside Lambda.
RECONCILE_CONCURRENCY = 1
LOG_RETENTION = logs.RetentionDays.THREE_MONTHS

_GRANTED_AT_CREATION = frozenset({
    catalogue.REGISTRY_READ, catalogue.REGISTRY_WRITE, catalogue.IDEMPOTENCY,
    catalogue.SECRETS_READ, catalogue.SECRETS_WRITE, catalogue.SECRETS_DELETE, catalogue.SECRETS_LIST,
    catalogue.RDS_DESCRIBE,
    catalogue.RDS_PARAMETERS, catalogue.RDS_RESTORE, catalogue.RDS_REBOOT, catalogue.RECONCILE_LEASE,
    catalogue.METRICS, catalogue.ALARMS_WRITE, catalogue.ALARMS_READ,
    catalogue.VPC_NETWORK, REGISTRY_STEP, catalogue.PRINCIPALS_READ, catalogue.CONNECTIONS_WRITE,
})
_WORKFLOW_PERMISSIONS = frozenset({catalogue.STATES_START, catalogue.STATES_STOP, catalogue.STATES_READ,
                                   catalogue.STATES_TASK_TOKEN})

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
        functions: Sequence[Function] = catalogue.FUNCTIONS,
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

    def _function(self, function: Function, code: lambda_.Code) -> lambda_.Function:
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
            reserved_concurrent_executions=self._reserved_concurrency(function),
            environment={
                "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "LOG_LEVEL": settings.log_level,
                "REGISTRY_TABLE": tables.registry.table_name,
                "IDEMPOTENCY_TABLE": tables.idempotency.table_name,
                "ADMIN_SECRET_PREFIX": settings.admin_secret_prefix,
                # TLS to the databases: verify-full against this bundle (lambdas/source/tls.py).
                **({"CDCFLOW_DATABASE_CA_FILE": settings.database_ca_file} if settings.database_ca_file else {}),
                **({"CDCFLOW_CONNECT_DATABASE_CA_FILE": settings.connect_database_ca_file}
                   if settings.connect_database_ca_file else {}),
            },
            **(self._vpc_placement() if in_vpc else {}),
        )
        self._grant(function, lambda_function)
        if in_vpc and settings.msk_cluster_arns:
            self._grant_msk(role)
        self._suppress_findings(function, role, lambda_function)
        return lambda_function

    def _grant_msk(self, role: iam.Role) -> None:
        """MSK IAM access control: the functions that reach Kafka sign in as their role (`AWS_MSK_IAM`)."""
        clusters = list(self._settings.msk_cluster_arns)
        role.add_to_policy(iam.PolicyStatement(
            actions=["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"], resources=clusters))
        role.add_to_policy(iam.PolicyStatement(
            actions=["kafka-cluster:CreateTopic", "kafka-cluster:DescribeTopic", "kafka-cluster:DeleteTopic",
                     "kafka-cluster:DescribeTopicDynamicConfiguration", "kafka-cluster:ReadData"],
            resources=[_msk_resources(cluster, "topic") for cluster in clusters]))
        role.add_to_policy(iam.PolicyStatement(
            actions=["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"],
            resources=[_msk_resources(cluster, "group") for cluster in clusters]))

    def _reserved_concurrency(self, function: Function) -> int | None:
        """Reserved (and so capped) concurrency: the API's from the settings; 1 for Reconcile, so sweeps queue."""
        return {"Api": self._settings.api_reserved_concurrency, "Reconcile": RECONCILE_CONCURRENCY}.get(function.key)

    def _vpc_placement(self) -> dict[str, object]:
        network = self._network
        assert network is not None  # checked in __init__
        return {"vpc": network.vpc, "vpc_subnets": network.subnets, "security_groups": network.security_groups}

    def _grant(self, function: Function, lambda_function: lambda_.Function) -> None:
        permissions = function.permissions
        registry, idempotency = self._tables.registry, self._tables.idempotency
        if catalogue.REGISTRY_WRITE in permissions:
            registry.grant_read_write_data(lambda_function)
        elif catalogue.REGISTRY_READ in permissions:
            registry.grant_read_data(lambda_function)
        if catalogue.IDEMPOTENCY in permissions:
            idempotency.grant_read_write_data(lambda_function)
        if catalogue.PRINCIPALS_READ in permissions:
            self._tables.principals.grant_read_data(lambda_function)
            lambda_function.add_environment("PRINCIPALS_TABLE", self._tables.principals.table_name)
        if catalogue.CONNECTIONS_WRITE in permissions:
            self._tables.connections.grant_read_write_data(lambda_function)
            lambda_function.add_environment("CONNECTIONS_TABLE", self._tables.connections.table_name)
        if REGISTRY_STEP in permissions and catalogue.REGISTRY_WRITE not in permissions:
            # current_step only: UpdateItem restricted to the attributes lambdas.registry.record_step writes.
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"],
                resources=[registry.table_arn],
                conditions={
                    "ForAllValues:StringEquals": {"dynamodb:Attributes": list(STEP_ATTRIBUTES)},
                    "StringEqualsIfExists": {"dynamodb:ReturnValues": ["NONE"]},
                },
            ))
        if catalogue.RECONCILE_LEASE in permissions:
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                resources=[idempotency.table_arn],
                conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [RECONCILE_LEASE_KEY]}},
            ))

        # Secrets: held to the prefixes by the ARNs, and to what the platform tagged by the conditions.
        if catalogue.SECRETS_READ in permissions:
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=_SECRET_READ_ACTIONS,
                resources=[self._secret_arns(self._settings.admin_secret_prefix)],
                conditions={"StringEquals": {f"secretsmanager:ResourceTag/{SECRET_USE_TAG}": "true"}},
            ))
        if permissions & {catalogue.SECRETS_READ, catalogue.SECRETS_WRITE}:
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=_SECRET_READ_ACTIONS, resources=[self._secret_arns(REPLICATION_SECRET_PREFIX)],
                conditions=_MANAGED_SECRET,
            ))
        if catalogue.SECRETS_WRITE in permissions:
            # Created only with the tags that make it readable later (CreateSecret with Tags also asks TagResource).
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["secretsmanager:CreateSecret", "secretsmanager:TagResource"],
                resources=[self._secret_arns(REPLICATION_SECRET_PREFIX)],
                conditions={
                    "StringEquals": {f"aws:RequestTag/{SECRET_MANAGED_TAG}": "true"},
                    "Null": {f"aws:RequestTag/{tag}": "false" for tag in (SECRET_PIPELINE_TAG, SECRET_TEAM_TAG)},
                    "ForAllValues:StringEquals": {
                        "aws:TagKeys": [SECRET_MANAGED_TAG, SECRET_PIPELINE_TAG, SECRET_TEAM_TAG],
                    },
                },
            ))
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["secretsmanager:RestoreSecret", "secretsmanager:PutSecretValue"],
                resources=[self._secret_arns(REPLICATION_SECRET_PREFIX)],
                conditions=_MANAGED_SECRET,
            ))
        if catalogue.SECRETS_DELETE in permissions:
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["secretsmanager:DescribeSecret", "secretsmanager:DeleteSecret"],
                resources=[self._secret_arns(REPLICATION_SECRET_PREFIX)],
                conditions=_MANAGED_SECRET,
            ))
        if catalogue.SECRETS_LIST in permissions:
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["secretsmanager:ListSecrets"], resources=["*"],
            ))

        # RDS: instances only when the platform tagged them cdcflow:managed=true (rds:db-tag), parameter
        # groups only when cdcflow created them with that tag (rds:pg-tag, aws:RequestTag at creation).
        if catalogue.RDS_DESCRIBE in permissions:
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["rds:DescribeDBInstances"], resources=[self._rds_arns("db")],
            ))
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["rds:DescribeDBParameterGroups", "rds:DescribeDBParameters", "rds:ListTagsForResource"],
                resources=[self._rds_arns("pg")],
            ))
        managed_groups = self._rds_arns("pg", RDS_MANAGED_GROUP_PREFIX)
        if catalogue.RDS_PARAMETERS in permissions:
            # The copy reads the instance's current group (any name) and creates a cdcflow-* one: both are
            # authorized against the request, which must tag the copy as cdcflow's.
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["rds:CopyDBParameterGroup"], resources=[self._rds_arns("pg")],
                conditions={"StringEquals": {f"aws:RequestTag/{RDS_MANAGED_TAG}": "true"}},
            ))
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["rds:AddTagsToResource"], resources=[managed_groups],
                conditions={"StringEquals": {f"aws:RequestTag/{RDS_MANAGED_TAG}": "true"}},
            ))
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["rds:ModifyDBParameterGroup"], resources=[managed_groups], conditions=_MANAGED_GROUP,
            ))
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["rds:ModifyDBInstance"], resources=[self._rds_arns("db")], conditions=_MANAGED_INSTANCE,
            ))
            # The group being attached is a resource of ModifyDBInstance too: only cdcflow's copies.
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["rds:ModifyDBInstance"], resources=[managed_groups], conditions=_MANAGED_GROUP,
            ))
        if catalogue.RDS_RESTORE in permissions:
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["rds:ModifyDBInstance"], resources=[self._rds_arns("db")], conditions=_MANAGED_INSTANCE,
            ))
            # Attaching the instance's original group again: a group of any name, which attaching does not change.
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["rds:ModifyDBInstance"], resources=[self._rds_arns("pg")],
            ))
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["rds:DeleteDBParameterGroup"], resources=[managed_groups], conditions=_MANAGED_GROUP,
            ))
        if catalogue.RDS_REBOOT in permissions:
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["rds:RebootDBInstance"], resources=[self._rds_arns("db")], conditions=_MANAGED_INSTANCE,
            ))

        if catalogue.METRICS in permissions:
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"], resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
            ))
        if permissions & {catalogue.ALARMS_WRITE, catalogue.ALARMS_READ}:
            write = ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:TagResource"]
            lambda_function.add_to_role_policy(iam.PolicyStatement(
                actions=["cloudwatch:DescribeAlarms", *(write if catalogue.ALARMS_WRITE in permissions else [])],
                resources=[self.pipeline_alarm_arns()],
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
                if catalogue.STATES_STOP in permissions:
                    state_machine.grant_execution(lambda_function, "states:StopExecution")
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

    def pipeline_alarm_arns(self) -> str:
        """The ARNs of the pipelines' alarms (lambdas/alarms.py: `cdcflow-pipeline-<id>-<alarm>`)."""
        return Stack.of(self).format_arn(
            service="cloudwatch", resource="alarm", resource_name=f"{PIPELINE_ALARM_PREFIX}*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def set_alarm_topic(self, topic_arn: str) -> None:
        """Give the functions that put the pipelines' alarms the topic those alarms notify."""
        for key, function in self._catalogue.items():
            if catalogue.ALARMS_WRITE in function.permissions:
                self.by_key[key].add_environment("ALARM_TOPIC_ARN", topic_arn)

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

    def _suppress_findings(self, function: Function, role: iam.Role, lambda_function: lambda_.Function) -> None:
        """Justify, finding by finding, the wildcards that the grants above cannot avoid."""
        permissions = function.permissions
        unscoped = ["xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing)"]
        if catalogue.METRICS in permissions:
            unscoped.append("cloudwatch:PutMetricData, held to the cdcflow namespace by a condition")
        if catalogue.VPC_NETWORK in permissions:
            unscoped.append("the EC2 network-interface actions Lambda uses to attach the function to its subnets")
        if catalogue.SECRETS_LIST in permissions:
            unscoped.append("secretsmanager:ListSecrets, which has no resource type or condition key to narrow it "
                            "and returns secret names and metadata, never values")
        suppressions = [NagPackSuppression(
            id="AwsSolutions-IAM5",
            reason="These actions support no resource-level permissions: " + "; ".join(unscoped),
            applies_to=["Resource::*"],
        )]
        # IAM5 flags a `*` in a resource whatever the conditions. Names chosen at run time need one; the tag
        # conditions are what narrows these statements (tests/unit/test_infra_stack.py checks each carries one).
        if permissions & {catalogue.SECRETS_READ, catalogue.SECRETS_WRITE, catalogue.SECRETS_DELETE}:
            suppressions.append(NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="Secret names are chosen at run time (a connection's admin secret, a pipeline's replication "
                       "secret) and secret ARNs end in a random suffix, so the resource ends in a wildcard after a "
                       "fixed prefix. Every statement on it is narrowed by tags: admin secrets only when tagged "
                       f"{SECRET_USE_TAG}=true, replication secrets only when tagged {SECRET_MANAGED_TAG}=true, "
                       "which they get only at creation, with their pipeline and team",
                applies_to=[f"Resource::{_nag_arn('secretsmanager', 'secret:' + prefix)}*"
                            for prefix in (self._settings.admin_secret_prefix, REPLICATION_SECRET_PREFIX)],
            ))
        if permissions & {catalogue.RDS_DESCRIBE, catalogue.RDS_PARAMETERS, catalogue.RDS_RESTORE,
                          catalogue.RDS_REBOOT}:
            suppressions.append(NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="The source instance and its parameter groups are named by registered connections at run "
                       "time, so their ARNs end in a wildcard. What changes anything is narrowed by tags: instances "
                       f"only when the platform tagged them {RDS_MANAGED_TAG}=true (rds:db-tag), groups only when "
                       "cdcflow created them with that tag (aws:RequestTag, then rds:pg-tag); the rest only "
                       "describes, or names the group attached to such an instance",
                applies_to=[f"Resource::{_nag_arn('rds', resource)}*"
                            for resource in ("db:", "pg:", f"pg:{RDS_MANAGED_GROUP_PREFIX}")],
            ))
        if catalogue.VPC_NETWORK in permissions and self._settings.msk_cluster_arns:
            suppressions.append(NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="Pipelines' topics and the groups that read them are named at run time; the wildcard stays "
                       "inside each MSK cluster the platform listed in mskClusterArns",
                applies_to=[f"Resource::{_msk_resources(cluster, kind)}"
                            for cluster in self._settings.msk_cluster_arns for kind in ("topic", "group")],
            ))
        if permissions & {catalogue.ALARMS_WRITE, catalogue.ALARMS_READ}:
            suppressions.append(NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="Each pipeline's alarms are named at run time after its id; the wildcard follows the fixed "
                       f"prefix {PIPELINE_ALARM_PREFIX} that only the pipelines' alarms carry",
                applies_to=[f"Resource::{_nag_arn('cloudwatch', 'alarm:' + PIPELINE_ALARM_PREFIX)}*"],
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
        # A role whose statements outgrow an inline policy gets OverflowPolicy managed policies while the app
        # synthesizes, after the lines above ran: they hold the same statements and need the same reasons.
        Aspects.of(role).add(_SuppressInOverflowPolicies(), priority=AspectPriority.MUTATING)
        NagSuppressions.add_resource_suppressions(lambda_function, [NagPackSuppression(
            id="AwsSolutions-L1",
            reason="The runtime is pinned deliberately, one step from the project's development Python (3.11), "
                   "and the dependency layer's wheels are built for it; moving up is a tested change",
        )])


@jsii.implements(IAspect)
class _SuppressInOverflowPolicies:
    """Give the managed policies CDK splits off a large role's policy the suppressions of that role."""

    def visit(self, node: IConstruct) -> None:
        if not (isinstance(node, iam.CfnManagedPolicy) and "/OverflowPolicy" in node.node.path):
            return
        role = node.node.scope.node.scope  # CfnManagedPolicy <- ManagedPolicy <- Role
        reasons = role.node.default_child.get_metadata("cdk_nag") if isinstance(role, iam.Role) else None
        if reasons:
            node.add_metadata("cdk_nag", reasons)


def _msk_resources(cluster_arn: str, kind: str) -> str:
    """Every topic (or group) of an MSK cluster: `...:cluster/NAME/UUID` -> `...:topic/NAME/UUID/*`."""
    prefix, _, name_and_uuid = cluster_arn.partition(":cluster/")
    return f"{prefix}:{kind}/{name_and_uuid}/*"


def _nag_arn(service: str, resource: str) -> str:
    """An ARN in this account and region as cdk-nag prints it in a finding."""
    return f"arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>:{resource}"
