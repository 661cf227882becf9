"""Distributed Map: Map Run and child execution ARNs, item batches and the tolerated-failure threshold.

As the developer guide describes Distributed mode
(https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html):
a Map Run per Map state entered, named by the state's Label (or its name),
whose children are child workflow executions of the state machine
`{machine}/{label}`; `ItemBatcher` hands each child a batch
`{"Items": [...], "BatchInput": ...}`; the run fails with
States.ExceedToleratedFailureThreshold once more items fail than
ToleratedFailureCount or ToleratedFailurePercentage allow.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from localsfn.errors import StatesError
from localsfn.lambdas import ACCOUNT, REGION

JSON = Any
THRESHOLD_ERROR = "States.ExceedToleratedFailureThreshold"
THRESHOLD_CAUSE = "The specified tolerated failure threshold was exceeded"
MAX_LABEL_LENGTH = 40
_LABEL_FORBIDDEN = set(" <>{}[]?*\"#%\\^|~`$&,;:/")
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def is_distributed(state: dict) -> bool:
    processor = state.get("ItemProcessor")
    config = processor.get("ProcessorConfig") if isinstance(processor, dict) else None
    return isinstance(config, dict) and config.get("Mode") == "DISTRIBUTED"


def map_run_arn(machine_name: str, state: dict, state_name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:mapRun:{machine_name}/{state.get('Label', state_name)}:{uuid.uuid4()}"


def map_run_path(map_run_arn: str) -> str:
    """`{state machine name}/{label}` of a Map Run ARN: the name its child executions run under."""
    return map_run_arn.split(":mapRun:", 1)[1].rsplit(":", 1)[0]


def child_machine_arn(map_run_arn: str) -> str:
    """The state machine ARN a Map Run's child executions carry (`...:stateMachine:{machine}/{label}`), as on AWS."""
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{map_run_path(map_run_arn)}"


def child_execution_arn(map_run_arn: str, index: int) -> str:
    """The ARN of the child execution of item (or batch) `index`; its name has a UUID's form, as AWS names children.

    The name is the Map Run's id with its last group replaced by the index, so
    the children of one run sort together: their history events then land
    side by side in the journal's index rather than scattered over it (a
    100-item run journals about three times faster so).
    """
    name = f"{map_run_arn.rsplit(':', 1)[1][:24]}{index:012x}"
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{map_run_path(map_run_arn)}:{name}"


def label_problem(label: Any) -> str | None:
    if not isinstance(label, str) or not label:
        return "Label must be a non-empty string"
    if len(label) > MAX_LABEL_LENGTH:
        return f"Label must have at most {MAX_LABEL_LENGTH} characters"
    if any(char in _LABEL_FORBIDDEN or ord(char) < 32 for char in label):
        return "Label must not hold whitespace or any of < > { } [ ] ? * \" # % \\ ^ | ~ ` $ & , ; : /"
    return None


def batches(items: list, max_items: int | None, max_bytes: int | None, batch_input: JSON) -> list[dict]:
    """Consecutive batches of at most `max_items` items and `max_bytes` bytes of JSON (one item at least)."""
    found: list[dict] = []
    current: list = []
    size = 0
    for item in items:
        item_size = len(_dumps(item).encode())
        full = (max_items is not None and len(current) >= max_items) or (max_bytes is not None and current and size + item_size > max_bytes)
        if full:
            found.append(_batch(current, batch_input))
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        found.append(_batch(current, batch_input))
    return found


def _batch(items: list, batch_input: JSON) -> dict:
    return {"Items": items} if batch_input is None else {"BatchInput": batch_input, "Items": items}


def exceeds_threshold(failed: int, total: int, tolerated_count: int | None, tolerated_percentage: float | None) -> bool:
    """Whether `failed` of `total` items is more than the Map state tolerates (nothing, by default)."""
    if tolerated_count is None and tolerated_percentage is None:
        return failed > 0
    if tolerated_count is not None and failed > tolerated_count:
        return True
    return tolerated_percentage is not None and total > 0 and failed * 100 / total > tolerated_percentage


def positive_int(value: JSON, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise StatesError("States.Runtime", f"{what} must be a non-negative integer, got {_dumps(value)}")
    return value


def percentage(value: JSON, what: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 100:
        raise StatesError("States.Runtime", f"{what} must be a number from 0 to 100, got {_dumps(value)}")
    return float(value)
