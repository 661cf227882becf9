"""Alarms, the topic they notify, and the operations dashboard.

Alarms (each notifies the topic, missing data counts as healthy; the
pipelines' own alarms, which ProvisionPipeline creates, notify it too):
per state machine, any failed or timed-out execution in 5 minutes; per
function, any error in 5 minutes; per dead-letter queue, any message in it
(a scheduled run that failed after its retries). Subscribe people or a pager to
`AlarmTopicArn` (a stack output).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

PERIOD = Duration.minutes(5)


class Observability(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machines: Mapping[str, sfn.StateMachine],
        functions: Mapping[str, lambda_.Function],
        dead_letters: Mapping[str, sqs.IQueue] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        # A key of our own: CloudWatch cannot publish to a topic under the AWS-managed SNS key.
        topic_key = kms.Key(
            self, "AlarmTopicKey", enable_key_rotation=True, description="cdcflow alarm topic encryption",
        )
        topic_key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(
            self, "AlarmTopic", display_name="cdcflow alarms", master_key=topic_key, enforce_ssl=True,
        )
        notify = cloudwatch_actions.SnsAction(self.topic)

        self.alarms: list[cloudwatch.Alarm] = []

        def alarm(construct_id: str, metric: cloudwatch.Metric, description: str) -> None:
            created = metric.create_alarm(
                self, construct_id,
                alarm_description=description,
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            created.add_alarm_action(notify)
            self.alarms.append(created)

        for name, state_machine in state_machines.items():
            construct_name = "".join(part.capitalize() for part in name.split("_"))
            alarm(f"{construct_name}ExecutionsFailed", state_machine.metric_failed(period=PERIOD, statistic="Sum"),
                  f"A {name} execution failed")
            alarm(f"{construct_name}ExecutionsTimedOut", state_machine.metric_timed_out(period=PERIOD, statistic="Sum"),
                  f"A {name} execution timed out")
        for key, function in functions.items():
            alarm(f"{key}Errors", function.metric_errors(period=PERIOD, statistic="Sum"),
                  f"The {key} function raised errors")
        for key, queue in (dead_letters or {}).items():
            alarm(f"{key}FailedRuns", queue.metric_approximate_number_of_messages_visible(
                period=PERIOD, statistic="Maximum"),
                f"A {key} run failed after its retries: its event and error are in the queue")

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name="cdcflow")
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Executions started / succeeded", width=12,
                left=[metric for name, state_machine in state_machines.items() for metric in (
                    state_machine.metric_started(period=PERIOD, statistic="Sum", label=f"{name} started"),
                    state_machine.metric_succeeded(period=PERIOD, statistic="Sum", label=f"{name} succeeded"),
                )],
            ),
            cloudwatch.GraphWidget(
                title="Executions failed / timed out / aborted", width=12,
                left=[metric for name, state_machine in state_machines.items() for metric in (
                    state_machine.metric_failed(period=PERIOD, statistic="Sum", label=f"{name} failed"),
                    state_machine.metric_timed_out(period=PERIOD, statistic="Sum", label=f"{name} timed out"),
                    state_machine.metric_aborted(period=PERIOD, statistic="Sum", label=f"{name} aborted"),
                )],
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Lambda errors", width=12,
                left=[function.metric_errors(period=PERIOD, statistic="Sum", label=key)
                      for key, function in functions.items()],
            ),
            cloudwatch.GraphWidget(
                title="Lambda duration (p99)", width=12,
                left=[function.metric_duration(period=PERIOD, statistic="p99", label=key)
                      for key, function in functions.items()],
            ),
        )

    def allow_pipeline_alarms(self, alarm_arns: str) -> None:
        """Let the pipelines' alarms (created at run time, not by this stack) publish to the topic."""
        self.topic.add_to_resource_policy(iam.PolicyStatement(
            sid="PipelineAlarmsPublish",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["sns:Publish"],
            resources=[self.topic.topic_arn],
            conditions={"ArnLike": {"aws:SourceArn": alarm_arns}},
        ))
