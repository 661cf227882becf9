"""AwaitStoppedStep: a cancelled provisioning's last step finishes before the teardown undoes its work.

StopExecution ends an execution at once, but not the function its current
task had invoked: on AWS that Lambda runs on until it returns or times out,
and the local engine drops its result the same way. Were the teardown to
drop the slot while CreateSlot still ran, the slot would appear after its
compensation. The step's Powertools in-progress record says whether that run
is alive; it expires with the function's timeout, so this wait is bounded.
"""

from __future__ import annotations

import time
from typing import Any

from lambdas.common import logger, step_handler
from lambdas.common.idempotency import in_progress_until
from lambdas.spec import PipelineSpec

# How often to look at the in-progress record again.
POLL_SECONDS = 0.2
# A step records itself as the pipeline's current step just before its in-progress record is written: a record
# still missing this long after the stop belongs to a step that did not begin.
NOT_BEGUN_GRACE_SECONDS = 1.0


def await_step(
    key_prefix: str, task: dict[str, Any], *, clock: Any = time.monotonic, sleep: Any = time.sleep,
    deadline_seconds: float = 295.0,
) -> float:
    """Block until the run of `task` under `key_prefix` is not in progress; return the seconds waited.

    May block until the run's in-progress record expires (at most the step
    function's timeout). Raises TimeoutError after `deadline_seconds`.
    """
    started = clock()
    while True:
        waited = clock() - started
        expires = in_progress_until(key_prefix, task)
        if expires is None and waited >= NOT_BEGUN_GRACE_SECONDS:
            return waited
        if waited >= deadline_seconds:
            raise TimeoutError(
                f"step {task.get('state_name')} of {task.get('execution_id')} was still in progress after "
                f"{deadline_seconds:.0f} s"
            )
        sleep(POLL_SECONDS)


@step_handler(idempotent=False)
def await_stopped_step_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """Read-only; returns once the step `event["stopped"]` names is no longer running."""
    stopped = event.get("stopped") or {}
    state_name = stopped.get("state_name")
    key_prefix = (event.get("step_key_prefixes") or {}).get(state_name) if state_name else None
    if not key_prefix:
        # No step had begun, or the one recorded keeps no in-progress record (a Choice, a Wait).
        return {"awaited": None, "waited_seconds": 0}
    task = {"execution_id": stopped["execution_arn"], "state_name": state_name,
            "spec": {"pipeline_id": spec.pipeline_id}}
    waited = await_step(key_prefix, task)
    logger.info("stopped step finished", extra={"stopped_step": state_name, "waited_seconds": round(waited, 3)})
    return {"awaited": state_name, "waited_seconds": round(waited, 3)}
