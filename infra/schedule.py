"""The EventBridge schedule that runs the `Reconcile` function, and where its failed runs go.

A scheduled run is an asynchronous invocation: Lambda retries a failed one
twice, then sends the event with the error to `dead_letters`, an encrypted
SQS queue (the function's on-failure destination). EventBridge sends an
event it could not deliver at all to the same queue (the target's
dead-letter queue). `Observability` alarms on anything in it.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

# A later scheduled run supersedes an event this old.
MAX_EVENT_AGE = Duration.minutes(15)
RETRY_ATTEMPTS = 2


class ReconcileSchedule(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, reconcile: lambda_.IFunction, expression: str) -> None:
        """`expression` is an EventBridge schedule expression, e.g. `rate(15 minutes)`."""
        super().__init__(scope, construct_id)
        self.dead_letters = sqs.Queue(
            self, "FailedRuns",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # The longest SQS keeps a message: time for someone to read why the runs failed.
            retention_period=Duration.days(14),
            removal_policy=RemovalPolicy.DESTROY,
        )
        NagSuppressions.add_resource_suppressions(self.dead_letters, [NagPackSuppression(
            id="AwsSolutions-SQS3",
            reason="This queue is itself the dead-letter destination of the Reconcile function and of its "
                   "schedule's target; nothing consumes it but a person reading failures",
        )])
        reconcile.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.dead_letters),
            retry_attempts=RETRY_ATTEMPTS,
            max_event_age=MAX_EVENT_AGE,
        )
        self.rule = events.Rule(
            self, "Rule",
            description="Compare registered pipelines with what exists, and repair",
            schedule=events.Schedule.expression(expression),
            # Reconcile is idempotent, so a retried delivery is harmless; an event still
            # undelivered after 15 minutes is dropped: a later scheduled run supersedes it.
            targets=[targets.LambdaFunction(
                reconcile, retry_attempts=RETRY_ATTEMPTS, max_event_age=MAX_EVENT_AGE,
                dead_letter_queue=self.dead_letters,
            )],
        )
