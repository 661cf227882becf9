"""Workflow variables (`Assign`, `$name`): scopes, the context they are read through, and their checks.

As the Step Functions developer guide describes them
(https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html):

* the top-level states share one scope; each Parallel branch and each Map
  iteration runs in a scope of its own that reads the outer scopes and
  cannot assign a name an outer scope assigns; its variables end with it;
* a state's Assign and Output are evaluated together from the state's
  input and result and the variables as they were on entering the state;
  the new values are visible from the next state on;
* a reference to a variable no state before it can assign is refused when
  the state machine is created.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from localsfn.jsonpath import variable_name

JSON = Any
MAX_NAME_LENGTH = 80
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REFERENCE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_RESERVED = {"states"}
# `$name` read as a value, not called as a function (`$sum(...)`).
_VALUE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()")


class Context(dict):
    """The context object (`$$`), carrying the workflow variables a state can read.

    The variables are looked up only when a path or an expression reads one,
    so states that use none pay nothing for them.
    """

    __slots__ = ("_load", "_variables")

    @classmethod
    def of(cls, values: dict, load: Callable[[], dict], **more: JSON) -> Context:
        """`values` and `more` as the context object; `load()` gives the variables when first read."""
        # dict's own constructor, with no __init__ of ours: contexts are made on every transition.
        context = cls(values, **more)
        context._load = load
        context._variables = None
        return context

    @property
    def variables(self) -> dict:
        if self._variables is None:
            self._variables = self._load()
        return self._variables

    def extended(self, **values: JSON) -> Context:
        """A copy with more top-level entries (`Map`, `Task`), reading the same variables."""
        extended = Context.of(self, self._load, **values)
        extended._variables = self._variables
        return extended


def visible(own: dict | None, outer: Iterator[dict | None]) -> dict:
    """The variables a path reads: the outer scopes' (outermost first), overridden by its own."""
    scopes = [scope for scope in outer if scope]
    merged: dict = {}
    for scope in reversed(scopes):
        merged.update(scope)
    if own:
        merged.update(own)
    return merged


def name_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not _NAME.match(name):
        return f"the variable name {name!r} must start with a letter or '_' and hold only letters, digits and '_'"
    if len(name) > MAX_NAME_LENGTH:
        return f"the variable name '{name}' is longer than {MAX_NAME_LENGTH} characters"
    if name in _RESERVED:
        return f"the variable name '{name}' is reserved"
    return None


def assigned_names(assign: Any) -> set[str]:
    """The names an Assign field sets (`"name.$"` sets `name`)."""
    if not isinstance(assign, dict):
        return set()
    return {key.removesuffix(".$") for key in assign}


def references(value: JSON, jsonata: bool) -> set[str]:
    """The variable names a field's value reads: `$name` paths (JSONPath) or `$name` in `{% %}` expressions."""
    found: set[str] = set()
    _collect(value, jsonata, found, key_is_path=False)
    return found


def _collect(value: JSON, jsonata: bool, found: set[str], key_is_path: bool) -> None:
    if isinstance(value, str):
        if jsonata:
            if value.startswith("{%") and value.endswith("%}"):
                found.update(_expression_references(value[2:-2]))
        elif key_is_path:
            found.update(_path_references(value))
    elif isinstance(value, dict):
        for key, item in value.items():
            _collect(item, jsonata, found, key_is_path=isinstance(key, str) and key.endswith(".$"))
    elif isinstance(value, list):
        for item in value:
            _collect(item, jsonata, found, key_is_path=key_is_path)


def _path_references(text: str) -> set[str]:
    """`$name...` as a whole path, or inside an intrinsic call's arguments."""
    if text.startswith("States."):
        return {match.group(1) for match in _REFERENCE.finditer(_without_quoted(text))}
    name = variable_name(text)
    return {name} if name else set()


def _expression_references(text: str) -> set[str]:
    """`$name` read as a value; not a function call `$name(`, a local `$name :=` or a lambda's parameter."""
    text = _without_quoted(text)
    local = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)\s*:=", text))
    for parameters in re.findall(r"function\s*\(([^)]*)\)", text):
        local.update(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", parameters))
    names = {match.group(1) for match in _VALUE.finditer(text)}
    return names - local - _RESERVED


def _without_quoted(text: str) -> str:
    return re.sub(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"", "''", text)


# --------------------------------------------------------------------------- definition checks


def variable_problems(definition: dict) -> list[str]:
    """References to variables no state in scope assigns, and inner scopes assigning outer names."""
    return _scope_problems(definition, "", set(), definition.get("QueryLanguage", "JSONPath"))


def variable_references(definition: dict) -> dict[str, list[str]]:
    """DescribeStateMachine's variableReferences: state name -> the variables it reads (states that read none are left out)."""
    found: dict[str, list[str]] = {}
    _walk_references(definition, definition.get("QueryLanguage", "JSONPath"), found)
    return found


def _walk_references(machine: dict, language: str, found: dict) -> None:
    for name, state in machine.get("States", {}).items():
        state_language = state.get("QueryLanguage", language)
        names = _state_references(state, state_language == "JSONata")
        if names:
            found[name] = sorted(names)
        for inner in _inner_machines(state):
            _walk_references(inner, state_language, found)


def _scope_problems(machine: dict, where: str, outer: set[str], language: str) -> list[str]:
    prefix = f"{where} " if where else ""
    states = machine.get("States", {})
    assigned = set()
    for state in states.values():
        assigned |= _state_assigns(state)
    problems = []
    in_scope = assigned | outer
    for name, state in states.items():
        state_language = state.get("QueryLanguage", language)
        for variable in sorted(_state_references(state, state_language == "JSONata") - in_scope):
            problems.append(f"{prefix}State '{name}': the variable '${variable}' is referenced but never assigned in this scope or an outer one")
        for index, inner in enumerate(_inner_machines(state)):
            label = f"Branches[{index}]" if state.get("Type") == "Parallel" else "ItemProcessor"
            inner_where = f"{prefix}State '{name}' {label}"
            inner_assigned = set().union(*(_state_assigns(inner_state) for inner_state in inner.get("States", {}).values()))
            for variable in sorted(inner_assigned & (set() if _distributed(state) else in_scope)):
                problems.append(f"{inner_where}: the variable '${variable}' belongs to an outer scope and cannot be assigned here")
            # A Distributed Map's children are executions of their own: they see no outer variables.
            problems += _scope_problems(inner, inner_where, set() if _distributed(state) else in_scope, state_language)
    return problems


def _distributed(state: dict) -> bool:
    processor = state.get("ItemProcessor")
    config = processor.get("ProcessorConfig") if isinstance(processor, dict) else None
    return isinstance(config, dict) and config.get("Mode") == "DISTRIBUTED"


def _inner_machines(state: dict) -> list[dict]:
    if state.get("Type") == "Parallel":
        return [branch for branch in state.get("Branches", ()) if isinstance(branch, dict)]
    if state.get("Type") == "Map":
        processor = state.get("ItemProcessor", state.get("Iterator"))
        return [processor] if isinstance(processor, dict) else []
    return []


def _state_assigns(state: dict) -> set[str]:
    names = assigned_names(state.get("Assign"))
    for catcher in state.get("Catch", ()):
        if isinstance(catcher, dict):
            names |= assigned_names(catcher.get("Assign"))
    for rule in state.get("Choices", ()):
        if isinstance(rule, dict):
            names |= assigned_names(rule.get("Assign"))
    return names


def _state_references(state: dict, jsonata: bool) -> set[str]:
    fields = {key: value for key, value in state.items() if key not in ("Branches", "ItemProcessor", "Iterator")}
    if jsonata:
        return references(fields, jsonata=True)
    found: set[str] = set()
    for key, value in fields.items():
        if key.endswith("Path") and isinstance(value, str):
            found |= _path_references(value)
        elif key in ("Parameters", "ItemSelector", "ResultSelector", "Assign"):
            found |= references(value, jsonata=False)
        elif key == "Choices" and isinstance(value, list):
            found |= _rule_references(value)
        elif key == "Catch" and isinstance(value, list):
            found |= references([catcher.get("Assign") for catcher in value if isinstance(catcher, dict)], jsonata=False)
    return found


def _rule_references(rules: list) -> set[str]:
    found: set[str] = set()
    for rule in rules:
        if not isinstance(rule, dict):
            continue
        for key, value in rule.items():
            if key in ("And", "Or"):
                found |= _rule_references(value if isinstance(value, list) else [])
            elif key == "Not":
                found |= _rule_references([value])
            elif (key == "Variable" or key.endswith("Path")) and isinstance(value, str):
                found |= _path_references(value)
            elif key == "Assign":
                found |= references(value, jsonata=False)
    return found
