"""The definitions `bench/engine_vs_moto` runs on both engines, and how to count their state transitions."""

from __future__ import annotations

CHAIN_LENGTH = 100
MAP_ITEMS = 100
PARALLEL_BRANCHES = 10


def pass_choice_chain(length: int = CHAIN_LENGTH) -> dict:
    """`length` states alternating Pass (record a step) and Choice (check a field), then Succeed.

    Plain JSONPath only: moto re-parses intrinsic functions on every call,
    which would measure its parser rather than its interpreter.
    """
    states: dict = {}
    for index in range(length):
        name, following = f"S{index:03d}", f"S{index + 1:03d}" if index + 1 < length else "Done"
        if index % 2 == 0:
            states[name] = {"Type": "Pass", "Result": index, "ResultPath": "$.step", "Next": following}
        else:
            states[name] = {
                "Type": "Choice",
                "Choices": [{"Variable": "$.step", "NumericGreaterThanEquals": 0, "Next": following}],
                "Default": "Done",
            }
    states["Done"] = {"Type": "Succeed"}
    return {"StartAt": "S000", "States": states}


def map_over_items(items: int = MAP_ITEMS) -> dict:
    """A Map over `$.items` whose processor is one Pass state."""
    return {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {"StartAt": "Item", "States": {"Item": {"Type": "Pass", "Result": "done", "ResultPath": "$.status", "End": True}}},
                "End": True,
            }
        },
    }


def parallel_branches(branches: int = PARALLEL_BRANCHES) -> dict:
    """A Parallel of `branches` branches of two Pass states each."""
    branch = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Result": "done", "End": True}}}
    return {"StartAt": "Fan", "States": {"Fan": {"Type": "Parallel", "Branches": [branch] * branches, "End": True}}}


WORKLOADS: dict[str, tuple[dict, dict]] = {
    "chain": (pass_choice_chain(), {"pipeline": "orders"}),
    "map": (map_over_items(), {"items": [{"index": index} for index in range(MAP_ITEMS)]}),
    "parallel": (parallel_branches(), {"x": 1}),
}


def transitions(event_types: list[str]) -> int:
    """State transitions of one execution: every state entered."""
    return sum(1 for kind in event_types if kind.endswith("StateEntered"))
