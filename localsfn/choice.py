"""Choice rules: evaluation (`choose`) and definition checks (`rule_problems`).

Semantics follow the AWS documentation of the Choice state
(https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html):

* A comparison whose Variable (or ...Path operand) holds a value of
  another type is false, not an error: `StringEquals` against 3 is false.
* A Variable that matches nothing fails the state with States.Runtime,
  except for `IsPresent`, which exists to test exactly that.
* Strings compare as Java does (UTF-16 code units), numbers as numbers
  (1 equals 1.0, true is not a number), timestamps as instants.
* `StringMatches` knows one wildcard, `*`; `\\*` is a literal star and
  `\\\\` a literal backslash.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any

from localsfn.errors import StatesError
from localsfn.jsonpath import path_exists, path_problem, read_path

JSON = Any

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "GreaterThan": operator.gt,
    "LessThanEquals": operator.le,
    "GreaterThanEquals": operator.ge,
}
_FAMILIES = ("String", "Numeric", "Timestamp")

# operator name -> (family, relation); relation None marks a type test or StringMatches.
OPERATORS: dict[str, tuple[str, str | None]] = {
    **{f"{family}{relation}": (family, relation) for family in _FAMILIES for relation in _COMPARE},
    **{f"{family}{relation}Path": (family, relation) for family in _FAMILIES for relation in _COMPARE},
    "BooleanEquals": ("Boolean", "Equals"),
    "BooleanEqualsPath": ("Boolean", "Equals"),
    "StringMatches": ("Matches", None),
    **{name: ("TypeTest", None) for name in ("IsNull", "IsPresent", "IsString", "IsNumeric", "IsBoolean", "IsTimestamp")},
}
_COMBINATORS = ("And", "Or", "Not")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.(\d+))?(Z|[+-]\d{2}:\d{2})")


def choose(choice_state: dict, data: JSON, context: dict | None = None) -> str:
    """The Next of the first rule in `Choices` that matches `data`, else `Default`.

    Raises `StatesError("States.NoChoiceMatched", ...)` when nothing matches
    and there is no Default, `StatesError("States.Runtime", ...)` when a
    rule reads a path that matches nothing. `$$` paths read `context`. Pure.
    """
    for rule in choice_state.get("Choices", ()):
        if matches(rule, data, context):
            return rule["Next"]
    default = choice_state.get("Default")
    if default is None:
        raise StatesError("States.NoChoiceMatched", "No choice rule matched the state input and the Choice state has no Default")
    return default


def matches(rule: dict, data: JSON, context: dict | None = None) -> bool:
    """Whether one (possibly nested) choice rule holds for `data` (and `context`, for `$$` paths)."""
    if "And" in rule:
        return all(matches(inner, data, context) for inner in rule["And"])
    if "Or" in rule:
        return any(matches(inner, data, context) for inner in rule["Or"])
    if "Not" in rule:
        return not matches(rule["Not"], data, context)

    name = next((key for key in rule if key in OPERATORS), None)
    if name is None:
        raise StatesError("States.Runtime", f"The choice rule {json.dumps(rule)} has no comparison operator")
    operand = rule[name]
    variable = rule["Variable"]
    if name == "IsPresent":
        return path_exists(variable, data, context) == operand
    value = _read(variable, data, context)
    family, relation = OPERATORS[name]
    if family == "TypeTest":
        return _TYPE_TESTS[name](value) == operand
    if family == "Matches":
        return isinstance(value, str) and _wildcard_pattern(operand).fullmatch(value) is not None
    if name.endswith("Path"):
        operand = _read(operand, data, context)
    return _compare(family, relation, value, operand)


def _read(path: str, data: JSON, context: dict | None) -> JSON:
    try:
        return read_path(path, data, context)
    except StatesError:
        raise StatesError(
            "States.Runtime", f"Invalid path '{path}': The choice state's condition path references an invalid value."
        ) from None


def _compare(family: str, relation: str, left: JSON, right: JSON) -> bool:
    compare = _COMPARE[relation]
    if family == "String":
        if not (isinstance(left, str) and isinstance(right, str)):
            return False
        if left.isascii() and right.isascii():
            return compare(left, right)
        return compare(left.encode("utf-16-be"), right.encode("utf-16-be"))  # Java's String order
    if family == "Numeric":
        return _is_number(left) and _is_number(right) and compare(left, right)
    if family == "Boolean":
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    left_instant, right_instant = _timestamp(left), _timestamp(right)
    return left_instant is not None and right_instant is not None and compare(left_instant, right_instant)


def _is_number(value: JSON) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _timestamp(value: JSON) -> datetime | None:
    return _parse_timestamp(value) if isinstance(value, str) else None


@lru_cache(maxsize=1024)
def _parse_timestamp(text: str) -> datetime | None:
    """An RFC 3339 timestamp with an uppercase T and Z, as AWS requires; else None."""
    match = _TIMESTAMP.fullmatch(text)
    if not match:
        return None
    fraction = match.group(2) or ""
    # datetime keeps microseconds: pad or cut the fraction to six digits.
    normalized = text[:19] + (f".{fraction[:6]:0<6}" if fraction else "") + match.group(3).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(normalized)
    except ValueError:
        return None  # e.g. month 13


_TYPE_TESTS: dict[str, Callable[[JSON], bool]] = {
    "IsNull": lambda value: value is None,
    "IsString": lambda value: isinstance(value, str),
    "IsNumeric": _is_number,
    "IsBoolean": lambda value: isinstance(value, bool),
    "IsTimestamp": lambda value: _timestamp(value) is not None,
}


@lru_cache(maxsize=512)
def _wildcard_pattern(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    escaped = False
    for char in pattern:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*":
            parts.append(".*")
        else:
            parts.append(re.escape(char))
    if escaped:
        parts.append(re.escape("\\"))
    return re.compile("".join(parts), re.DOTALL)


# --------------------------------------------------------------------------- validation


def rule_problems(rule: dict, where: str) -> list[str]:
    """Everything AWS would reject in one top-level choice rule; [] when it is valid.

    `where` names the rule (e.g. "State 'Route' Choices[0]") and starts
    every message. Checks: a Next on top-level rules and none inside
    And/Or/Not, exactly one operator, known operator names, operand
    types, Variable present and a valid path, And/Or/Not shapes.
    """
    return _problems(rule, where, top_level=True)


def _problems(rule: JSON, where: str, top_level: bool) -> list[str]:
    if not isinstance(rule, dict):
        return [f"{where}: a choice rule must be an object, got {json.dumps(rule)}"]
    problems: list[str] = []
    if top_level and not isinstance(rule.get("Next"), str):
        problems.append(f"{where}: a top-level choice rule needs a Next (a state name)")
    if not top_level and "Next" in rule:
        problems.append(f"{where}: Next is only allowed on a top-level choice rule, not inside And/Or/Not")

    known = {"Variable", "Next", "Comment", *_COMBINATORS, *OPERATORS}
    problems += [f"{where}: unknown operator or field '{key}'" for key in rule if key not in known]
    chosen = [key for key in rule if key in OPERATORS or key in _COMBINATORS]
    if not chosen:
        return problems + [f"{where}: no comparison operator (such as StringEquals) and no And/Or/Not"]
    if len(chosen) > 1:
        return problems + [f"{where}: only one operator is allowed per rule, found {', '.join(chosen)}"]

    name = chosen[0]
    operand = rule[name]
    if name in _COMBINATORS:
        if "Variable" in rule:
            problems.append(f"{where}: {name} does not take a Variable; put it on the inner rules")
        if name == "Not":
            return problems + _problems(operand, f"{where}.Not", top_level=False)
        if not isinstance(operand, list) or not operand:
            return problems + [f"{where}: {name} must be a non-empty array of choice rules"]
        for index, inner in enumerate(operand):
            problems += _problems(inner, f"{where}.{name}[{index}]", top_level=False)
        return problems

    variable = rule.get("Variable")
    if variable is None:
        problems.append(f"{where}: {name} needs a Variable (the path to compare)")
    elif (problem := path_problem(variable)) is not None:
        problems.append(f"{where}: Variable {json.dumps(variable)} is not a valid path: {problem}")
    operand_problem = _operand_problem(name, operand)
    if operand_problem:
        problems.append(f"{where}: {name} {operand_problem}, got {json.dumps(operand)}")
    return problems


def _operand_problem(name: str, operand: JSON) -> str | None:
    family, _ = OPERATORS[name]
    if name.endswith("Path"):
        if not isinstance(operand, str) or path_problem(operand) is not None:
            return "takes a path to the value to compare with"
        return None
    if family in ("TypeTest", "Boolean"):
        return None if isinstance(operand, bool) else "takes true or false"
    if family in ("String", "Matches"):
        return None if isinstance(operand, str) else "takes a string"
    if family == "Numeric":
        return None if _is_number(operand) else "takes a number"
    return None if _timestamp(operand) is not None else "takes an RFC 3339 timestamp such as 2016-08-18T17:33:00Z"
