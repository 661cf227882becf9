"""ValidateSpec: the schema check that guards every other step."""

from typing import Any

from lambdas.common import step_handler
from lambdas.spec import PipelineSpec


@step_handler(idempotent=False)  # pure: nothing to protect, and it runs before the idempotency key is trusted
def handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    return {"spec": spec.to_dict(), "fingerprint": spec.fingerprint()}
