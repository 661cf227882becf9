"""RequestApproval: park the workflow until a person decides.

The state waits on `.waitForTaskToken`; this handler stores the token in the
registry, where `POST /pipelines/{id}/approval` (or `cdcflow approve`) finds it
and answers with SendTaskSuccess / SendTaskFailure.
"""

from typing import Any

from lambdas import registry
from lambdas.common import step_handler
from lambdas.spec import PipelineSpec


# Not idempotent by execution and state: a retried attempt brings a new task
# token, and the workflow waits on that one, so it must be stored every time.
@step_handler(idempotent=False)
def request_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    registry.store_task_token(spec.pipeline_id, event["task_token"])
    registry.set_step(spec.pipeline_id, "RequestApproval")
    return {"awaiting_approval": True, "reason": event.get("reason", "")}
