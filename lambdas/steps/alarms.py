"""PutAlarms / DeleteAlarms: the pipeline's CloudWatch alarms (`lambdas.alarms`)."""

from typing import Any

from lambdas.alarms import delete_alarms, put_alarms
from lambdas.common import step_handler
from lambdas.spec import PipelineSpec


@step_handler
def put_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    return {"alarms": put_alarms(spec)}


@step_handler
def delete_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    return {"deleted": delete_alarms(spec.pipeline_id)}
