"""WriteCanary / CheckCanary: one change written at the source and waited for at the sink.

The canary's token comes from the execution id, so a re-run of the step in
the same execution writes the same row, and another execution writes its own.
"""

import hashlib
from typing import Any

from lambdas.common import step_handler
from lambdas.connect.credentials import login_from_secret
from lambdas.errors import StepError
from lambdas.opensearch import document_with_id_exists
from lambdas.source.canary import canary_arrived, canary_row_id, sink_table_name, write_canary
from lambdas.source.connection import connect_admin, connect_sink
from lambdas.spec import PipelineSpec
from lambdas.wait_loop import Schedule, next_round, schedule_of, settle


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
    token, schedule = event["token"], schedule_of(event)
    if spec.sink.type == "opensearch":
        arrived, where = _arrived_in_opensearch(spec, token, schedule), f"index {_heartbeat_index(spec)}"
    else:
        arrived, where = _arrived_in_database(spec, token, schedule), f"sink table {sink_table_name(spec)}"

    def gave_up(checks: int) -> CanaryNotArrived:
        return CanaryNotArrived(
            f"the canary change (row canary-{token} of {spec.names.heartbeat_qualified}) did not reach "
            f"{where} after {checks} checks; check the sink connector's status and log"
        )

    return next_round(arrived, int(event.get("attempt", 0)), schedule, gave_up)


def _arrived_in_database(spec: PipelineSpec, token: str, schedule: Schedule) -> bool:
    with connect_sink(spec.sink) as conn:
        return settle(lambda: canary_arrived(conn, spec, token), bool, schedule)


def _heartbeat_index(spec: PipelineSpec) -> str:
    """The OpenSearch sink writes each topic to an index of the same name."""
    return spec.names.table_topic(spec.names.heartbeat_qualified)


def _arrived_in_opensearch(spec: PipelineSpec, token: str, schedule: Schedule) -> bool:
    login = login_from_secret(spec.sink.secret) if spec.sink.secret else None
    index, row_id = _heartbeat_index(spec), canary_row_id(token)
    return settle(lambda: document_with_id_exists(spec.sink.url, index, row_id, login), bool, schedule)
