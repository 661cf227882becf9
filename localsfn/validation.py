"""Definition validation: what CreateStateMachine rejects, with the state and the problem named.

`validate(text)` parses an Amazon States Language definition (JSONPath
query language) and raises `DefinitionInvalid` listing every problem
found, each message starting with where it is (`State 'CreateSlot'`,
`State 'Fan' Branches[1] State 'X'`). Besides what AWS rejects, it
rejects what this engine cannot run the same way: service integrations
other than Lambda, distributed Map, JSONata.
"""

from __future__ import annotations

import json
from typing import Any

from localsfn.choice import rule_problems
from localsfn.errors import DefinitionInvalid
from localsfn.intrinsics import expression_problem, is_intrinsic
from localsfn.jsonpath import is_reference_path, path_problem
from localsfn.timestamps import parse_timestamp

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
LAMBDA_INVOKE_WAIT = "arn:aws:states:::lambda:invoke.waitForTaskToken"

_COMMON = {"Type", "Comment", "QueryLanguage"}
_FLOW = {"Next", "End"}
_IO = {"InputPath", "OutputPath"}
_FIELDS: dict[str, set[str]] = {
    "Pass": _COMMON | _FLOW | _IO | {"Parameters", "Result", "ResultPath"},
    "Task": _COMMON | _FLOW | _IO | {
        "Resource", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch", "TimeoutSeconds",
        "TimeoutSecondsPath", "HeartbeatSeconds", "HeartbeatSecondsPath", "Credentials",
    },
    "Choice": _COMMON | _IO | {"Choices", "Default"},
    "Wait": _COMMON | _FLOW | _IO | {"Seconds", "SecondsPath", "Timestamp", "TimestampPath"},
    "Succeed": _COMMON | _IO,
    "Fail": _COMMON | {"Error", "ErrorPath", "Cause", "CausePath"},
    "Parallel": _COMMON | _FLOW | _IO | {"Branches", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch"},
    "Map": _COMMON | _FLOW | _IO | {
        "ItemsPath", "ItemSelector", "Parameters", "ItemProcessor", "Iterator", "MaxConcurrency",
        "ResultSelector", "ResultPath", "Retry", "Catch",
    },
}
_TOP_LEVEL = {"Comment", "StartAt", "States", "TimeoutSeconds", "Version", "QueryLanguage"}
_RETRIER = {"ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds", "JitterStrategy", "Comment"}
_CATCHER = {"ErrorEquals", "Next", "ResultPath", "Comment"}
_MAX_NAME_LENGTH = 80


def validate(text: str) -> dict:
    """Parse and check a definition; returns it as a dict. Raises `DefinitionInvalid` naming every problem. Pure."""
    try:
        definition = json.loads(text)
    except (TypeError, json.JSONDecodeError) as error:
        raise DefinitionInvalid([f"the definition is not valid JSON: {error}"]) from None
    problems = _machine_problems(definition, "")
    if isinstance(definition, dict):
        timeout = definition.get("TimeoutSeconds")
        if "TimeoutSeconds" in definition and not _positive_int(timeout):
            problems.append(f"TimeoutSeconds must be a positive integer, got {json.dumps(timeout)}")
        if definition.get("QueryLanguage", "JSONPath") != "JSONPath":
            problems.append("only the JSONPath query language is supported")
    if problems:
        raise DefinitionInvalid(problems)
    return definition


def _machine_problems(machine: Any, where: str) -> list[str]:
    """Problems of a state machine or of a Parallel branch / Map processor (`where` prefixes messages)."""
    prefix = f"{where} " if where else ""
    if not isinstance(machine, dict):
        return [f"{prefix}must be an object with StartAt and States".strip()]
    problems = [f"{prefix}unknown field '{key}'" for key in machine if key not in _TOP_LEVEL | {"ProcessorConfig"}]
    if "ProcessorConfig" in machine and not where:
        problems.append("unknown field 'ProcessorConfig'")
    states = machine.get("States")
    start = machine.get("StartAt")
    if not isinstance(states, dict) or not states:
        return problems + [f"{prefix}States must be a non-empty object"]
    if not isinstance(start, str):
        problems.append(f"{prefix}StartAt is missing (it must name the first state)")
    elif start not in states:
        problems.append(f"{prefix}StartAt names '{start}', which is not a state")

    for name, state in states.items():
        problems += _state_problems(name, state, states, f"{prefix}State '{name}'")
    if isinstance(start, str) and start in states:
        unreachable = set(states) - _reachable(start, states)
        problems += [
            f"{prefix}State '{name}': MISSING_TRANSITION_TARGET: State \"{name}\" is not reachable from StartAt"
            for name in sorted(unreachable)
        ]
    if not any(_is_terminal(state) for state in states.values()):
        problems.append(f"{prefix}MISSING_END_STATE: no terminal state (End: true, Succeed or Fail)".strip())
    return problems


def _is_terminal(state: Any) -> bool:
    return isinstance(state, dict) and (state.get("End") is True or state.get("Type") in ("Succeed", "Fail"))


def _reachable(start: str, states: dict) -> set[str]:
    seen = {start}
    pending = [start]
    while pending:
        state = states.get(pending.pop())
        if not isinstance(state, dict):
            continue
        for target in _transitions(state):
            if target in states and target not in seen:
                seen.add(target)
                pending.append(target)
    return seen


def _transitions(state: dict) -> list[str]:
    targets = [state.get("Next"), state.get("Default")]
    targets += [rule.get("Next") for rule in state.get("Choices", ()) if isinstance(rule, dict)]
    targets += [catcher.get("Next") for catcher in state.get("Catch", ()) if isinstance(catcher, dict)]
    return [target for target in targets if isinstance(target, str)]


def _state_problems(name: str, state: Any, states: dict, where: str) -> list[str]:
    if len(name) > _MAX_NAME_LENGTH:
        return [f"{where}: a state name may have at most {_MAX_NAME_LENGTH} characters"]
    if not isinstance(state, dict):
        return [f"{where}: a state must be an object"]
    kind = state.get("Type")
    if kind is None:
        return [f"{where}: Type is missing"]
    if kind not in _FIELDS:
        return [f"{where}: unknown Type {json.dumps(kind)}"]
    problems = [f"{where}: field '{key}' is not valid in a {kind} state" for key in state if key not in _FIELDS[kind]]
    if state.get("QueryLanguage", "JSONPath") != "JSONPath":
        problems.append(f"{where}: only the JSONPath query language is supported")
    problems += _flow_problems(kind, state, states, where)
    problems += _path_problems(state, where)
    problems += _template_problems(state, where)
    problems += _KIND_CHECKS.get(kind, lambda *_: [])(state, states, where)
    if "Retry" in state:
        problems += _retry_problems(state["Retry"], where)
    if "Catch" in state:
        problems += _catch_problems(state["Catch"], states, where)
    return problems


def _flow_problems(kind: str, state: dict, states: dict, where: str) -> list[str]:
    if kind in ("Choice", "Succeed", "Fail"):
        return []
    has_next, end = "Next" in state, state.get("End")
    if "End" in state and end is not True:
        return [f"{where}: End must be true when present, got {json.dumps(end)}"]
    if has_next and end:
        return [f"{where}: has both Next and End; a state either continues or ends"]
    if not has_next and not end:
        return [f"{where}: needs Next (a state name) or \"End\": true"]
    if has_next and state["Next"] not in states:
        return [f"{where}: MISSING_TRANSITION_TARGET: Next names {json.dumps(state['Next'])}, which is not a state here"]
    return []


def _path_problems(state: dict, where: str) -> list[str]:
    problems = []
    for field in ("InputPath", "OutputPath"):
        value = state.get(field)
        if field in state and value is not None and (problem := path_problem(value)):
            problems.append(f"{where}: {field} {json.dumps(value)} is not a valid path: {problem}")
    for field in ("ResultPath", "ItemsPath"):
        value = state.get(field)
        if field in state and not (value is None and field == "ResultPath") and not is_reference_path(value):
            problems.append(f"{where}: {field} {json.dumps(value)} must be a reference path such as $.results.step")
    for field in ("SecondsPath", "TimestampPath", "TimeoutSecondsPath", "HeartbeatSecondsPath"):
        if field in state and not is_reference_path(state[field]):
            problems.append(f"{where}: {field} {json.dumps(state[field])} must be a reference path")
    return problems


def _template_problems(state: dict, where: str) -> list[str]:
    problems = []
    for field in ("Parameters", "ItemSelector", "ResultSelector"):
        if field in state:
            problems += _template_value_problems(state[field], f"{where}: {field}")
    return problems


def _template_value_problems(template: Any, where: str) -> list[str]:
    problems = []
    if isinstance(template, dict):
        for key, value in template.items():
            if not key.endswith(".$"):
                problems += _template_value_problems(value, f"{where}.{key}")
            elif not isinstance(value, str):
                problems.append(f"{where}: the value of '{key}' must be a path or an intrinsic function, got {json.dumps(value)}")
            elif is_intrinsic(value):
                if problem := expression_problem(value):
                    problems.append(f"{where}: '{key}' is not a valid intrinsic function call: {problem}")
            elif problem := path_problem(value):
                problems.append(f"{where}: '{key}' is not a valid path: {problem}")
    elif isinstance(template, list):
        for index, item in enumerate(template):
            problems += _template_value_problems(item, f"{where}[{index}]")
    return problems


def _task_problems(state: dict, states: dict, where: str) -> list[str]:
    problems = []
    resource = state.get("Resource")
    if not isinstance(resource, str):
        problems.append(f"{where}: Resource is missing (a Lambda function ARN or {LAMBDA_INVOKE})")
    elif resource in (LAMBDA_INVOKE, LAMBDA_INVOKE_WAIT):
        parameters = state.get("Parameters")
        if not isinstance(parameters, dict) or not ({"FunctionName", "FunctionName.$"} & set(parameters)):
            problems.append(f"{where}: {resource} needs Parameters.FunctionName")
    elif not (resource.startswith("arn:aws:lambda:") and ":function:" in resource):
        problems.append(f"{where}: Resource {json.dumps(resource)} is not supported here: only Lambda functions and {LAMBDA_INVOKE}[.waitForTaskToken]")
    for field in ("TimeoutSeconds", "HeartbeatSeconds"):
        if field in state and not _positive_int(state[field]):
            problems.append(f"{where}: {field} must be a positive integer, got {json.dumps(state[field])}")
        if field in state and f"{field}Path" in state:
            problems.append(f"{where}: {field} and {field}Path cannot both be set")
    timeout, heartbeat = state.get("TimeoutSeconds"), state.get("HeartbeatSeconds")
    if _positive_int(timeout) and _positive_int(heartbeat) and heartbeat >= timeout:
        problems.append(f"{where}: HeartbeatSeconds must be smaller than TimeoutSeconds")
    return problems


def _wait_problems(state: dict, states: dict, where: str) -> list[str]:
    given = [field for field in ("Seconds", "SecondsPath", "Timestamp", "TimestampPath") if field in state]
    if len(given) != 1:
        return [f"{where}: a Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath; found {given or 'none'}"]
    if "Seconds" in state and not (_int(state["Seconds"]) and state["Seconds"] >= 0):
        return [f"{where}: Seconds must be a non-negative integer, got {json.dumps(state['Seconds'])}"]
    if "Timestamp" in state:
        if not isinstance(state["Timestamp"], str) or parse_timestamp(state["Timestamp"]) is None:
            return [f"{where}: Timestamp must be an RFC 3339 timestamp such as 2016-03-14T01:59:00Z"]
    return []


def _choice_problems(state: dict, states: dict, where: str) -> list[str]:
    choices = state.get("Choices")
    if not isinstance(choices, list) or not choices:
        return [f"{where}: Choices must be a non-empty array of choice rules"]
    problems = []
    for index, rule in enumerate(choices):
        problems += rule_problems(rule, f"{where} Choices[{index}]")
        target = rule.get("Next") if isinstance(rule, dict) else None
        if isinstance(target, str) and target not in states:
            problems.append(f"{where} Choices[{index}]: MISSING_TRANSITION_TARGET: Next names '{target}', which is not a state here")
    default = state.get("Default")
    if "Default" in state and default not in states:
        problems.append(f"{where}: MISSING_TRANSITION_TARGET: Default names {json.dumps(default)}, which is not a state here")
    return problems


def _fail_problems(state: dict, states: dict, where: str) -> list[str]:
    problems = []
    for field in ("Error", "Cause"):
        if field in state and f"{field}Path" in state:
            problems.append(f"{where}: {field} and {field}Path cannot both be set")
        if field in state and not isinstance(state[field], str):
            problems.append(f"{where}: {field} must be a string")
        path = state.get(f"{field}Path")
        if path is not None and not (is_reference_path(path) or (isinstance(path, str) and path.startswith("$$")) or is_intrinsic(path)):
            problems.append(f"{where}: {field}Path {json.dumps(path)} must be a reference path or an intrinsic function")
    return problems


def _parallel_problems(state: dict, states: dict, where: str) -> list[str]:
    branches = state.get("Branches")
    if not isinstance(branches, list) or not branches:
        return [f"{where}: Branches must be a non-empty array of state machines"]
    problems = []
    for index, branch in enumerate(branches):
        problems += _machine_problems(branch, f"{where} Branches[{index}]")
    return problems


def _map_problems(state: dict, states: dict, where: str) -> list[str]:
    problems = []
    if ("ItemProcessor" in state) == ("Iterator" in state):
        return [f"{where}: a Map state needs exactly one of ItemProcessor and Iterator"]
    if "ItemSelector" in state and "Parameters" in state:
        problems.append(f"{where}: ItemSelector and Parameters cannot both be set")
    processor = state.get("ItemProcessor", state.get("Iterator"))
    field = "ItemProcessor" if "ItemProcessor" in state else "Iterator"
    if isinstance(processor, dict):
        config = processor.get("ProcessorConfig", {})
        if not isinstance(config, dict) or config.get("Mode", "INLINE") != "INLINE":
            problems.append(f"{where}: {field}.ProcessorConfig: only INLINE mode is supported")
    problems += _machine_problems(processor, f"{where} {field}")
    concurrency = state.get("MaxConcurrency")
    if "MaxConcurrency" in state and not (_int(concurrency) and concurrency >= 0):
        problems.append(f"{where}: MaxConcurrency must be a non-negative integer, got {json.dumps(concurrency)}")
    return problems


def _retry_problems(retriers: Any, where: str) -> list[str]:
    if not isinstance(retriers, list):
        return [f"{where}: Retry must be an array of retriers"]
    problems = []
    for index, retrier in enumerate(retriers):
        at = f"{where} Retry[{index}]"
        if not isinstance(retrier, dict):
            problems.append(f"{at}: a retrier must be an object")
            continue
        problems += [f"{at}: unknown field '{key}'" for key in retrier if key not in _RETRIER]
        problems += _error_equals_problems(retrier.get("ErrorEquals"), at, last=index == len(retriers) - 1)
        interval, attempts = retrier.get("IntervalSeconds", 1), retrier.get("MaxAttempts", 3)
        backoff, max_delay = retrier.get("BackoffRate", 2.0), retrier.get("MaxDelaySeconds")
        if not _positive_int(interval):
            problems.append(f"{at}: IntervalSeconds must be a positive integer, got {json.dumps(interval)}")
        if not (_int(attempts) and attempts >= 0):
            problems.append(f"{at}: MaxAttempts must be a non-negative integer, got {json.dumps(attempts)}")
        if not (isinstance(backoff, (int, float)) and not isinstance(backoff, bool) and backoff >= 1.0):
            problems.append(f"{at}: BackoffRate must be a number of at least 1.0, got {json.dumps(backoff)}")
        if "MaxDelaySeconds" in retrier and not _positive_int(max_delay):
            problems.append(f"{at}: MaxDelaySeconds must be a positive integer, got {json.dumps(max_delay)}")
        if retrier.get("JitterStrategy", "NONE") not in ("FULL", "NONE"):
            problems.append(f"{at}: JitterStrategy must be FULL or NONE, got {json.dumps(retrier['JitterStrategy'])}")
    return problems


def _catch_problems(catchers: Any, states: dict, where: str) -> list[str]:
    if not isinstance(catchers, list):
        return [f"{where}: Catch must be an array of catchers"]
    problems = []
    for index, catcher in enumerate(catchers):
        at = f"{where} Catch[{index}]"
        if not isinstance(catcher, dict):
            problems.append(f"{at}: a catcher must be an object")
            continue
        problems += [f"{at}: unknown field '{key}'" for key in catcher if key not in _CATCHER]
        problems += _error_equals_problems(catcher.get("ErrorEquals"), at, last=index == len(catchers) - 1)
        target = catcher.get("Next")
        if not isinstance(target, str):
            problems.append(f"{at}: Next is missing (the state to go to)")
        elif target not in states:
            problems.append(f"{at}: MISSING_TRANSITION_TARGET: Next names '{target}', which is not a state here")
        result_path = catcher.get("ResultPath", "$")
        if result_path is not None and not is_reference_path(result_path):
            problems.append(f"{at}: ResultPath {json.dumps(result_path)} must be a reference path")
    return problems


def _error_equals_problems(names: Any, where: str, last: bool) -> list[str]:
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        return [f"{where}: ErrorEquals must be a non-empty array of error names"]
    if "States.ALL" in names and (len(names) > 1 or not last):
        return [f"{where}: States.ALL must appear alone in ErrorEquals and only in the last retrier or catcher"]
    return []


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value: Any) -> bool:
    return _int(value) and value > 0


_KIND_CHECKS = {
    "Task": _task_problems,
    "Wait": _wait_problems,
    "Choice": _choice_problems,
    "Fail": _fail_problems,
    "Parallel": _parallel_problems,
    "Map": _map_problems,
}
