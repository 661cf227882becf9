"""JSONata as Step Functions evaluates it: `{% ... %}` expressions, `$states`, AWS's added functions.

The evaluator is `jsonatapy` (a Rust implementation of JSONata 2.x); this
module adds what Step Functions adds on top of JSONata
(https://docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html):

* a field's value is an expression when it is a string `{% ... %}`;
  objects and arrays are templates whose strings may be expressions;
* `$states` (input, result, errorOutput, context) and the workflow
  variables are bound by name;
* `$partition`, `$range`, `$hash`, `$random`, `$uuid` and `$parse`;
  `$eval` is not available, as on AWS;
* a failed evaluation is `States.QueryEvaluationError` naming the field
  and the expression.

Compiled expressions are cached per text and per thread (jsonatapy's
compiled expressions must stay on the thread that made them), so a state
entered many times compiles its expressions once.
"""

from __future__ import annotations

import hashlib
import json
import random as _random
import threading
import uuid
from typing import Any

import jsonatapy

from localsfn.errors import StatesError

JSON = Any
QUERY_ERROR = "States.QueryEvaluationError"
_HASH_ALGORITHMS = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def is_expression(value: JSON) -> bool:
    """True for a string written `{% expression %}`."""
    return isinstance(value, str) and value.startswith("{%") and value.endswith("%}") and len(value) >= 4


def expression_text(value: str) -> str:
    return value[2:-2].strip()


def expression_problem(value: str) -> str | None:
    """Why the `{% %}` string does not compile, or None (for definition validation)."""
    try:
        _compiled(expression_text(value))
    except StatesError as error:
        return error.cause
    return None


def evaluate(value: str, bindings: dict, field: str) -> JSON:
    """Evaluate one `{% %}` string with `bindings` ({"states": ..., variable: value}).

    Raises `StatesError("States.QueryEvaluationError", ...)` naming `field`
    when the expression fails or yields nothing (JSONata's undefined).
    """
    text = expression_text(value)
    expression = _compiled(text)
    states = bindings.get("states") or {}
    document = states.get("input")
    try:
        result = expression.evaluate_json_or_none(_dumps(document), bindings)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # noqa: BLE001 - a Rust panic arrives as a BaseException; it must not stop the engine
        raise StatesError(QUERY_ERROR, f"The JSONata expression '{text}' specified for the field '{field}' returned an error: {error}") from None
    if result is None:
        raise StatesError(QUERY_ERROR, f"The JSONata expression '{text}' specified for the field '{field}' returned nothing (undefined).")
    return json.loads(result)


def render(template: JSON, bindings: dict, field: str) -> JSON:
    """A JSONata-state field: an expression, or JSON whose strings may be expressions, evaluated all the way down."""
    if isinstance(template, str):
        return evaluate(template, bindings, field) if is_expression(template) else template
    if isinstance(template, dict):
        return {key: render(value, bindings, f"{field}/{key}") for key, value in template.items()}
    if isinstance(template, list):
        return [render(item, bindings, f"{field}[{index}]") for index, item in enumerate(template)]
    return template


def has_expression(template: JSON) -> bool:
    if isinstance(template, str):
        return is_expression(template)
    if isinstance(template, dict):
        return any(has_expression(value) for value in template.values())
    if isinstance(template, list):
        return any(has_expression(item) for item in template)
    return False


def template_problems(template: JSON, where: str) -> list[str]:
    """Every `{% %}` string in `template` that does not compile."""
    if isinstance(template, str):
        if template.startswith("{%") and not is_expression(template):
            return [f"{where}: an expression must be written {{% ... %}}"]
        if is_expression(template) and (problem := expression_problem(template)):
            return [f"{where}: the JSONata expression is not valid: {problem}"]
        return []
    if isinstance(template, dict):
        return [problem for key, value in template.items() for problem in template_problems(value, f"{where}/{key}")]
    if isinstance(template, list):
        return [problem for index, item in enumerate(template) for problem in template_problems(item, f"{where}[{index}]")]
    return []


# --------------------------------------------------------------------------- AWS's functions


def _partition(array: JSON, size: JSON) -> list:
    if not isinstance(array, list):
        raise TypeError("$partition: the first argument must be an array")
    if not isinstance(size, (int, float)) or isinstance(size, bool) or size < 1 or int(size) != size:
        raise ValueError("$partition: the chunk size must be a positive integer")
    size = int(size)
    return [array[start : start + size] for start in range(0, len(array), size)]


def _range(start: JSON, end: JSON, step: JSON) -> list:
    for name, value in (("start", start), ("end", end), ("step", step)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or int(value) != value:
            raise ValueError(f"$range: {name} must be an integer")
    if step == 0:
        raise ValueError("$range: step cannot be 0")
    values = list(range(int(start), int(end) + (1 if step > 0 else -1), int(step)))
    if len(values) > 1000:
        raise ValueError("$range: at most 1000 items")
    return values


def _hash(data: JSON, algorithm: JSON) -> str:
    if algorithm not in _HASH_ALGORITHMS:
        raise ValueError(f"$hash: the algorithm must be one of {', '.join(_HASH_ALGORITHMS)}")
    text = data if isinstance(data, str) else _dumps(data)
    return hashlib.new(_HASH_ALGORITHMS[algorithm], text.encode()).hexdigest()


def _random_number(*seed: JSON) -> float:
    if seed and seed[0] is not None:
        return _random.Random(seed[0]).random()
    return _random.random()


def _uuid() -> str:
    return str(uuid.uuid4())


def _parse(text: JSON) -> JSON:
    if not isinstance(text, str):
        raise TypeError("$parse: the argument must be a string of JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"$parse: not valid JSON: {error}") from None


def _eval_refused(*_: JSON) -> JSON:
    raise ValueError("$eval is not supported in Step Functions")


_FUNCTIONS = {"partition": _partition, "range": _range, "hash": _hash, "random": _random_number, "uuid": _uuid, "parse": _parse}


_CACHE_LIMIT = 4096
_local = threading.local()


def _compiled(text: str) -> jsonatapy.JsonataExpression:
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    expression = cache.get(text)
    if expression is None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        expression = cache[text] = _compile(text)
    return expression


def _compile(text: str) -> jsonatapy.JsonataExpression:
    try:
        expression = jsonatapy.compile(text)
    except (ValueError, TypeError, RuntimeError) as error:
        raise StatesError(QUERY_ERROR, f"The JSONata expression '{text}' is not valid: {error}") from None
    for name, function in _FUNCTIONS.items():
        if f"${name}" in text:
            _register(expression, name, function)
    if "$eval" in text:
        _register(expression, "eval", _eval_refused)
    return expression


def _register(expression: jsonatapy.JsonataExpression, name: str, function: Any) -> None:
    try:
        expression.register(name, function)
    except ValueError:  # a JSONata built-in of that name: AWS's version replaces it
        expression.register_override(name, function)
