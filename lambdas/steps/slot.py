"""CreateSlot / DropSlot: the pipeline's logical replication slot (pgoutput)."""

import os
from typing import Any

from lambdas.common import step_handler
from lambdas.source.connection import connect_admin
from lambdas.source.slot import drop_slot, ensure_slot
from lambdas.spec import PipelineSpec

# How long slot creation may wait for older transactions to end. It must stay
# below the function's timeout (300 s) so the step fails with the named error
# that lists the blocking transactions, rather than being cut off.
DEFAULT_CREATE_WAIT_SECONDS = 120.0


def create_wait_seconds() -> float:
    return float(os.environ.get("SLOT_CREATE_WAIT_SECONDS", DEFAULT_CREATE_WAIT_SECONDS))


@step_handler
def create_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    with connect_admin(spec.source) as conn:
        return ensure_slot(conn, spec, wait_seconds=create_wait_seconds()).to_dict()


@step_handler
def drop_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    with connect_admin(spec.source) as conn:
        return {"dropped": drop_slot(conn, spec)}
