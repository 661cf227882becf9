"""TestState: run one state on an input, without a state machine or an execution, and say what it did.

The state's JSONPath steps run in order (InputPath, Parameters, the result,
ResultSelector, ResultPath, OutputPath) and, at inspection level DEBUG or
TRACE, each intermediate document is answered in `inspectionData` as AWS
names them. A Task calls the engine's local Lambda handler, unless `mock`
gives its result or its error. A failure is matched against the state's
Retry (`stateConfiguration.retrierRetryCount` says how many retries have
happened: a retrier with attempts left answers RETRIABLE with the backoff)
and then its Catch (CAUGHT_ERROR with the catcher's Next); otherwise FAILED.

JSONata states (the state's or the machine's `QueryLanguage`) run
Arguments, the result, Output and Assign with `$states` and the request's
`variables`; `inspectionData.afterArguments` and `variables` show them.

Map and Parallel states are tested with a mock only, as on AWS: the
mock's result stands for what the branches or iterations returned (or its
errorOutput for their failure, `stateConfiguration.errorCausedByState` naming
the inner state it came from). A Map's input processing runs and is shown
(afterItemsPath, afterItemSelector, afterItemBatcher, and its
toleratedFailureCount, toleratedFailurePercentage and maxConcurrency);
`mapItemReaderData` stands for what its ItemReader reads, and
`mapIterationFailureCount` failed iterations fail it with
States.ExceedToleratedFailureThreshold once beyond its threshold.

Not covered: HTTP Task request/response tracing.
"""

from __future__ import annotations

import json
import secrets
import uuid
from typing import TYPE_CHECKING, Any

from localsfn import item_reader, jsonata, map_state
from localsfn.choice import choose
from localsfn.errors import DefinitionInvalid, ServiceError, StatesError
from localsfn.jsonpath import input_path, output_path, read_path, write_result
from localsfn.lambdas import ACCOUNT, REGION, function_arn, invoke, not_found_cause
from localsfn.payload import render
from localsfn.timestamps import iso_timestamp
from localsfn.validation import LAMBDA_INVOKE, LAMBDA_INVOKE_WAIT, validate
from localsfn.variables import Context

if TYPE_CHECKING:
    from localsfn.engine import Engine

JSON = Any
_SUPPORTED = ("Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Map", "Parallel")
_MOCKED_ONLY = ("Map", "Parallel")
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def run_test_state(engine: Engine, request: dict) -> dict:
    """The TestState answer for a request in the API's shape. Calls a Task's handler synchronously."""
    name, state, language = _state(request)
    input_text = request.get("input") or "{}"
    state_input = _json(input_text, "InvalidExecutionInput", "input")
    level = request.get("inspectionLevel") or "INFO"
    if level not in ("INFO", "DEBUG", "TRACE"):
        raise ServiceError("ValidationException", f"inspectionLevel must be INFO, DEBUG or TRACE, got {level!r}")
    variables = _json(request["variables"], "ValidationException", "variables") if request.get("variables") else {}
    if not isinstance(variables, dict):
        raise ServiceError("ValidationException", "variables must be a JSON object of variable names and values")
    context = Context.of(_context(request, name, state_input), lambda: variables)
    run = _Run(engine, request, name, state, context)
    run.jsonata, run.variables = language == "JSONata", variables
    inspection: dict[str, str] = {"input": input_text}
    try:
        output, next_state = run.evaluate_jsonata(state_input, inspection) if run.jsonata else run.evaluate(state_input, inspection)
        answer: dict = {"output": _dumps(output), "status": "SUCCEEDED"}
        if next_state:
            answer["nextState"] = next_state
    except StatesError as failure:
        answer = run.failed(state_input, failure, inspection)
    if level != "INFO":
        answer["inspectionData"] = inspection
    return answer


class _Run:
    def __init__(self, engine: Engine, request: dict, name: str, state: dict, context: Context) -> None:
        self.engine, self.request, self.name, self.state, self.context = engine, request, name, state, context
        self.jsonata, self.variables = False, {}
        self.iterations, self.tolerated = 0, (None, None)  # a Map's: how many iterations, its tolerated failures

    def _bindings(self, state_input: JSON, **more: JSON) -> dict:
        states = {"input": state_input, "context": dict(self.context), **more}
        return {**self.variables, "states": states}

    def _assigned(self, source: dict, bindings: dict | None, data: JSON, inspection: dict) -> None:
        """Assign's new values over the given variables, shown as inspectionData.variables."""
        if "Assign" not in source:
            return
        if bindings is not None:
            assigned = jsonata.render(source["Assign"], bindings, "Assign")
        else:
            assigned = render(source["Assign"], data, self.context)
        inspection["variables"] = _dumps({**self.variables, **assigned})

    def evaluate_jsonata(self, data: JSON, inspection: dict) -> tuple[JSON, str | None]:
        state, kind = self.state, self.state["Type"]
        bindings = self._bindings(data)
        if kind == "Fail":
            error, cause = (jsonata.render(state[key], bindings, key) if key in state else "" for key in ("Error", "Cause"))
            raise StatesError(error, cause)
        leaving, next_state, result = state, state.get("Next"), None
        if kind == "Choice":
            for index, rule in enumerate(state["Choices"]):
                if jsonata.render(rule["Condition"], bindings, f"Choices[{index}].Condition") is True:
                    leaving, next_state = (rule if "Output" in rule or "Assign" in rule else state), rule["Next"]
                    break
            else:
                if "Default" not in state:
                    raise StatesError("States.NoChoiceMatched", "No choice rule matched the state input and the Choice state has no Default")
                next_state = state["Default"]
        elif kind in ("Task", "Parallel"):
            arguments = jsonata.render(state["Arguments"], bindings, "Arguments") if "Arguments" in state else data
            inspection["afterArguments"] = _dumps(arguments)
            result = self._task_result(arguments) if kind == "Task" else self._mocked_result()
            inspection["result"] = _dumps(result)
            bindings = self._bindings(data, result=result)
        elif kind == "Map":
            items = self._reader_items() if "ItemReader" in state else (jsonata.render(state["Items"], bindings, "Items") if "Items" in state else data)
            self._map_inputs(items, data, bindings, inspection)
            result = self._mocked_result()
            inspection["result"] = _dumps(result)
            bindings = self._bindings(data, result=result)
        output = jsonata.render(leaving["Output"], bindings, "Output") if "Output" in leaving else (result if kind in ("Task", "Parallel", "Map") else data)
        self._assigned(leaving, bindings, data, inspection)
        return output, next_state

    def evaluate(self, data: JSON, inspection: dict) -> tuple[JSON, str | None]:
        state, kind = self.state, self.state["Type"]
        if kind == "Fail":
            raise StatesError(state.get("Error", ""), state.get("Cause", ""))
        effective = input_path(state, data, self.context)
        inspection["afterInputPath"] = _dumps(effective)
        if kind == "Choice":
            target = choose(state, effective, self.context)
            rule = next((rule for rule in state["Choices"] if rule.get("Next") == target and "Assign" in rule), state)
            self._assigned(rule, None, effective, inspection)
            return output_path(state, effective, self.context), target
        if kind in ("Wait", "Succeed"):
            # TestState does not wait: it says where the execution would go.
            self._assigned(state, None, effective, inspection)
            return output_path(state, effective, self.context), state.get("Next")
        if kind == "Map":
            items = self._reader_items() if "ItemReader" in state else read_path(state.get("ItemsPath", "$"), effective, self.context)
            inspection["afterItemsPath"] = _dumps(items)
            self._map_inputs(items, effective, None, inspection)
            result = self._mocked_result()
        else:
            if "Parameters" in state:
                effective = render(state["Parameters"], effective, self.context)
            inspection["afterParameters"] = _dumps(effective)
            if kind == "Pass":
                result = state.get("Result", effective)
            else:
                result = self._mocked_result() if kind == "Parallel" else self._task_result(effective)
        inspection["result"] = _dumps(result)
        self._assigned(state, None, result, inspection)
        if "ResultSelector" in state:
            result = render(state["ResultSelector"], result, self.context)
            inspection["afterResultSelector"] = _dumps(result)
        combined = write_result(state.get("ResultPath", "$"), data, result)
        inspection["afterResultPath"] = _dumps(combined)
        return output_path(state, combined, self.context), state.get("Next")

    def _mocked_result(self) -> JSON:
        """What a Map or Parallel state's children returned, as the mock says (or their failure)."""
        mock = self.request.get("mock") or {}
        if mock.get("errorOutput") is not None:
            raise StatesError(mock["errorOutput"].get("error", ""), mock["errorOutput"].get("cause", ""))
        failures = (self.request.get("stateConfiguration") or {}).get("mapIterationFailureCount")
        if self.state["Type"] == "Map" and failures:
            count, percentage = self.tolerated
            if map_state.exceeds_threshold(failures, self.iterations, count, percentage):
                raise StatesError(map_state.THRESHOLD_ERROR, map_state.THRESHOLD_CAUSE)
        return _json(mock["result"], "ValidationException", "mock.result")

    def _reader_items(self) -> list:
        data = (self.request.get("stateConfiguration") or {}).get("mapItemReaderData")
        if data is None:
            raise ServiceError("ValidationException", "TestState of a Map with an ItemReader needs stateConfiguration.mapItemReaderData")
        reader = self.state["ItemReader"]
        try:
            return item_reader.items_from_text(data, reader.get("ReaderConfig") or {})
        except (ValueError, item_reader.ItemReaderFailed) as error:
            raise StatesError(item_reader.ERROR, f"The ItemReader of state '{self.name}' failed: {error}") from None

    def _map_inputs(self, items: JSON, effective: JSON, bindings: dict | None, inspection: dict) -> None:
        """The inputs a Map's iterations would get (ItemSelector, ItemBatcher) and its settings, into the inspection data."""
        state = self.state
        if not isinstance(items, list):
            raise StatesError("States.Runtime", f"The ItemsPath of state '{self.name}' does not reference an array: {_dumps(items)[:200]}")
        selector = state.get("ItemSelector", state.get("Parameters"))
        if selector is not None:
            selected = []
            for index, item in enumerate(items):
                item_context = self.context.extended(Map={"Item": {"Index": index, "Value": item}})
                if bindings is not None:
                    selected.append(jsonata.render(selector, {**bindings, "states": {**bindings["states"], "context": dict(item_context)}}, "ItemSelector"))
                else:
                    selected.append(render(selector, effective, item_context))
            items = selected
            inspection["afterItemSelector"] = _dumps(items)
        self.iterations = len(items)
        if "ItemBatcher" in state:
            batcher = state["ItemBatcher"]
            batch_input = batcher.get("BatchInput")
            if batch_input is not None:
                batch_input = jsonata.render(batch_input, bindings, "BatchInput") if bindings is not None else render(batch_input, effective, self.context)
            batches = map_state.batches(items, self._setting(batcher, "MaxItemsPerBatch", effective, bindings), self._setting(batcher, "MaxInputBytesPerBatch", effective, bindings), batch_input)
            inspection["afterItemBatcher"] = _dumps(batches)
        self.tolerated = (self._setting(state, "ToleratedFailureCount", effective, bindings), self._setting(state, "ToleratedFailurePercentage", effective, bindings))
        if map_state.is_distributed(state):
            inspection["toleratedFailureCount"] = self.tolerated[0] or 0
            inspection["toleratedFailurePercentage"] = float(self.tolerated[1] or 0)
        inspection["maxConcurrency"] = self._setting(state, "MaxConcurrency", effective, bindings) or 0

    def _setting(self, holder: dict, name: str, effective: JSON, bindings: dict | None) -> JSON:
        if name in holder:
            value = holder[name]
            return jsonata.render(value, bindings, name) if bindings is not None else value
        if f"{name}Path" in holder:
            return read_path(holder[f"{name}Path"], effective, self.context)
        return None

    def _task_result(self, effective: JSON) -> JSON:
        mock = self.request.get("mock") or {}
        if mock.get("errorOutput") is not None:
            raise StatesError(mock["errorOutput"].get("error", ""), mock["errorOutput"].get("cause", ""))
        resource = self.state["Resource"]
        if resource == LAMBDA_INVOKE_WAIT and "result" not in mock:
            raise ServiceError("ValidationException", "TestState needs a mock result for a .waitForTaskToken task")
        if "result" in mock:
            return _json(mock["result"], "ValidationException", "mock.result")
        if resource == LAMBDA_INVOKE:
            if not isinstance(effective, dict) or not isinstance(effective.get("FunctionName"), str):
                raise StatesError("States.Runtime", f"{resource} needs the parameter FunctionName (a function name or ARN)")
            arn, payload = function_arn(effective["FunctionName"]), effective.get("Payload", {})
        else:
            arn, payload = resource, effective
        handler = self.engine._resolve(arn)
        if handler is None:
            raise StatesError("Lambda.ResourceNotFoundException", not_found_cause(arn))
        outcome = invoke(handler, arn, _dumps(payload), self.state.get("TimeoutSeconds") or 60)
        if outcome.error is not None:
            raise StatesError(outcome.error, outcome.payload)
        result = json.loads(outcome.payload)
        if resource == LAMBDA_INVOKE:
            return {"ExecutedVersion": "$LATEST", "Payload": result, "StatusCode": 200, "SdkResponseMetadata": {"RequestId": secrets.token_hex(16)}}
        return result

    def failed(self, data: JSON, failure: StatesError, inspection: dict) -> dict:
        """Retry, then Catch, then FAILED, as the execution would go on."""
        error, cause = failure.error, failure.cause
        answer: dict = {"error": error, "cause": cause}
        if self.state["Type"] not in ("Task", *_MOCKED_ONLY) or error in ("States.Runtime", jsonata.QUERY_ERROR):
            return {**answer, "status": "FAILED"}
        retries = (self.request.get("stateConfiguration") or {}).get("retrierRetryCount", 0)
        for index, retrier in enumerate(self.state.get("Retry", ())):
            if _matches(retrier["ErrorEquals"], error):
                if retries < retrier.get("MaxAttempts", 3):
                    backoff = retrier.get("IntervalSeconds", 1) * retrier.get("BackoffRate", 2.0) ** retries
                    backoff = min(backoff, retrier.get("MaxDelaySeconds", backoff))
                    inspection["errorDetails"] = {"retryIndex": index, "retryBackoffIntervalSeconds": int(backoff)}
                    return {**answer, "status": "RETRIABLE"}
                break
        for index, catcher in enumerate(self.state.get("Catch", ())):
            if _matches(catcher["ErrorEquals"], error):
                error_output = {"Error": error, "Cause": cause}
                if self.jsonata:
                    bindings = self._bindings(data, errorOutput=error_output)
                    output = jsonata.render(catcher["Output"], bindings, "Output") if "Output" in catcher else error_output
                    self._assigned(catcher, bindings, data, inspection)
                else:
                    output = write_result(catcher.get("ResultPath", "$"), data, error_output)
                inspection["errorDetails"] = {"catchIndex": index}
                return {**answer, "status": "CAUGHT_ERROR", "nextState": catcher["Next"], "output": _dumps(output)}
        return {**answer, "status": "FAILED"}


def _state(request: dict) -> tuple[str, dict]:
    """The state to test and its name: the definition is one state, or a state machine with `stateName`."""
    definition = request.get("definition")
    if definition is None:
        raise ServiceError("ValidationException", "1 validation error detected: Value null at 'definition' failed to satisfy constraint: Member must not be null")
    parsed = _json(definition, "InvalidDefinition", "definition")
    name = request.get("stateName")
    language = "JSONPath"
    if name is not None:
        language = parsed.get("QueryLanguage", language) if isinstance(parsed, dict) else language
        states = parsed.get("States") if isinstance(parsed, dict) else None
        if not isinstance(states, dict) or name not in states:
            raise ServiceError("ValidationException", f"The state '{name}' is not in the definition's States")
        parsed = states[name]
    name = name or "TestState"
    if not isinstance(parsed, dict) or parsed.get("Type") not in _SUPPORTED:
        kind = parsed.get("Type") if isinstance(parsed, dict) else None
        raise ServiceError("ValidationException", f"TestState runs {', '.join(_SUPPORTED)} states here, not {kind!r}")
    language = parsed.get("QueryLanguage", language)
    if parsed["Type"] in _MOCKED_ONLY:
        mock = request.get("mock") or {}
        if mock.get("result") is None and mock.get("errorOutput") is None:
            raise ServiceError("ValidationException", f"TestState tests a {parsed['Type']} state only with a mock: its result or its errorOutput")
        caused_by = (request.get("stateConfiguration") or {}).get("errorCausedByState")
        if caused_by is not None and caused_by not in _inner_states(parsed):
            raise ServiceError("ValidationException", f"errorCausedByState '{caused_by}' is not a state inside the {parsed['Type']} state")
    given = _json(request["variables"], "ValidationException", "variables") if request.get("variables") else {}
    _validate_alone(name, parsed, language, sorted(given) if isinstance(given, dict) else [])
    return name, parsed, language


def _inner_states(state: dict) -> set[str]:
    """The names of the states inside a Map's processor or a Parallel's branches, nested ones included."""
    scopes = list(state.get("Branches", ()))
    processor = state.get("ItemProcessor", state.get("Iterator"))
    if isinstance(processor, dict):
        scopes.append(processor)
    names: set[str] = set()
    for scope in scopes:
        for name, inner in (scope.get("States") or {}).items():
            names.add(name)
            if isinstance(inner, dict):
                names |= _inner_states(inner)
    return names


def _validate_alone(name: str, state: dict, language: str, variables: list[str]) -> None:
    """Validate the state in a machine of its own, its transition targets standing for the states it names.

    A Pass state before it assigns the request's variables, so references to them validate.
    """
    targets = {state.get("Next"), state.get("Default"), *(c.get("Next") for c in state.get("Choices", ()) if isinstance(c, dict))}
    targets |= {c.get("Next") for c in state.get("Catch", ()) if isinstance(c, dict)}
    others = {target: {"Type": "Succeed"} for target in targets if isinstance(target, str) and target != name}
    try:
        machine = {"QueryLanguage": language, "StartAt": name, "States": {name: state, **others}}
        if variables:
            machine["StartAt"] = "TestState Variables"
            machine["States"]["TestState Variables"] = {"Type": "Pass", "Assign": dict.fromkeys(variables), "Next": name}
        validate(_dumps(machine))
    except DefinitionInvalid as invalid:
        raise ServiceError("InvalidDefinition", f"Invalid State Machine Definition: '{'; '.join(invalid.problems)}'") from None


def _context(request: dict, name: str, state_input: JSON) -> dict:
    execution_name = str(uuid.uuid4())
    context = {
        "Execution": {
            "Id": f"arn:aws:states:{REGION}:{ACCOUNT}:execution:TestStateMachine:{execution_name}",
            "Name": execution_name, "Input": state_input, "StartTime": iso_timestamp(0.0),
            "RoleArn": request.get("roleArn") or f"arn:aws:iam::{ACCOUNT}:role/localsfn",
        },
        "StateMachine": {"Id": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:TestStateMachine", "Name": "TestStateMachine"},
        "State": {"Name": name, "EnteredTime": iso_timestamp(0.0), "RetryCount": (request.get("stateConfiguration") or {}).get("retrierRetryCount", 0)},
    }
    if request.get("context"):
        given = _json(request["context"], "ValidationException", "context")
        if isinstance(given, dict):
            for key, value in given.items():
                context[key] = {**context.get(key, {}), **value} if isinstance(value, dict) and isinstance(context.get(key), dict) else value
    return context


def _json(text: Any, code: str, what: str) -> JSON:
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError) as error:
        raise ServiceError(code, f"The {what} is not valid JSON: {error}") from None


def _matches(names: list[str], error: str) -> bool:
    if error in names or ("States.ALL" in names and error != "States.DataLimitExceeded"):
        return True
    return "States.TaskFailed" in names and error not in ("States.Timeout", "States.DataLimitExceeded")
