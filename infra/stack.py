"""The cdcflow stack: every construct of `infra/`, composed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from statemachines import catalogue
from infra.api import PipelinesApi
from infra.config import Settings
from infra.functions import CatalogueFunctions
from infra.network import SourceNetwork
from infra.observability import Observability
from infra.schedule import ReconcileSchedule
from infra.state_machines import STATEMACHINES_DIR, Workflows
from infra.tables import Tables


class CdcflowStack(Stack):
    """Registry, functions, workflows, API, schedule and alarms of cdcflow.

    `settings` default to the CDK context (see infra/config.py);
    `definitions_dir` is the folder of `*.asl.json` files, one state machine each.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings | None = None,
        definitions_dir: Path = STATEMACHINES_DIR,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        settings = settings or Settings.from_context(self.node)

        self.tables = Tables(self, "Tables")
        needs_network = any(catalogue.VPC_NETWORK in function.permissions for function in catalogue.FUNCTIONS)
        self.network = SourceNetwork(self, "Network", settings=settings.network) if needs_network else None
        self.functions = CatalogueFunctions(
            self, "Functions", tables=self.tables, network=self.network, settings=settings,
        )
        self.workflows = Workflows(
            self, "Workflows", functions=self.functions.by_key, definitions_dir=definitions_dir,
        )
        self.functions.grant_workflows(self.workflows.state_machines)
        self.api = PipelinesApi(
            self, "Api", handler=self.functions.by_key["Api"],
            throttle_rate=settings.api_throttle_rate, throttle_burst=settings.api_throttle_burst,
        )
        self.schedule = ReconcileSchedule(
            self, "Schedule", reconcile=self.functions.by_key["Reconcile"], expression=settings.reconcile_schedule,
        )
        self.observability = Observability(
            self, "Observability",
            state_machines=self.workflows.state_machines, functions=self.functions.by_key,
            dead_letters={"Reconcile": self.schedule.dead_letters},
        )
        # The pipelines' alarms (put by ProvisionPipeline's PutAlarms step) notify the same topic.
        self.functions.set_alarm_topic(self.observability.topic.topic_arn)
        self.observability.allow_pipeline_alarms(self.functions.pipeline_alarm_arns())

        CfnOutput(self, "ApiUrl", value=self.api.rest_api.url)
        CfnOutput(self, "RegistryTableName", value=self.tables.registry.table_name)
        CfnOutput(self, "AlarmTopicArn", value=self.observability.topic.topic_arn)
        for name, state_machine in self.workflows.state_machines.items():
            output_id = "".join(part.capitalize() for part in name.split("_")) + "StateMachineArn"
            CfnOutput(self, output_id, value=state_machine.state_machine_arn)
