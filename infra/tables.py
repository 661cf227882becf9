"""DynamoDB tables: the pipeline registry, the Powertools idempotency store and the principals table."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

REGISTRY_PARTITION_KEY = "pipeline_id"
# Listing by status ("every ACTIVE pipeline") queries this index instead of scanning.
REGISTRY_STATUS_INDEX = "by-status"
REGISTRY_STATUS_ATTRIBUTE = "status"
IDEMPOTENCY_PARTITION_KEY = "id"  # the names Powertools' DynamoDBPersistenceLayer uses by default
IDEMPOTENCY_TTL_ATTRIBUTE = "expiration"
PRINCIPALS_PARTITION_KEY = "principal"  # lambdas/principals.py: one item per normalised principal ARN
CONNECTIONS_PARTITION_KEY = "name"  # lambdas/connections.py: one item per registered connection


class Tables(Construct):
    """The registry (one item per pipeline id), the idempotency table (records expire by TTL) and the
    principals table (each IAM principal's teams and roles, managed by the platform team)."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        recovery = dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True)

        self.registry = dynamodb.Table(
            self, "Registry",
            partition_key=dynamodb.Attribute(name=REGISTRY_PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=recovery,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            # The registry is the audit trail of every pipeline: keep it past a stack deletion.
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.registry.add_global_secondary_index(
            index_name=REGISTRY_STATUS_INDEX,
            partition_key=dynamodb.Attribute(name=REGISTRY_STATUS_ATTRIBUTE, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=REGISTRY_PARTITION_KEY, type=dynamodb.AttributeType.STRING),
        )

        self.idempotency = dynamodb.Table(
            self, "Idempotency",
            partition_key=dynamodb.Attribute(name=IDEMPOTENCY_PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            time_to_live_attribute=IDEMPOTENCY_TTL_ATTRIBUTE,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=recovery,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            # Records only short-lived step results; nothing to keep once the stack is gone.
            removal_policy=RemovalPolicy.DESTROY,
        )

        self.principals = dynamodb.Table(
            self, "Principals",
            partition_key=dynamodb.Attribute(name=PRINCIPALS_PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=recovery,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            # Who may act for which team: the platform team's records, kept past a stack deletion.
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )

        self.connections = dynamodb.Table(
            self, "Connections",
            partition_key=dynamodb.Attribute(name=CONNECTIONS_PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=recovery,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            # The databases, clusters and sinks the platform registered: kept past a stack deletion.
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
