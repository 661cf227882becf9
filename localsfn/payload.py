"""Payload templates: Parameters, ItemSelector and ResultSelector.

A template is JSON. A key ending in ``.$`` takes its value from a path
(``$...`` on the state's data, ``$$...`` on the context object) or from an
intrinsic function call (``States.*``) and loses the ``.$`` suffix; every
other value is copied as written. Objects and arrays are rendered all the
way down.
"""

from __future__ import annotations

import json
from typing import Any

from localsfn.errors import StatesError
from localsfn.intrinsics import evaluate, is_intrinsic
from localsfn.jsonpath import PathNotFound, copy_json, read_path

JSON = Any


def render(template: JSON, data: JSON, context: dict) -> JSON:
    """Render a payload template against the state's data and the context object.

    Returns a new document; neither `template` nor `data` is mutated and
    the result shares no mutable part with either. Raises
    `StatesError("States.Runtime", ...)` naming the field when a path
    matches nothing or a `.$` value is neither a path nor an intrinsic
    call, and `StatesError("States.IntrinsicFailure", ...)` when an
    intrinsic call fails.
    """
    if isinstance(template, dict):
        rendered = {}
        for key, value in template.items():
            if key.endswith(".$"):
                rendered[key[:-2]] = _dynamic_value(key, value, data, context)
            else:
                rendered[key] = render(value, data, context)
        return rendered
    if isinstance(template, list):
        return [render(item, data, context) for item in template]
    return template


def _dynamic_value(field: str, expression: JSON, data: JSON, context: dict) -> JSON:
    if not isinstance(expression, str) or not (expression.startswith("$") or is_intrinsic(expression)):
        raise StatesError(
            "States.Runtime",
            f"The value of the field '{field}' must be a path or an intrinsic function call, got {json.dumps(expression)}",
        )
    try:
        value = evaluate(expression, data, context) if is_intrinsic(expression) else read_path(expression, data, context)
        # Copy: the value lands in a new document that later states may change.
        return copy_json(value)
    except PathNotFound as missing:
        raise StatesError(
            "States.Runtime",
            f"The JSONPath '{missing.path}' specified for the field '{field}' "
            f"could not be found in the input '{_compact_json(missing.data)}'",
        ) from None


def _compact_json(value: JSON) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
