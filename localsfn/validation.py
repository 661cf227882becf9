"""Definition validation: what CreateStateMachine rejects, with the state and the problem named.

`validate(text)` parses an Amazon States Language definition (JSONPath
or JSONata query language, with workflow variables) and raises
`DefinitionInvalid` listing every problem found, each message starting
with where it is (`State 'CreateSlot'`, `State 'Fan' Branches[1] State 'X'`).
Besides what AWS rejects, it rejects what this engine cannot run the same
way: service integrations other than Lambda, distributed Map.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from typing import Any

from localsfn import item_reader, jsonata
from localsfn.choice import rule_problems
from localsfn.errors import DefinitionInvalid
from localsfn.intrinsics import expression_problem, is_intrinsic
from localsfn.jsonpath import is_reference_path, path_problem
from localsfn.map_state import label_problem
from localsfn.result_writer import OUTPUT_TYPES, PUT_OBJECT, TRANSFORMATIONS
from localsfn.timestamps import parse_timestamp
from localsfn.variables import name_problem, variable_problems

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
LAMBDA_INVOKE_WAIT = "arn:aws:states:::lambda:invoke.waitForTaskToken"

_COMMON = {"Type", "Comment", "QueryLanguage"}
_FLOW = {"Next", "End"}
_IO = {"InputPath", "OutputPath"}
_VARS = {"Assign", "Output"}
# Map fields of Distributed mode only.
_DISTRIBUTED_ONLY = ("Label", "ItemBatcher", "ToleratedFailureCount", "ToleratedFailureCountPath", "ToleratedFailurePercentage", "ToleratedFailurePercentagePath")
_FIELDS: dict[str, set[str]] = {
    "Pass": _COMMON | _FLOW | _IO | _VARS | {"Parameters", "Result", "ResultPath"},
    "Task": _COMMON | _FLOW | _IO | _VARS | {
        "Resource", "Parameters", "Arguments", "ResultSelector", "ResultPath", "Retry", "Catch", "TimeoutSeconds",
        "TimeoutSecondsPath", "HeartbeatSeconds", "HeartbeatSecondsPath", "Credentials",
    },
    "Choice": _COMMON | _IO | _VARS | {"Choices", "Default"},
    "Wait": _COMMON | _FLOW | _IO | _VARS | {"Seconds", "SecondsPath", "Timestamp", "TimestampPath"},
    "Succeed": _COMMON | _IO | {"Output"},
    "Fail": _COMMON | {"Error", "ErrorPath", "Cause", "CausePath"},
    "Parallel": _COMMON | _FLOW | _IO | _VARS | {"Branches", "Parameters", "Arguments", "ResultSelector", "ResultPath", "Retry", "Catch"},
    "Map": _COMMON | _FLOW | _IO | _VARS | {
        "ItemsPath", "Items", "ItemSelector", "Parameters", "ItemProcessor", "Iterator", "MaxConcurrency", "MaxConcurrencyPath",
        "ResultSelector", "ResultPath", "Retry", "Catch", *_DISTRIBUTED_ONLY, "ItemReader", "ResultWriter",
    },
}
_TOP_LEVEL = {"Comment", "StartAt", "States", "TimeoutSeconds", "Version", "QueryLanguage"}
_RETRIER = {"ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds", "JitterStrategy", "Comment"}
_CATCHER = {"ErrorEquals", "Next", "ResultPath", "Comment", "Assign", "Output"}
# Fields of one query language only: AWS refuses them in a state of the other.
_JSONPATH_ONLY = ("InputPath", "OutputPath", "Parameters", "ResultSelector", "ResultPath", "ItemsPath", "SecondsPath", "TimestampPath",
                  "ErrorPath", "CausePath", "TimeoutSecondsPath", "HeartbeatSecondsPath", "MaxConcurrencyPath")
_JSONATA_ONLY = ("Arguments", "Output", "Items")
_ASSIGNABLE = {"Pass", "Task", "Choice", "Wait", "Parallel", "Map"}
_LANGUAGES = ("JSONPath", "JSONata")
_language: ContextVar[str] = ContextVar("query_language", default="JSONPath")  # the enclosing one, while validating
_MAX_NAME_LENGTH = 80


def validate(text: str) -> dict:
    """Parse and check a definition; returns it as a dict. Raises `DefinitionInvalid` naming every problem. Pure."""
    try:
        definition = json.loads(text)
    except (TypeError, json.JSONDecodeError) as error:
        raise DefinitionInvalid([f"the definition is not valid JSON: {error}"]) from None
    language = definition.get("QueryLanguage", "JSONPath") if isinstance(definition, dict) else "JSONPath"
    if language not in _LANGUAGES:
        raise DefinitionInvalid([f"SCHEMA_VALIDATION_FAILED: QueryLanguage must be JSONPath or JSONata, got {json.dumps(language)}"])
    token = _language.set(language)
    try:
        problems = _machine_problems(definition, "")
    finally:
        _language.reset(token)
    if isinstance(definition, dict):
        timeout = definition.get("TimeoutSeconds")
        if "TimeoutSeconds" in definition and not _positive_int(timeout):
            problems.append(f"TimeoutSeconds must be a positive integer, got {json.dumps(timeout)}")
        if not problems:
            problems += variable_problems(definition)
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
    enclosing = _language.get()
    language = state.get("QueryLanguage", enclosing)
    if language not in _LANGUAGES:
        return problems + [f"{where}: QueryLanguage must be JSONPath or JSONata, got {json.dumps(language)}"]
    if enclosing == "JSONata" and language == "JSONPath":
        problems.append(f"{where}: SCHEMA_VALIDATION_FAILED: a state cannot use JSONPath when the state machine's QueryLanguage is JSONata")
    token = _language.set(language)
    try:
        problems += _language_problems(kind, state, language, where)
        problems += _flow_problems(kind, state, states, where)
        if language == "JSONPath":
            problems += _path_problems(state, where)
            problems += _template_problems(state, where)
        problems += _KIND_CHECKS.get(kind, lambda *_: [])(state, states, where)
    finally:
        _language.reset(token)
    if "Retry" in state:
        problems += _retry_problems(state["Retry"], where)
    if "Catch" in state:
        problems += _catch_problems(state["Catch"], states, where)
    return problems


def _language_problems(kind: str, state: dict, language: str, where: str) -> list[str]:
    """Fields of the other query language, Assign where it is not allowed, JSONata that does not compile."""
    problems = []
    refused = _JSONPATH_ONLY if language == "JSONata" else _JSONATA_ONLY
    problems += [f"{where}: SCHEMA_VALIDATION_FAILED: the field '{name}' is not supported in {language} states" for name in refused if name in state]
    if "Assign" in state:
        if kind not in _ASSIGNABLE:
            problems.append(f"{where}: the field 'Assign' is not valid in a {kind} state")
        problems += _assign_problems(state["Assign"], language, f"{where}: Assign")
    if language == "JSONata":
        for name in ("Arguments", "Output", "Items", "ItemSelector", "Error", "Cause", "Seconds", "Timestamp", "MaxConcurrency", "TimeoutSeconds", "HeartbeatSeconds"):
            if name in state:
                problems += jsonata.template_problems(state[name], f"{where}: {name}")
        if kind == "Map" and "Items" in state and not (isinstance(state["Items"], list) or jsonata.is_expression(state["Items"])):
            problems.append(f"{where}: Items must be a JSON array or a JSONata expression")
    return problems


def _assign_problems(assign: Any, language: str, where: str) -> list[str]:
    if not isinstance(assign, dict):
        return [f"{where} must be an object of variable names and values"]
    problems = []
    for key in assign:
        name = key[:-2] if language == "JSONPath" and key.endswith(".$") else key
        if problem := name_problem(name):
            problems.append(f"{where}: {problem}")
    if language == "JSONPath":
        problems += _template_value_problems(assign, where)
    else:
        problems += jsonata.template_problems(assign, where)
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
        field = "Arguments" if _language.get() == "JSONata" else "Parameters"
        parameters = state.get(field)
        if not isinstance(parameters, dict) or not ({"FunctionName", "FunctionName.$"} & set(parameters)):
            problems.append(f"{where}: {resource} needs {field}.FunctionName")
    elif not (resource.startswith("arn:aws:lambda:") and ":function:" in resource):
        problems.append(f"{where}: Resource {json.dumps(resource)} is not supported here: only Lambda functions and {LAMBDA_INVOKE}[.waitForTaskToken]")
    for field in ("TimeoutSeconds", "HeartbeatSeconds"):
        if field in state and not _positive_int(state[field]) and not (_language.get() == "JSONata" and jsonata.is_expression(state[field])):
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
    if _language.get() == "JSONata" and any(jsonata.is_expression(state.get(name)) for name in ("Seconds", "Timestamp")):
        return []
    if "Seconds" in state and not (_int(state["Seconds"]) and 0 <= state["Seconds"] <= 99999999):
        return [f"{where}: Seconds must be a non-negative integer up to 99999999, got {json.dumps(state['Seconds'])}"]
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
        if _language.get() == "JSONata":
            problems += _jsonata_rule_problems(rule, f"{where} Choices[{index}]")
        else:
            problems += rule_problems(rule, f"{where} Choices[{index}]")
        target = rule.get("Next") if isinstance(rule, dict) else None
        if isinstance(target, str) and target not in states:
            problems.append(f"{where} Choices[{index}]: MISSING_TRANSITION_TARGET: Next names '{target}', which is not a state here")
    default = state.get("Default")
    if "Default" in state and default not in states:
        problems.append(f"{where}: MISSING_TRANSITION_TARGET: Default names {json.dumps(default)}, which is not a state here")
    return problems


def _jsonata_rule_problems(rule: Any, where: str) -> list[str]:
    if not isinstance(rule, dict):
        return [f"{where}: a choice rule must be an object"]
    problems = [f"{where}: SCHEMA_VALIDATION_FAILED: the field '{key}' is not supported in JSONata choice rules (use Condition)" for key in rule if key not in ("Condition", "Next", "Comment", "Assign", "Output")]
    if "Condition" not in rule:
        problems.append(f"{where}: a JSONata choice rule needs a Condition")
    elif not (isinstance(rule["Condition"], bool) or jsonata.is_expression(rule["Condition"])):
        problems.append(f"{where}: Condition must be a JSONata expression {{% ... %}} or a boolean")
    else:
        problems += jsonata.template_problems(rule["Condition"], f"{where}: Condition")
    if not isinstance(rule.get("Next"), str):
        problems.append(f"{where}: a top-level choice rule needs a Next (a state name)")
    if "Assign" in rule:
        problems += _assign_problems(rule["Assign"], "JSONata", f"{where}: Assign")
    if "Output" in rule:
        problems += jsonata.template_problems(rule["Output"], f"{where}: Output")
    return problems


def _fail_problems(state: dict, states: dict, where: str) -> list[str]:
    problems = []
    for field in ("Error", "Cause"):
        if field in state and f"{field}Path" in state:
            problems.append(f"{where}: {field} and {field}Path cannot both be set")
        if field in state and not isinstance(state[field], str):
            problems.append(f"{where}: {field} must be a string")
            continue
        path = state.get(f"{field}Path")
        if _language.get() == "JSONata":
            continue
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
    distributed = False
    if isinstance(processor, dict):
        config = processor.get("ProcessorConfig", {})
        mode = config.get("Mode", "INLINE") if isinstance(config, dict) else None
        if mode not in ("INLINE", "DISTRIBUTED"):
            problems.append(f"{where}: {field}.ProcessorConfig: Mode must be INLINE or DISTRIBUTED, got {json.dumps(mode)}")
        distributed = mode == "DISTRIBUTED"
        if distributed and config.get("ExecutionType") not in ("STANDARD", "EXPRESS"):
            problems.append(f"{where}: {field}.ProcessorConfig: a DISTRIBUTED Map needs ExecutionType STANDARD or EXPRESS")
        if distributed and field == "Iterator":
            problems.append(f"{where}: a DISTRIBUTED Map takes ItemProcessor, not Iterator")
    problems += [f"{where}: {name} is only valid in a DISTRIBUTED Map" for name in _DISTRIBUTED_ONLY if name in state and not distributed]
    if "ResultWriter" in state:
        writer = state["ResultWriter"]
        if not distributed:
            problems.append(f"{where}: ResultWriter is only valid in a DISTRIBUTED Map")
        elif not isinstance(writer, dict) or not ("Resource" in writer or "WriterConfig" in writer):
            problems.append(f"{where}: ResultWriter needs a Resource and its Parameters, a WriterConfig, or both")
        elif "Resource" in writer and writer["Resource"] != PUT_OBJECT:
            problems.append(f"{where}: ResultWriter.Resource must be {PUT_OBJECT}")
        elif "WriterConfig" in writer:
            problems += _writer_config_problems(writer["WriterConfig"], where)
    if "ItemReader" in state:
        problems += _item_reader_problems(state["ItemReader"], distributed, where)
    if "Label" in state and (problem := label_problem(state["Label"])):
        problems.append(f"{where}: {problem}")
    for name in ("ToleratedFailureCount", "ToleratedFailurePercentage"):
        if name in state and f"{name}Path" in state:
            problems.append(f"{where}: {name} and {name}Path cannot both be set")
        if f"{name}Path" in state and not is_reference_path(state[f"{name}Path"]):
            problems.append(f"{where}: {name}Path {json.dumps(state[f'{name}Path'])} must be a reference path")
    count, share = state.get("ToleratedFailureCount"), state.get("ToleratedFailurePercentage")
    if "ToleratedFailureCount" in state and not jsonata.is_expression(count) and not (_int(count) and count >= 0):
        problems.append(f"{where}: ToleratedFailureCount must be a non-negative integer, got {json.dumps(count)}")
    if "ToleratedFailurePercentage" in state and not jsonata.is_expression(share) and not (
        isinstance(share, (int, float)) and not isinstance(share, bool) and 0 <= share <= 100
    ):
        problems.append(f"{where}: ToleratedFailurePercentage must be a number from 0 to 100, got {json.dumps(share)}")
    batcher = state.get("ItemBatcher")
    if "ItemBatcher" in state:
        if not isinstance(batcher, dict) or not ({"MaxItemsPerBatch", "MaxItemsPerBatchPath", "MaxInputBytesPerBatch", "MaxInputBytesPerBatchPath"} & set(batcher)):
            problems.append(f"{where}: ItemBatcher needs MaxItemsPerBatch(Path) or MaxInputBytesPerBatch(Path)")
        else:
            known = {"MaxItemsPerBatch", "MaxItemsPerBatchPath", "MaxInputBytesPerBatch", "MaxInputBytesPerBatchPath", "BatchInput"}
            problems += [f"{where}: ItemBatcher: unknown field '{key}'" for key in batcher if key not in known]
    problems += _machine_problems(processor, f"{where} {field}")
    concurrency = state.get("MaxConcurrency")
    if "MaxConcurrency" in state and "MaxConcurrencyPath" in state:
        problems.append(f"{where}: MaxConcurrency and MaxConcurrencyPath cannot both be set")
    if "MaxConcurrencyPath" in state and not is_reference_path(state["MaxConcurrencyPath"]):
        problems.append(f"{where}: MaxConcurrencyPath {json.dumps(state['MaxConcurrencyPath'])} must be a reference path")
    if _language.get() == "JSONata" and jsonata.is_expression(concurrency):
        pass
    elif "MaxConcurrency" in state and not (_int(concurrency) and concurrency >= 0):
        problems.append(f"{where}: MaxConcurrency must be a non-negative integer, got {json.dumps(concurrency)}")
    return problems


def _writer_config_problems(config: Any, where: str) -> list[str]:
    if not isinstance(config, dict):
        return [f"{where}: ResultWriter.WriterConfig must be an object"]
    problems = [f"{where}: ResultWriter.WriterConfig has an unknown field {name}" for name in config if name not in ("Transformation", "OutputType")]
    if config.get("Transformation", "NONE") not in TRANSFORMATIONS:
        problems.append(f"{where}: ResultWriter.WriterConfig.Transformation must be one of {', '.join(TRANSFORMATIONS)}")
    if config.get("OutputType", "JSON") not in OUTPUT_TYPES:
        problems.append(f"{where}: ResultWriter.WriterConfig.OutputType must be one of {', '.join(OUTPUT_TYPES)}")
    return problems


def _item_reader_problems(reader: Any, distributed: bool, where: str) -> list[str]:
    if not distributed:
        return [f"{where}: ItemReader is only valid in a DISTRIBUTED Map"]
    if not isinstance(reader, dict):
        return [f"{where}: ItemReader must be an object with a Resource"]
    problems = []
    if reader.get("Resource") not in item_reader.RESOURCES:
        problems.append(f"{where}: ItemReader.Resource must be one of {', '.join(item_reader.RESOURCES)}, got {json.dumps(reader.get('Resource'))}")
    config = reader.get("ReaderConfig", {})
    if not isinstance(config, dict):
        problems.append(f"{where}: ItemReader.ReaderConfig must be an object")
    elif reader.get("Resource") == item_reader.GET_OBJECT and config.get("InputType", "JSON") not in item_reader.INPUT_TYPES:
        problems.append(f"{where}: ItemReader.ReaderConfig.InputType must be one of {', '.join(item_reader.INPUT_TYPES)}")
    elif config.get("CSVHeaderLocation") == "GIVEN" and not isinstance(config.get("CSVHeaders"), list):
        problems.append(f"{where}: ItemReader.ReaderConfig.CSVHeaders must list the headers when CSVHeaderLocation is GIVEN")
    if "Parameters" in reader and _language.get() == "JSONPath":
        problems += _template_value_problems(reader["Parameters"], f"{where}: ItemReader.Parameters")
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
        language = _language.get()
        refused = ("ResultPath",) if language == "JSONata" else ("Output",)
        problems += [f"{at}: SCHEMA_VALIDATION_FAILED: the field '{name}' is not supported in {language} states" for name in refused if name in catcher]
        result_path = catcher.get("ResultPath", "$")
        if language == "JSONPath" and result_path is not None and not is_reference_path(result_path):
            problems.append(f"{at}: ResultPath {json.dumps(result_path)} must be a reference path")
        if "Assign" in catcher:
            problems += _assign_problems(catcher["Assign"], language, f"{at}: Assign")
        if language == "JSONata" and "Output" in catcher:
            problems += jsonata.template_problems(catcher["Output"], f"{at}: Output")
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
