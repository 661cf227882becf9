"""Preflight: the dependencies a spec names answer and accept their logins, before anything is created."""

from typing import Any

from lambdas.common import step_handler
from lambdas.preflight import preflight
from lambdas.spec import PipelineSpec


@step_handler
def handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    return preflight(spec)
