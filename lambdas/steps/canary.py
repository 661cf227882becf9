"""WriteCanary / CheckCanary: one change written at the source and waited for at the sink.

The canary's token comes from the execution id, so a re-run of the step in
the same execution writes the same row, and another execution writes its own.
"""

import hashlib
from typing import Any

from lambdas.common import step_handler
from lambdas.errors import StepError
from lambdas.source.canary import canary_arrived, sink_table_name, write_canary
from lambdas.source.connection import connect_admin, connect_sink
from lambdas.spec import PipelineSpec
from lambdas.steps.wait_loop import next_round


class CanaryNotArrived(StepError):
    """The canary change written at the source did not reach the sink within the wait-loop's rounds."""


def canary_token(execution_id: str) -> str:
    """A short token that is the same for every attempt of one execution."""
    return hashlib.sha256(execution_id.encode()).hexdigest()[:16]


@step_handler
def write_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    token = canary_token(event["execution_id"])
    with connect_admin(spec.source) as conn:
        return {**write_canary(conn, spec, token), "token": token}


@step_handler(idempotent=False)  # polled by a wait-loop: each call must look again
def check_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    token = event["token"]
    with connect_sink(spec.sink) as conn:
        arrived = canary_arrived(conn, spec, token)

    def gave_up(checks: int) -> CanaryNotArrived:
        return CanaryNotArrived(
            f"the canary change (row canary-{token} of {spec.names.heartbeat_qualified}) did not reach "
            f"sink table {sink_table_name(spec)} after {checks} checks; check the sink connector's status and log"
        )

    return next_round(arrived, int(event.get("attempt", 0)), gave_up)
