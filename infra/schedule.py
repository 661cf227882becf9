"""The EventBridge schedule that runs the `Reconcile` function."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct


class ReconcileSchedule(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, reconcile: lambda_.IFunction, expression: str) -> None:
        """`expression` is an EventBridge schedule expression, e.g. `rate(15 minutes)`."""
        super().__init__(scope, construct_id)
        self.rule = events.Rule(
            self, "Rule",
            description="Compare registered pipelines with what exists, and repair",
            schedule=events.Schedule.expression(expression),
            # Reconcile is idempotent, so a retried delivery is harmless; an event still
            # undelivered after 15 minutes is dropped: a later scheduled run supersedes it.
            targets=[targets.LambdaFunction(reconcile, retry_attempts=2, max_event_age=Duration.minutes(15))],
        )
