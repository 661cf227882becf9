"""The network of the functions that reach PostgreSQL, Kafka and Kafka Connect.

With `vpcId` in context the functions join that VPC's given subnets (and
security groups, or one the stack creates); without it the stack creates a
VPC of its own with private subnets behind one NAT gateway, flow logs, and a
DynamoDB gateway endpoint, which suits a trial deployment whose sources are
reachable from it.
"""

from __future__ import annotations

from aws_cdk import Annotations, Fn
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import NetworkSettings


class SourceNetwork(Construct):
    """VPC placement for the functions with the `network:source` permission."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: NetworkSettings) -> None:
        super().__init__(scope, construct_id)
        if settings.vpc_id is None:
            self.vpc = self._create_vpc()
            self.subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        else:
            # Attributes, not a lookup: synth stays offline and needs no account.
            # The zones are only used to select subnets by type, which we do not do.
            self.vpc = ec2.Vpc.from_vpc_attributes(
                self, "Vpc", vpc_id=settings.vpc_id, availability_zones=Fn.get_azs(),
            )
            Annotations.of(self.vpc).acknowledge_warning(
                "@aws-cdk/aws-ec2:vpcAttributeIsListTokenavailabilityZones",
                "subnets are given by id, never selected by zone",
            )
            subnets = []
            for index, subnet_id in enumerate(settings.subnet_ids):
                subnet = ec2.Subnet.from_subnet_id(self, f"Subnet{index}", subnet_id)
                Annotations.of(subnet).acknowledge_warning(
                    "@aws-cdk/aws-ec2:noSubnetRouteTableId", "the stack adds no routes to existing subnets",
                )
                subnets.append(subnet)
            self.subnets = ec2.SubnetSelection(subnets=subnets)
        if settings.security_group_ids:
            self.security_groups: list[ec2.ISecurityGroup] = [
                ec2.SecurityGroup.from_security_group_id(self, f"SecurityGroup{index}", group_id, mutable=False)
                for index, group_id in enumerate(settings.security_group_ids)
            ]
        else:
            self.security_groups = [ec2.SecurityGroup(
                self, "FunctionSecurityGroup", vpc=self.vpc, allow_all_outbound=True,
                description="cdcflow functions: outbound to PostgreSQL, Kafka, Kafka Connect and AWS APIs; no inbound",
            )]

    def _create_vpc(self) -> ec2.Vpc:
        vpc = ec2.Vpc(
            self, "Vpc",
            max_azs=2,
            nat_gateways=1,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="functions", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22),
            ],
            gateway_endpoints={"DynamoDb": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.DYNAMODB)},
        )
        vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                logs.LogGroup(self, "FlowLogGroup", retention=logs.RetentionDays.THREE_MONTHS),
            ),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        return vpc
