"""The ASL interpreter: how each state moves a path, as history events and effects.

An execution is a tree of *paths*: the root path walks the top-level
states; a Parallel state starts one child path per branch, a Map state
one per item. Every method here makes one step of one path: it appends
the history events of that step and the changed paths to a `Step`, and
says what must happen next as effects (run this path on, call this
Lambda function, wake this path at that time). The engine commits the
step to the journal and only then carries out the effects, so nothing is
acted on before it is journaled, and a path's journaled record is always
enough to go on after a crash.

The interpreter runs on one thread (the engine's loop) and never blocks.
"""

from __future__ import annotations

import base64
import json
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from localsfn import item_reader, jsonata, map_state, result_writer
from localsfn.choice import choose
from localsfn.errors import StatesError, WorkflowFailure
from localsfn.journal import Batch, Event
from localsfn.jsonpath import input_path, output_path, read_path, write_result
from localsfn.lambdas import REGION, Handler, Invocation, function_arn, not_found_cause
from localsfn.payload import render
from localsfn.timestamps import iso_timestamp, parse_timestamp
from localsfn.validation import LAMBDA_INVOKE, LAMBDA_INVOKE_WAIT
from localsfn.variables import Context, visible

JSON = Any
PAYLOAD_LIMIT_BYTES = 256 * 1024
DEFAULT_LAMBDA_TIMEOUT_SECONDS = 900.0
MAX_WAIT_SECONDS = 365 * 24 * 3600  # a Standard execution's maximum duration

# Path phases.
READY = "READY"  # about to enter `state` with `data` as input
RUNNING = "RUNNING"  # a Lambda call is in flight
AWAITING_TOKEN = "AWAITING_TOKEN"  # waitForTaskToken: the call returned; waiting for SendTask*
WAITING = "WAITING"  # in a Wait state until `deadline`
RETRY_WAIT = "RETRY_WAIT"  # a Retry's backoff, until `deadline`
CHILDREN = "CHILDREN"  # a Parallel or Map state waiting for its child paths
PENDING = "PENDING"  # a Map iteration not started yet (MaxConcurrency)
DONE = "DONE"  # a child path that has finished; `data` is its output

# Errors no retrier or catcher handles: AWS fails the execution on them.
_UNCATCHABLE = {"States.Runtime"}
# Failures of the runtime's own evaluation (paths, intrinsics), whose cause names the state.
_RUNTIME_ERRORS = {"States.Runtime", "States.IntrinsicFailure", jsonata.QUERY_ERROR}
_CAUSE_PREFIX = "An error occurred while executing"
# Errors States.ALL does not match (a retrier or catcher may still name them).
_NOT_MATCHED_BY_ALL = {"States.DataLimitExceeded"}


@dataclass
class Path:
    """One thread of control of an execution; what the journal keeps to resume it."""

    id: str
    scope: list  # [[container state, branch index], ...] from the top level to this path's states
    state: str
    phase: str
    data: JSON = None
    parent: str | None = None
    index: int = 0  # branch or item index under the parent
    entered: float = 0.0
    entered_event: int = 0
    retries: list[int] = field(default_factory=list)
    serial: int = 0  # bumped on every attempt; stale timers and Lambda results carry an old one
    deadline: float | None = None
    heartbeat_due: float | None = None
    token: str | None = None
    last_event: int = 0
    task: dict | None = None  # the scheduled call: arn, payload text, kind, timeouts
    effective: JSON = None  # a Map state's input after InputPath, which ItemSelector renders against
    children: dict | None = None  # a container's bookkeeping: generation, total, next, running, finished
    data_text: str | None = field(default=None, repr=False, compare=False)  # `data` as JSON, when known
    variables: dict | None = None  # the workflow variables this path's scope assigned
    events_arn: str | None = None  # the child execution (of a Distributed Map) whose history this path writes; None: the execution's

    def record(self) -> str:
        """Everything but the data, as JSON (the journal keeps the data in a column of its own)."""
        record = {name: getattr(self, name) for name in _RECORD_FIELDS}
        for name in ("variables", "events_arn"):
            if record[name] is None:
                del record[name]  # most paths have neither: keep their journal records as they were
        return _dumps(record)

    def data_json(self) -> str:
        if self.data_text is None:
            self.data_text = _dumps(self.data)
        return self.data_text

    def move_to(self, state: str, data: JSON, data_text: str | None = None) -> None:
        """Make the path READY to enter `state` with `data` as input."""
        self.state, self.phase, self.data, self.data_text = state, READY, data, data_text
        self.deadline = self.heartbeat_due = self.token = self.task = self.children = self.effective = None

    @classmethod
    def load(cls, path_id: str, record: str, data: str) -> Path:
        values = json.loads(record)
        values["id"] = path_id
        return cls(data=json.loads(data), data_text=data, **values)


class Execution:
    """A running execution in memory: its paths and the context object's fixed parts."""

    def __init__(self, row: dict, definition: dict, machine_name: str, next_event_id: int = 1) -> None:
        self.arn: str = row["arn"]
        self.machine_arn: str = row["machine_arn"]
        self.name: str = row["name"]
        self.definition = definition
        self.started: float = row["started"]
        self.next_event_id = next_event_id
        self.paths: dict[str, Path] = {}
        self.closed = False
        self.context = {
            "Execution": {
                "Id": self.arn,
                "Name": self.name,
                "Input": json.loads(row["input"]),
                "StartTime": iso_timestamp(self.started),
                "RoleArn": row["role_arn"],
            },
            "StateMachine": {"Id": self.machine_arn, "Name": machine_name},
        }
        self._scopes: dict[str, dict] = {}
        self.child_next: dict[str, int] = {}  # child execution ARN -> the id of its next history event
        self.child_definitions: dict[str, str] = {}  # Map state name -> the definition its child executions run
        self.child_contexts: dict[str, dict] = {}  # child execution ARN -> its context object's fixed parts

    def states_of(self, path: Path) -> dict:
        """The States object the path walks (top level, a Parallel branch or a Map processor)."""
        key = str(path.scope)
        scope = self._scopes.get(key)
        if scope is None:
            scope = self.definition
            for container, branch in path.scope:
                state = scope["States"][container]
                scope = state["Branches"][branch] if state["Type"] == "Parallel" else state.get("ItemProcessor", state.get("Iterator"))
            self._scopes[key] = scope
        return scope["States"]


class Step:
    """What one interpreter step produced: the journal batch and the effects to carry out after it commits."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.batch = Batch()
        self.run: list[tuple[Execution, Path]] = []
        self.invocations: list[tuple[Execution, Path, Handler | None]] = []
        self.timers: list[tuple[float, str, str, int, str]] = []  # due, execution arn, path id, serial, kind
        self.closed: list[Execution] = []
        self._touched: dict[tuple[str, str], tuple[Execution, Path]] = {}

    def emit(self, execution: Execution, path: Path | None, kind: str, details_key: str | None = None, details: dict | None = None) -> Event:
        stream = path.events_arn if path is not None else None
        if stream is None:
            previous = path.last_event if path is not None else execution.next_event_id - 1
            event = Event(execution.arn, execution.next_event_id, previous, kind, self.now, details_key, details)
            execution.next_event_id += 1
        else:  # a child execution of a Distributed Map: its own history, numbered from 1
            event = Event(stream, execution.child_next[stream], path.last_event, kind, self.now, details_key, details)
            execution.child_next[stream] = event.id + 1
        if path is not None:
            path.last_event = event.id
        self.batch.events.append(event)
        return event

    def started_execution(self, arn: str) -> dict | None:
        """The row of execution `arn` if this step started it, as the journal will show it."""
        for row in self.batch.new_executions:
            if row["arn"] == arn:
                return {**row, "status": "RUNNING"}
        return None

    def touch(self, execution: Execution, path: Path) -> None:
        self._touched[(execution.arn, path.id)] = (execution, path)

    def remove(self, execution: Execution, path: Path) -> None:
        key = (execution.arn, path.id)
        self._touched.pop(key, None)
        execution.paths.pop(path.id, None)
        self.batch.removed_paths.add(key)

    def seal(self) -> Batch:
        """Serialise the touched paths into the batch; call once, before committing."""
        for (arn, path_id), (execution, path) in self._touched.items():
            if not execution.closed:
                self.batch.paths[(arn, path_id)] = (path.record(), path.data_json())
        return self.batch


class Interpreter:
    """The state logic. `resolve` maps a function ARN to its handler (None when there is none)."""

    def __init__(self, resolve: Callable[[str], Handler | None]) -> None:
        self.resolve = resolve
        # What a ResultWriter calls; the engine gives one that reads the Map Run's child executions from its journal.
        self.write_results: Handler = result_writer.handler_reading(lambda map_run_arn: [])
        # A child execution's context object (`Execution`, `StateMachine`) from its journal row, when not in memory
        # (after a restart, or once redriven); the engine gives one.
        self.load_child_context: Callable[[str], dict] = lambda arn: {}

    # ------------------------------------------------------------------ entry points

    def advance(self, step: Step, execution: Execution, path: Path) -> None:
        """Enter the state a READY path is at. Other phases move on events, not here."""
        if execution.closed or path.phase != READY or execution.paths.get(path.id) is not path:
            return
        states = execution.states_of(path)
        state = states[path.state]
        kind = state["Type"]
        path.entered = step.now
        path.retries = [0] * len(state.get("Retry", ()))
        path.serial += 1
        step.touch(execution, path)
        entered = step.emit(execution, path, _entered_type(kind), "stateEnteredEventDetails", _io_details("input", path.data_json(), name=path.state))
        path.entered_event = entered.id
        try:
            if _is_jsonata(execution, state):
                self._advance_jsonata(step, execution, path, state, kind)
            elif kind == "Pass":
                self._pass(step, execution, path, state)
            elif kind == "Task":
                self._attempt_task(step, execution, path, state)
            elif kind == "Choice":
                self._choice(step, execution, path, state)
            elif kind == "Wait":
                self._wait(step, execution, path, state)
            elif kind == "Succeed":
                context = self._context(execution, path)
                self._exit(step, execution, path, state, output_path(state, input_path(state, path.data, context), context))
            elif kind == "Fail":
                self._fail_state(step, execution, path, state)
            elif kind == "Parallel":
                self._start_parallel(step, execution, path, state)
            elif kind == "Map":
                self._start_map(step, execution, path, state)
        except WorkflowFailure as failure:
            self._fail_path(step, execution, path, failure.error, failure.cause)
        except StatesError as error:
            self._state_failed(step, execution, path, state, error.error, error.cause)

    def on_timer(self, step: Step, execution: Execution, path: Path, serial: int, kind: str) -> None:
        """A timer came due: end a Wait, retry after a backoff, or time a task out."""
        if execution.closed or path.serial != serial or execution.paths.get(path.id) is not path:
            return
        state = execution.states_of(path)[path.state]
        if kind == "wait" and path.phase == WAITING:
            context = self._context(execution, path)
            try:
                if _is_jsonata(execution, state):
                    self._leave_jsonata(step, execution, path, state, context, path.data)
                    return
                effective = input_path(state, path.data, context)
                assign = _assign(state, effective, context)
                self._exit(step, execution, path, state, output_path(state, effective, context), assign=assign)
            except StatesError as error:
                self._state_failed(step, execution, path, state, error.error, error.cause)
        elif kind == "retry" and path.phase == RETRY_WAIT:
            path.serial += 1
            step.touch(execution, path)
            try:
                if state["Type"] == "Task":
                    self._attempt_task(step, execution, path, state)
                elif state["Type"] == "Parallel":
                    self._start_parallel(step, execution, path, state)
                else:
                    self._start_map(step, execution, path, state)
            except StatesError as error:
                self._state_failed(step, execution, path, state, error.error, error.cause)
        elif kind == "timeout" and path.phase in (RUNNING, AWAITING_TOKEN):
            self._task_timed_out(step, execution, path, state, "States.Timeout", "Task timed out.")
        elif kind == "heartbeat" and path.phase in (RUNNING, AWAITING_TOKEN) and path.heartbeat_due is not None:
            if path.heartbeat_due <= step.now:
                self._task_timed_out(step, execution, path, state, "States.HeartbeatTimeout", "Task heartbeat timed out.")
            else:  # a heartbeat arrived since this timer was set
                step.timers.append((path.heartbeat_due, execution.arn, path.id, path.serial, "heartbeat"))

    def on_invocation(self, step: Step, execution: Execution, path: Path, serial: int, invocation: Invocation) -> None:
        """A Lambda call returned (or raised); stale results (timed out, superseded, aborted) are dropped."""
        if execution.closed or path.serial != serial or path.phase != RUNNING or execution.paths.get(path.id) is not path:
            return
        state = execution.states_of(path)[path.state]
        task = path.task
        if task["kind"] == "item_reader":  # the items of a Distributed Map, not a task's result: no size limit
            self._items_read(step, execution, path, state, invocation)
            return
        if task["kind"] == "result_writer":
            self._results_written(step, execution, path, state, invocation)
            return
        if invocation.error is not None:
            self._task_failed(step, execution, path, state, invocation.error, invocation.payload)
            return
        try:
            _check_size(invocation.payload, f"The result of the Lambda function of state '{path.state}'")
        except StatesError as too_big:
            self._task_failed(step, execution, path, state, too_big.error, too_big.cause)
            return
        if task["kind"] == "function":
            step.emit(execution, path, "LambdaFunctionSucceeded", "lambdaFunctionSucceededEventDetails", _io_details("output", invocation.payload))
            self._task_result(step, execution, path, state, json.loads(invocation.payload))
            return
        result = _invoke_response(invocation.payload)
        result_text = _dumps(result)
        if task["kind"] == "token":
            path.phase = AWAITING_TOKEN
            step.touch(execution, path)
            step.emit(execution, path, "TaskSubmitted", "taskSubmittedEventDetails", {**_task_resource(task), **_io_details("output", result_text)})
            return
        step.emit(execution, path, "TaskSucceeded", "taskSucceededEventDetails", {**_task_resource(task), **_io_details("output", result_text)})
        self._task_result(step, execution, path, state, result)

    def on_task_token(self, step: Step, execution: Execution, path: Path, output: str | None, error: str | None, cause: str | None) -> None:
        """SendTaskSuccess (output) or SendTaskFailure (error, cause) for the path's current token."""
        state = execution.states_of(path)[path.state]
        path.serial += 1  # the Lambda call behind the token may still return: ignore it
        if output is not None:
            step.emit(execution, path, "TaskSucceeded", "taskSucceededEventDetails", {**_task_resource(path.task), **_io_details("output", output)})
            self._task_result(step, execution, path, state, json.loads(output))
        else:
            details = {**_task_resource(path.task), **_error_details(error, cause)}
            step.emit(execution, path, "TaskFailed", "taskFailedEventDetails", details)
            self._state_failed(step, execution, path, state, error or "", cause or "")

    def on_heartbeat(self, step: Step, execution: Execution, path: Path) -> None:
        heartbeat = path.task.get("heartbeat")
        if heartbeat:
            path.heartbeat_due = step.now + heartbeat
            step.touch(execution, path)

    def start(self, step: Step, execution: Execution, input_text: str, role_arn: str) -> None:
        """ExecutionStarted and the root path at StartAt."""
        step.emit(execution, None, "ExecutionStarted", "executionStartedEventDetails", {**_io_details("input", input_text), "roleArn": role_arn})
        # AWS links the first StateEntered event to 0, not to ExecutionStarted.
        root = Path(id="0", scope=[], state=execution.definition["StartAt"], phase=READY, data=json.loads(input_text), last_event=0)
        execution.paths[root.id] = root
        step.touch(execution, root)
        step.run.append((execution, root))
        timeout = execution.definition.get("TimeoutSeconds")
        if timeout:
            step.timers.append((execution.started + timeout, execution.arn, root.id, -1, "execution_timeout"))

    def abort(self, step: Step, execution: Execution, error: str | None, cause: str | None) -> None:
        """StopExecution: ExecutionAborted; in-flight work is dropped."""
        details = {key: value for key, value in (("error", error), ("cause", cause)) if value is not None}
        self._abort_open(step, execution, list(execution.paths.values()))
        step.emit(execution, None, "ExecutionAborted", "executionAbortedEventDetails", details)
        self._close(step, execution, "ABORTED", error=error, cause=cause)

    def time_out(self, step: Step, execution: Execution) -> None:
        cause = f"The execution ran longer than its TimeoutSeconds ({execution.definition['TimeoutSeconds']} s)."
        self._abort_open(step, execution, list(execution.paths.values()))
        step.emit(execution, None, "ExecutionTimedOut", "executionTimedOutEventDetails", {"error": "States.Timeout", "cause": cause})
        self._close(step, execution, "TIMED_OUT", error="States.Timeout", cause=cause)

    # ------------------------------------------------------------------ states

    def _pass(self, step: Step, execution: Execution, path: Path, state: dict) -> None:
        context = self._context(execution, path)
        effective = _parameters(state, input_path(state, path.data, context), context)
        result = state.get("Result", effective)
        assign = _assign(state, result, context)
        output = output_path(state, write_result(state.get("ResultPath", "$"), path.data, result), context)
        self._exit(step, execution, path, state, output, assign=assign)

    def _choice(self, step: Step, execution: Execution, path: Path, state: dict) -> None:
        context = self._context(execution, path)
        effective = input_path(state, path.data, context)
        target = choose(state, effective, context)
        assign = _assign(state, effective, context)
        output = output_path(state, effective, context)
        self._exit(step, execution, path, state, output, target, assign=assign)

    def _wait(self, step: Step, execution: Execution, path: Path, state: dict) -> None:
        effective = input_path(state, path.data, self._context(execution, path))
        if "Seconds" in state:
            due = step.now + state["Seconds"]
        elif "Timestamp" in state:
            due = parse_timestamp(state["Timestamp"])
        elif "SecondsPath" in state:
            seconds = read_path(state["SecondsPath"], effective)
            described = f"{state['SecondsPath']} == {_dumps(seconds)}"
            if not isinstance(seconds, int) or isinstance(seconds, bool):
                raise WorkflowFailure("States.Runtime", f"The SecondsPath parameter cannot be parsed as a long value: {described}")
            if seconds < 0:
                raise WorkflowFailure("States.Runtime", f"The SecondsPath parameter references a negative value: {described}")
            due = step.now + seconds
        else:
            stamp = read_path(state["TimestampPath"], effective)
            due = parse_timestamp(stamp) if isinstance(stamp, str) else None
            if due is None:
                # AWS's words, recorded (a string is shown as it is, unquoted).
                shown = stamp if isinstance(stamp, str) else _dumps(stamp)
                raise StatesError(
                    "States.Runtime",
                    f"The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {state['TimestampPath']} == {shown}",
                )
        self._wait_until(step, execution, path, state, due)

    def _wait_until(self, step: Step, execution: Execution, path: Path, state: dict, due: float) -> None:
        if due - step.now > MAX_WAIT_SECONDS:
            # A Standard workflow runs for a year at most: AWS refuses a longer Wait at once.
            field_name = next(name for name in ("Seconds", "Timestamp", "SecondsPath", "TimestampPath") if name in state)
            raise WorkflowFailure(
                "States.Runtime",
                f"The {field_name} of the Wait state '{path.state}' lies beyond the maximum wait of {MAX_WAIT_SECONDS} seconds (one year)",
            )
        path.phase = WAITING
        path.deadline = due
        step.touch(execution, path)
        step.timers.append((due, execution.arn, path.id, path.serial, "wait"))

    def _fail_state(self, step: Step, execution: Execution, path: Path, state: dict) -> None:
        context = self._context(execution, path)
        error, cause = state.get("Error"), state.get("Cause")
        if "ErrorPath" in state:
            error = render({"Error.$": state["ErrorPath"]}, path.data, context)["Error"]
        if "CausePath" in state:
            cause = render({"Cause.$": state["CausePath"]}, path.data, context)["Cause"]
        for field_name, value in (("ErrorPath", error), ("CausePath", cause)):
            if value is not None and not isinstance(value, str):
                raise StatesError("States.Runtime", f"The {field_name} of state '{path.state}' does not reference a string: {_dumps(value)}")
        self._fail_path(step, execution, path, error, cause)

    # ------------------------------------------------------------------ tasks

    def _attempt_task(self, step: Step, execution: Execution, path: Path, state: dict) -> None:
        """Render the task's input and call its Lambda function (first attempt or a retry)."""
        resource = state["Resource"]
        context = self._context(execution, path, task=True)
        kind = "token" if resource == LAMBDA_INVOKE_WAIT else "invoke" if resource == LAMBDA_INVOKE else "function"
        if kind == "token":
            path.token = _task_token(execution.arn, path)
            context = context.extended(Task={"Token": path.token})
        if _is_jsonata(execution, state):
            effective = jsonata.render(state["Arguments"], self._bindings(context, path.data), "Arguments") if "Arguments" in state else path.data
        else:
            effective = _parameters(state, input_path(state, path.data, context), context)
        if _is_jsonata(execution, state):
            bindings = self._bindings(context, path.data)
            timeout = _jsonata_seconds(state, "TimeoutSeconds", bindings)
            heartbeat = _jsonata_seconds(state, "HeartbeatSeconds", bindings) if kind == "token" else None
        else:
            timeout = _seconds(state, "TimeoutSeconds", path.data)
            heartbeat = _seconds(state, "HeartbeatSeconds", path.data) if kind == "token" else None
        if kind == "function":
            arn, payload = resource, effective
        else:
            if not isinstance(effective, dict) or not isinstance(effective.get("FunctionName"), str):
                raise StatesError("States.Runtime", f"{resource} needs the parameter FunctionName (a function name or ARN)")
            arn, payload = function_arn(effective["FunctionName"]), effective.get("Payload", {})
        payload_text = _dumps(payload)
        _check_size(payload_text, f"The input to the Lambda function of state '{path.state}'")
        path.task = {"kind": kind, "arn": arn, "payload": payload_text, "timeout": timeout, "heartbeat": heartbeat}
        path.phase = RUNNING
        path.deadline = step.now + timeout if timeout else None
        path.heartbeat_due = step.now + heartbeat if heartbeat else None
        step.touch(execution, path)
        if kind == "function":
            details = {"resource": arn, **_io_details("input", payload_text)}
            if timeout:
                details["timeoutInSeconds"] = timeout
            step.emit(execution, path, "LambdaFunctionScheduled", "lambdaFunctionScheduledEventDetails", details)
        else:
            details = {**_task_resource(path.task), "region": REGION, "parameters": _dumps(effective)}
            if timeout:
                details["timeoutInSeconds"] = timeout
            if heartbeat:
                details["heartbeatInSeconds"] = heartbeat
            step.emit(execution, path, "TaskScheduled", "taskScheduledEventDetails", details)
        handler = self.resolve(arn)
        if handler is None:
            self._task_failed(step, execution, path, state, "Lambda.ResourceNotFoundException", not_found_cause(arn))
            return
        if kind == "function":
            step.emit(execution, path, "LambdaFunctionStarted")
        else:
            step.emit(execution, path, "TaskStarted", "taskStartedEventDetails", _task_resource(path.task))
        self.schedule_call(step, execution, path, handler)

    def schedule_call(self, step: Step, execution: Execution, path: Path, handler: Handler | None) -> None:
        """Ask the engine to call the function and arm the task's timers (also used on resume)."""
        # On resume the engine looks these up as functions it does not have.
        if path.task is not None and path.task["kind"] == "item_reader":
            handler = item_reader.handler
        elif path.task is not None and path.task["kind"] == "result_writer":
            handler = self.write_results
        step.invocations.append((execution, path, handler))
        if path.deadline is not None:
            step.timers.append((path.deadline, execution.arn, path.id, path.serial, "timeout"))
        if path.heartbeat_due is not None:
            step.timers.append((path.heartbeat_due, execution.arn, path.id, path.serial, "heartbeat"))

    def _task_result(self, step: Step, execution: Execution, path: Path, state: dict, result: JSON) -> None:
        path.phase = READY  # no longer in flight, whatever happens next
        path.token = None
        try:
            self._complete(step, execution, path, state, result)
        except StatesError as error:
            self._state_failed(step, execution, path, state, error.error, error.cause)

    def _task_failed(self, step: Step, execution: Execution, path: Path, state: dict, error: str, cause: str) -> None:
        if path.task["kind"] == "function":
            step.emit(execution, path, "LambdaFunctionFailed", "lambdaFunctionFailedEventDetails", _error_details(error, cause))
        else:
            step.emit(execution, path, "TaskFailed", "taskFailedEventDetails", {**_task_resource(path.task), **_error_details(error, cause)})
        path.phase = READY
        self._state_failed(step, execution, path, state, error, cause)

    def _task_timed_out(self, step: Step, execution: Execution, path: Path, state: dict, error: str, cause: str) -> None:
        path.serial += 1  # the call may still return: drop its result
        if path.task["kind"] == "function":
            step.emit(execution, path, "LambdaFunctionTimedOut", "lambdaFunctionTimedOutEventDetails", _error_details(error, cause))
        else:
            step.emit(execution, path, "TaskTimedOut", "taskTimedOutEventDetails", {**_task_resource(path.task), **_error_details(error, cause)})
        path.phase = READY
        self._state_failed(step, execution, path, state, error, cause)

    # ------------------------------------------------------------------ Parallel and Map

    def _start_parallel(self, step: Step, execution: Execution, path: Path, state: dict) -> None:
        context = self._context(execution, path)
        if _is_jsonata(execution, state):
            effective = jsonata.render(state["Arguments"], self._bindings(context, path.data), "Arguments") if "Arguments" in state else path.data
        else:
            effective = _parameters(state, input_path(state, path.data, context), context)
        step.emit(execution, path, "ParallelStateStarted")
        generation = self._begin_children(step, execution, path, len(state["Branches"]))
        for index, branch in enumerate(state["Branches"]):
            child = self._child(execution, path, generation, index, index, branch["StartAt"], READY, effective)
            step.touch(execution, child)
            step.run.append((execution, child))
        path.children["next"] = path.children["running"] = len(state["Branches"])

    def _start_map(self, step: Step, execution: Execution, path: Path, state: dict) -> None:
        context = self._context(execution, path)
        if "ItemReader" in state:
            self._read_items(step, execution, path, state, context)
            return
        effective, items = self._map_items(execution, path, state, context)
        step.emit(execution, path, "MapStateStarted", "mapStateStartedEventDetails", {"length": len(items)})
        if map_state.is_distributed(state):
            self._start_map_run(step, execution, path, state, items, effective, context)
            return
        if not items:
            step.emit(execution, path, "MapStateSucceeded")
            self._complete(step, execution, path, state, [])
            return
        generation = self._begin_children(step, execution, path, len(items))
        path.effective = effective
        processor = state.get("ItemProcessor", state.get("Iterator"))
        for index, item in enumerate(items):
            step.touch(execution, self._child(execution, path, generation, index, 0, processor["StartAt"], PENDING, item))
        limit = _max_concurrency(state, self._bindings(context, path.data) if _is_jsonata(execution, state) else None, effective, context) or len(items)
        for _ in range(min(limit, len(items))):
            self._start_iteration(step, execution, path, state)

    def _map_items(self, execution: Execution, path: Path, state: dict, context: Context) -> tuple[JSON, list]:
        """The Map state's effective input and its items (from Items or ItemsPath)."""
        if _is_jsonata(execution, state):
            effective = path.data
            items = jsonata.render(state["Items"], self._bindings(context, path.data), "Items") if "Items" in state else effective
        else:
            effective = input_path(state, path.data, context)
            items = read_path(state.get("ItemsPath", "$"), effective, context)
        if not isinstance(items, list):
            raise StatesError("States.Runtime", f"The ItemsPath of state '{path.state}' does not reference an array: {_dumps(items)[:200]}")
        return effective, items

    def redrive_map_run(self, step: Step, execution: Execution, path: Path, run: dict, children: list[dict], unstarted: dict | None = None) -> bool:
        """Redrive a failed Map Run as AWS does: its succeeded children keep their outputs, the others run again.

        `path` is READY at the Distributed Map state whose Map Run `run` (its
        journal row) failed; `children` are the rows of the run's child
        executions; `unstarted` the inputs of those never started, by index. A child that failed or was aborted is redriven (same ARN,
        ExecutionRedriven in its history) from the state it stopped in, with
        the input and variables it had there; one that never started starts now.
        Items an ItemReader read are not read again: the children keep the
        inputs they had, the unstarted ones those kept when the run ended.
        Returns False, having done nothing, when the Map cannot be redriven
        this way (its items no longer evaluate to as many, or a journal from
        before unstarted inputs were kept): the whole Map state then runs again.
        """
        state = execution.states_of(path)[path.state]
        context = self._context(execution, path)
        by_index = {row["map_index"]: row for row in children}
        try:
            if "ItemReader" in state:
                # The items are not read again: each child's input is its row's, the unstarted ones' were kept when the run ended.
                if unstarted is None:
                    return False
                items = []
                for index in range(run["execution_total"]):
                    row = by_index.get(index)
                    if row is not None:
                        items.append(json.loads(row["input"]))
                    elif str(index) in unstarted:
                        items.append(unstarted[str(index)])
                    else:
                        return False
                effective = path.data if _is_jsonata(execution, state) else input_path(state, path.data, context)
                settings_state = {key: value for key, value in state.items() if key not in ("ItemSelector", "Parameters", "ItemBatcher")}
                _, settings = self._prepare_map_run(execution, path, settings_state, [], effective, context)
                settings.update(item_total=run["item_total"], batched="ItemBatcher" in state)
            else:
                effective, items = self._map_items(execution, path, state, context)
                items, settings = self._prepare_map_run(execution, path, state, items, effective, context)
        except StatesError:
            return False
        if len(items) != run["execution_total"] or not items or all(row["status"] == "SUCCEEDED" for row in by_index.values()) and len(by_index) == len(items):
            return False
        path.entered = step.now
        path.retries = [0] * len(state.get("Retry", ()))
        path.serial += 1
        redrive_count = run.get("redrive_count", 0) + 1
        step.emit(execution, path, "MapRunRedriven", "mapRunRedrivenEventDetails", {"mapRunArn": run["arn"], "redriveCount": redrive_count})
        step.batch.map_runs[run["arn"]] = {"status": "RUNNING", "stopped": None, "redrive_count": redrive_count, "redrive_date": step.now}
        generation = self._begin_children(step, execution, path, len(items))
        path.children.update(
            distributed=True, failed=0, map_run=run["arn"], tolerated=settings["tolerated"], items=settings["item_total"], batched=settings["batched"],
            max_concurrency=settings["max_concurrency"],
        )
        redriven: dict[str, list[int]] = {}
        processor = state["ItemProcessor"]
        for index, item in enumerate(items):
            row = by_index.get(index)
            if row is not None and row["status"] == "SUCCEEDED":
                child = self._child(execution, path, generation, index, 0, processor["StartAt"], DONE, json.loads(row["output"]))
                child.data_text = row["output"]
                path.children["finished"] += 1
            elif row is not None and row.get("redrive_point") is not None:  # redriven from the state it failed or was aborted in
                point = Path.load(path.id, *row["redrive_point"])
                child = self._child(execution, path, generation, index, 0, point.state, PENDING, point.data)
                child.data_text, child.variables = row["redrive_point"][1], point.variables
                redriven[str(index)] = [row["redrive_count"] + 1, row["last_event"] + 1]
            else:
                child = self._child(execution, path, generation, index, 0, processor["StartAt"], PENDING, item)
                if row is not None:
                    redriven[str(index)] = [row["redrive_count"] + 1, row["last_event"] + 1]
            step.touch(execution, child)
        path.children["redriven"] = redriven
        limit = settings["max_concurrency"] or len(items)
        for _ in range(min(limit, len(items) - path.children["finished"])):
            self._start_iteration(step, execution, path, state)
        return True

    def update_map_run(
        self, step: Step, execution: Execution, path: Path, max_concurrency: int | None, percentage: float | None, count: int | None,
    ) -> None:
        """UpdateMapRun of the Map Run `path` runs: new limits; a higher concurrency starts waiting children now."""
        counts = path.children
        tolerated_count, tolerated_percentage = counts["tolerated"]
        counts["tolerated"] = [
            count if count is not None else tolerated_count,
            float(percentage) if percentage is not None else tolerated_percentage,
        ]
        if max_concurrency is not None:
            counts["max_concurrency"] = max_concurrency
        step.touch(execution, path)
        state = execution.states_of(path)[path.state]
        limit = counts.get("max_concurrency") or counts["total"]
        while counts["next"] < counts["total"] and counts["running"] < limit:
            self._start_iteration(step, execution, path, state)

    def _write_results(self, step: Step, execution: Execution, path: Path, state: dict) -> None:
        """Ask the engine's pool to write a Map Run's results (from its child executions) to S3; the state completes when they are written."""
        counts = path.children
        writer = state["ResultWriter"]
        context = self._context(execution, path)
        if "Resource" not in writer:
            parameters = None  # WriterConfig alone: the results become the state's result, nothing is written
        elif _is_jsonata(execution, state):
            parameters = jsonata.render(writer.get("Arguments", {}), self._bindings(context, path.data), "ResultWriter/Arguments")
        else:
            parameters = render(writer.get("Parameters", {}), path.data, context)
        event = {"Parameters": parameters, "MapRunArn": counts["map_run"], "WriterConfig": writer.get("WriterConfig") or {}}
        path.task = {
            "kind": "result_writer", "arn": result_writer.HANDLER_ARN, "payload": _dumps(event), "timeout": None, "heartbeat": None,
            "map_run": counts["map_run"], "executions": counts["total"], "items": counts.get("items", counts["total"]),
        }
        path.phase = RUNNING
        path.deadline = path.heartbeat_due = None
        step.touch(execution, path)
        self.schedule_call(step, execution, path, self.write_results)

    def _results_written(self, step: Step, execution: Execution, path: Path, state: dict, invocation: Invocation) -> None:
        path.phase = READY
        if invocation.error is not None:
            message = json.loads(invocation.payload).get("errorMessage", invocation.payload)
            cause = f"The ResultWriter of state '{path.state}' failed: {message}"
            step.emit(execution, path, "MapRunFailed", "mapRunFailedEventDetails", _error_details(result_writer.ERROR, cause))
            _map_run_ended(step, path.task["map_run"], "FAILED")
            step.emit(execution, path, "MapStateFailed")
            self._state_failed(step, execution, path, state, result_writer.ERROR, cause)
            return
        written = json.loads(invocation.payload)
        step.emit(execution, path, "MapRunSucceeded")
        _map_run_ended(step, path.task["map_run"], "SUCCEEDED", results_written=path.task["executions"], items_written=path.task["items"])
        step.emit(execution, path, "MapStateSucceeded")
        if "Results" in written:  # WriterConfig without Resource
            result = written["Results"]
        else:
            result = {"MapRunArn": path.task["map_run"], "ResultWriterDetails": written}
        try:
            self._complete(step, execution, path, state, result)
        except StatesError as error:
            self._state_failed(step, execution, path, state, error.error, error.cause)

    def _read_items(self, step: Step, execution: Execution, path: Path, state: dict, context: Context) -> None:
        """Ask the engine's pool to read the ItemReader's items (S3 blocks); the Map Run starts when they come back."""
        reader = state["ItemReader"]
        if _is_jsonata(execution, state):
            effective = path.data
            parameters = jsonata.render(reader.get("Arguments", {}), self._bindings(context, path.data), "ItemReader/Arguments")
        else:
            effective = input_path(state, path.data, context)
            parameters = render(reader.get("Parameters", {}), effective, context)
        config = {"Resource": reader["Resource"], "Parameters": parameters, "ReaderConfig": reader.get("ReaderConfig", {})}
        path.task = {"kind": "item_reader", "arn": item_reader.HANDLER_ARN, "payload": _dumps(config), "timeout": None, "heartbeat": None}
        path.effective = effective
        path.phase = RUNNING
        path.deadline = path.heartbeat_due = None
        step.touch(execution, path)
        self.schedule_call(step, execution, path, item_reader.handler)

    def _items_read(self, step: Step, execution: Execution, path: Path, state: dict, invocation: Invocation) -> None:
        path.phase = READY
        if invocation.error is not None:
            message = json.loads(invocation.payload).get("errorMessage", invocation.payload)
            self._state_failed(step, execution, path, state, item_reader.ERROR, f"The ItemReader of state '{path.state}' failed: {message}")
            return
        items = json.loads(invocation.payload)
        try:
            step.emit(execution, path, "MapStateStarted", "mapStateStartedEventDetails", {"length": len(items)})
            self._start_map_run(step, execution, path, state, items, path.effective, self._context(execution, path))
        except StatesError as error:
            self._state_failed(step, execution, path, state, error.error, error.cause)

    def _start_map_run(self, step: Step, execution: Execution, path: Path, state: dict, items: list, effective: JSON, context: Context) -> None:
        """Distributed mode: a Map Run whose children get their items (or batches) prepared up front."""
        items, settings = self._prepare_map_run(execution, path, state, items, effective, context)
        tolerated, max_concurrency, item_total = settings["tolerated"], settings["max_concurrency"], settings["item_total"]
        run_arn = map_state.map_run_arn(execution.context["StateMachine"]["Name"], state, path.state)
        step.emit(execution, path, "MapRunStarted", "mapRunStartedEventDetails", {"mapRunArn": run_arn})
        step.batch.new_map_runs.append({
            # A Distributed Map inside a child execution belongs to that child, as ListMapRuns of it shows.
            "arn": run_arn, "execution_arn": path.events_arn or execution.arn, "machine_arn": map_state.child_machine_arn(run_arn), "status": "RUNNING",
            "started": step.now, "max_concurrency": max_concurrency, "tolerated_count": tolerated[0] or 0,
            "tolerated_percentage": tolerated[1] or 0.0, "item_total": item_total, "execution_total": len(items),
        })
        if not items:
            step.emit(execution, path, "MapRunSucceeded")
            _map_run_ended(step, run_arn, "SUCCEEDED")
            step.emit(execution, path, "MapStateSucceeded")
            self._complete(step, execution, path, state, [])
            return
        generation = self._begin_children(step, execution, path, len(items))
        path.children.update(
            distributed=True, failed=0, map_run=run_arn, tolerated=tolerated, items=item_total, batched="ItemBatcher" in state, max_concurrency=max_concurrency,
        )
        processor = state["ItemProcessor"]
        for index, item in enumerate(items):
            step.touch(execution, self._child(execution, path, generation, index, 0, processor["StartAt"], PENDING, item))
        limit = max_concurrency or len(items)
        for _ in range(min(limit, len(items))):
            self._start_iteration(step, execution, path, state)

    def _prepare_map_run(self, execution: Execution, path: Path, state: dict, items: list, effective: JSON, context: Context) -> tuple[list, dict]:
        """A Map Run's children's inputs (ItemSelector, ItemBatcher) and its settings (tolerated failures, concurrency)."""
        bindings = self._bindings(context, path.data) if _is_jsonata(execution, state) else None
        selector = state.get("ItemSelector", state.get("Parameters"))
        if selector is not None:
            selected = []
            for index, item in enumerate(items):
                item_context = context.extended(Map={"Item": {"Index": index, "Value": item}})
                if bindings is not None:
                    selected.append(jsonata.render(selector, self._bindings(item_context, path.data), "ItemSelector"))
                else:
                    selected.append(render(selector, effective, item_context))
            items = selected
        item_total = len(items)
        if "ItemBatcher" in state:
            batcher = state["ItemBatcher"]
            max_items = _map_setting(batcher, "MaxItemsPerBatch", bindings, effective, context, map_state.positive_int)
            max_bytes = _map_setting(batcher, "MaxInputBytesPerBatch", bindings, effective, context, map_state.positive_int)
            batch_input = batcher.get("BatchInput")
            if batch_input is not None:
                batch_input = jsonata.render(batch_input, bindings, "BatchInput") if bindings is not None else render(batch_input, effective, context)
            items = map_state.batches(items, max_items, max_bytes, batch_input)
        tolerated = [
            _map_setting(state, "ToleratedFailureCount", bindings, effective, context, map_state.positive_int),
            _map_setting(state, "ToleratedFailurePercentage", bindings, effective, context, map_state.percentage),
        ]
        max_concurrency = _max_concurrency(state, bindings, effective, context)
        settings = {"tolerated": tolerated, "max_concurrency": max_concurrency, "item_total": item_total, "batched": "ItemBatcher" in state}
        return items, settings

    def _begin_children(self, step: Step, execution: Execution, path: Path, total: int) -> int:
        generation = (path.children or {}).get("generation", 0) + 1
        path.children = {"generation": generation, "total": total, "next": 0, "running": 0, "finished": 0}
        path.phase = CHILDREN
        step.touch(execution, path)
        return generation

    def _child(self, execution: Execution, parent: Path, generation: int, index: int, branch: int, start: str, phase: str, data: JSON) -> Path:
        """A child path of a Parallel (`branch` = its index) or a Map (`branch` = 0, the one processor)."""
        child = Path(
            id=f"{parent.id}.{generation}.{index}",
            scope=[*parent.scope, [parent.state, branch]],
            state=start,
            phase=phase,
            data=data,
            parent=parent.id,
            index=index,
            last_event=parent.last_event,
            events_arn=parent.events_arn,
        )
        execution.paths[child.id] = child
        return child

    def _start_iteration(self, step: Step, execution: Execution, parent: Path, state: dict) -> None:
        """Start the next PENDING iteration of a Map: ItemSelector, MapIterationStarted, run."""
        counts = parent.children
        child = execution.paths[f"{parent.id}.{counts['generation']}.{counts['next']}"]
        while child.phase == DONE:  # succeeded in a Map Run that was redriven
            counts["next"] += 1
            if counts["next"] >= counts["total"]:
                return
            child = execution.paths[f"{parent.id}.{counts['generation']}.{counts['next']}"]
        counts["next"] += 1
        counts["running"] += 1
        if counts.get("distributed"):  # items were prepared when the Map Run started; AWS records no iteration events
            self._start_child_execution(step, execution, parent, state, child)
            child.phase = READY
            step.touch(execution, child)
            step.run.append((execution, child))
            return
        selector = state.get("ItemSelector", state.get("Parameters"))
        if selector is not None:
            context = self._context(execution, parent).extended(Map={"Item": {"Index": child.index, "Value": child.data}})
            if _is_jsonata(execution, state):
                bindings = self._bindings(context, parent.effective)
                child.data = jsonata.render(selector, bindings, "ItemSelector")
            else:
                child.data = render(selector, parent.effective, context)
            child.data_text = None
        step.emit(execution, parent, "MapIterationStarted", "mapIterationStartedEventDetails", {"name": parent.state, "index": child.index})
        child.last_event = parent.last_event
        child.phase = READY
        step.touch(execution, child)
        step.run.append((execution, child))

    def _start_child_execution(self, step: Step, execution: Execution, parent: Path, state: dict, child: Path) -> None:
        """A child workflow execution of a Map Run: a row of its own, listable and describable, with its own history."""
        run_arn = parent.children["map_run"]
        arn = map_state.child_execution_arn(run_arn, child.index)
        redrive = (parent.children.get("redriven") or {}).get(str(child.index))
        if redrive is not None:  # a child that failed or was aborted before its Map Run was redriven
            count, next_id = redrive
            child.events_arn, child.last_event = arn, next_id - 1
            execution.child_next[arn] = next_id
            step.batch.executions[arn] = {
                "status": "RUNNING", "stopped": None, "output": None, "error": None, "cause": None, "redrive_count": count, "redrive_date": step.now,
            }
            step.emit(execution, child, "ExecutionRedriven", "executionRedrivenEventDetails", {"redriveCount": count})
            execution.child_contexts.pop(arn, None)  # read again, with RedriveCount and RedriveTime
            return
        definition = execution.child_definitions.get(parent.state)
        if definition is None:
            processor = {key: value for key, value in state["ItemProcessor"].items() if key != "ProcessorConfig"}
            if "QueryLanguage" in execution.definition and "QueryLanguage" not in processor:
                processor = {"QueryLanguage": execution.definition["QueryLanguage"], **processor}
            definition = execution.child_definitions[parent.state] = _dumps(processor)
        input_text = child.data_json()
        role_arn = execution.context["Execution"]["RoleArn"]
        items = child.data.get("Items") if parent.children.get("batched") and isinstance(child.data, dict) else None
        step.batch.new_executions.append({
            "arn": arn, "machine_arn": map_state.child_machine_arn(run_arn), "name": arn.rsplit(":", 1)[1], "definition": definition,
            "role_arn": role_arn, "input": input_text, "started": step.now,
            "map_run_arn": run_arn, "map_index": child.index, "item_count": len(items) if isinstance(items, list) else 1,
        })
        child.events_arn = arn
        child.last_event = 0
        execution.child_next[arn] = 1
        execution.child_contexts[arn] = child_context(arn, map_state.child_machine_arn(run_arn), json.loads(input_text), step.now, role_arn)
        step.emit(execution, child, "ExecutionStarted", "executionStartedEventDetails", {**_io_details("input", input_text), "roleArn": role_arn})
        child.last_event = 0  # as at the top level, the first StateEntered links to 0

    def _is_child_execution(self, execution: Execution, path: Path) -> bool:
        """Whether `path` is the root path of a Map Run's child execution."""
        if path.events_arn is None or path.parent is None:
            return False
        parent = execution.paths.get(path.parent)
        return parent is not None and parent.events_arn != path.events_arn

    def _abort_open(self, step: Step, execution: Execution, paths: list[Path]) -> None:
        """Child executions still running among `paths` are ABORTED, and Map Runs still open ABORTED too, as AWS stops them."""
        for path in paths:
            if self._is_child_execution(execution, path) and path.phase not in (PENDING, DONE):
                step.emit(execution, path, "ExecutionAborted", "executionAbortedEventDetails", {})
                step.batch.executions[path.events_arn] = {"status": "ABORTED", "stopped": step.now}
                step.batch.redrive_points[path.events_arn] = (path.record(), path.data_json())
                path.phase = DONE  # aborted once
            counts = path.children or {}
            if counts.get("distributed") and (path.phase == CHILDREN or (path.phase == RUNNING and (path.task or {}).get("kind") == "result_writer")):
                step.emit(execution, path, "MapRunAborted")
                _map_run_ended(step, counts["map_run"], "ABORTED")
                if path.phase == CHILDREN:
                    counts["unstarted"] = self._unstarted(execution, path)
                counts["distributed"] = False  # aborted once

    def _child_finished(self, step: Step, execution: Execution, child: Path, output: JSON, output_text: str) -> None:
        parent = execution.paths[child.parent]
        state = execution.states_of(parent)[parent.state]
        counts = parent.children
        child.phase, child.data, child.data_text = DONE, output, output_text
        step.touch(execution, child)
        counts["running"] -= 1
        counts["finished"] += 1
        step.touch(execution, parent)
        iteration_event = None
        if state["Type"] == "Map":
            if not counts.get("distributed"):  # a child execution's events are its own, not the parent's
                parent.last_event = child.last_event
                iteration_event = step.emit(execution, parent, "MapIterationSucceeded", "mapIterationSucceededEventDetails", {"name": parent.state, "index": child.index})
                # As AWS records it, the next iteration's MapIterationStarted follows the iteration's last event, not MapIterationSucceeded.
                parent.last_event = child.last_event
            try:
                if counts.get("distributed") and "max_concurrency" in counts:  # UpdateMapRun may have changed the limit
                    limit = counts["max_concurrency"] or counts["total"]
                    while counts["next"] < counts["total"] and counts["running"] < limit:
                        self._start_iteration(step, execution, parent, state)
                elif counts["next"] < counts["total"]:
                    self._start_iteration(step, execution, parent, state)
            except StatesError as error:
                self._children_failed(step, execution, parent, state, error.error, error.cause)
                return
        if counts["finished"] < counts["total"]:
            return
        prefix = f"{parent.id}.{counts['generation']}."
        outputs = [execution.paths[f"{prefix}{index}"].data for index in range(counts["total"])]
        self._remove_descendants(step, execution, parent)
        if not counts.get("distributed"):
            parent.last_event = iteration_event.id if iteration_event is not None else child.last_event
        if counts.get("distributed") and "ResultWriter" in state:
            self._write_results(step, execution, parent, state)
            return
        if counts.get("distributed"):
            step.emit(execution, parent, "MapRunSucceeded")
            # Without a ResultWriter the results go into the state's output: AWS counts them as written (a recorded DescribeMapRun).
            _map_run_ended(step, counts["map_run"], "SUCCEEDED", results_written=counts["total"], items_written=counts.get("items", counts["total"]))
        finished = step.emit(execution, parent, "MapStateSucceeded" if state["Type"] == "Map" else "ParallelStateSucceeded")
        if not counts.get("distributed"):
            # AWS's recorded histories: MapStateSucceeded follows the last MapIterationSucceeded, ParallelStateSucceeded the
            # last branch event, and the state's Exited event follows the same event, not the Succeeded one.
            parent.last_event = finished.previous_id
        try:
            self._complete(step, execution, parent, state, outputs)
        except StatesError as error:
            self._state_failed(step, execution, parent, state, error.error, error.cause)

    def _child_failed(self, step: Step, execution: Execution, child: Path, error: str | None, cause: str | None) -> None:
        parent = execution.paths[child.parent]
        state = execution.states_of(parent)[parent.state]
        counts = parent.children
        if not counts.get("distributed"):
            parent.last_event = child.last_event
        if counts.get("distributed"):
            counts["failed"] += 1
            tolerated_count, tolerated_percentage = counts["tolerated"]
            if not map_state.exceeds_threshold(counts["failed"], counts["total"], tolerated_count, tolerated_percentage):
                error_output = _error_details(error, cause)
                error_output = {"Error": error_output.get("error"), "Cause": error_output.get("cause")}
                self._child_finished(step, execution, child, error_output, _dumps(error_output))
                return
            self._children_failed(step, execution, parent, state, map_state.THRESHOLD_ERROR, map_state.THRESHOLD_CAUSE, failed=child)
            return
        if state["Type"] == "Map":
            step.emit(execution, parent, "MapIterationFailed", "mapIterationFailedEventDetails", {"name": parent.state, "index": child.index})
            parent.last_event = child.last_event  # MapStateFailed (or a retry's MapStateStarted) follows the iteration's last event, as AWS records it
        self._children_failed(step, execution, parent, state, error, cause, failed=child)

    def _children_failed(self, step: Step, execution: Execution, parent: Path, state: dict, error: str | None, cause: str | None, failed: Path | None = None) -> None:
        """Stop the other children, then fail the Parallel or Map state itself (Retry and Catch apply)."""
        if (parent.children or {}).get("distributed"):
            step.emit(execution, parent, "MapRunFailed", "mapRunFailedEventDetails", _error_details(error, cause))
            _map_run_ended(step, parent.children["map_run"], "FAILED")
            parent.children["unstarted"] = self._unstarted(execution, parent)
        elif state["Type"] == "Map":
            for other in self._direct_children(execution, parent):
                if other is not failed and other.phase not in (PENDING, DONE):
                    step.emit(execution, parent, "MapIterationAborted", "mapIterationAbortedEventDetails", {"name": parent.state, "index": other.index})
        if not (parent.children or {}).get("distributed"):
            parent.children["redrive"] = self._redrive_snapshot(execution, parent)
        self._remove_descendants(step, execution, parent)
        if not self._retries(parent, state, error or ""):  # AWS records no MapStateFailed for an attempt a Retry follows
            step.emit(execution, parent, "MapStateFailed" if state["Type"] == "Map" else "ParallelStateFailed")
        parent.phase = READY
        self._state_failed(step, execution, parent, state, error or "", cause)

    def _unstarted(self, execution: Execution, parent: Path) -> dict:
        """The inputs of a Map Run's children not started yet, by index: what a redrive of a run whose items an ItemReader read starts them with."""
        return {str(child.index): child.data for child in self._direct_children(execution, parent) if child.phase == PENDING}

    def _redrive_snapshot(self, execution: Execution, parent: Path) -> dict:
        """What a redrive of a failed Parallel or inline Map needs: the outputs of the children that succeeded,
        where the failed and aborted ones stood (their path records), the items not started yet."""
        snapshot: dict = {"total": parent.children["total"], "next": parent.children["next"], "effective": parent.effective, "done": {}, "points": {}, "pending": {}}
        for child in self._direct_children(execution, parent):
            if child.phase == DONE:
                snapshot["done"][str(child.index)] = child.data
            elif child.phase == PENDING:
                snapshot["pending"][str(child.index)] = child.data
            else:
                snapshot["points"][str(child.index)] = [child.record(), child.data_json()]
        return snapshot

    def redrive_children(self, step: Step, execution: Execution, path: Path, snapshot: dict) -> bool:
        """Redrive a failed Parallel or inline Map as AWS does: only its branches or iterations that failed or were aborted.

        The children that succeeded keep their outputs; the others resume in the
        state they stopped in (a nested Parallel or inline Map among them is
        redriven the same way); a Map's iterations not started yet start as
        its concurrency allows. Returns False, having done nothing, when there
        is nothing to resume.
        """
        if not snapshot.get("points"):
            return False
        state = execution.states_of(path)[path.state]
        path.entered = step.now
        path.retries = [0] * len(state.get("Retry", ()))
        path.serial += 1
        generation = self._begin_children(step, execution, path, snapshot["total"])
        counts = path.children
        path.effective = snapshot.get("effective")
        processor = state.get("ItemProcessor", state.get("Iterator"))
        for index in range(snapshot["total"]):
            key = str(index)
            branch = index if state["Type"] == "Parallel" else 0
            if key in snapshot["done"]:
                child = self._child(execution, path, generation, index, branch, path.state, DONE, snapshot["done"][key])
                counts["finished"] += 1
            elif key in snapshot["points"]:
                record, data = snapshot["points"][key]
                point = Path.load(path.id, record, data)
                child = self._child(execution, path, generation, index, branch, point.state, READY, point.data)
                child.data_text, child.variables = data, point.variables
                counts["running"] += 1
                inner = (point.children or {}).get("redrive")
                inner_state = execution.states_of(child)[child.state]
                if inner and inner_state["Type"] in ("Parallel", "Map") and self.redrive_children(step, execution, child, inner):
                    pass
                elif not (inner_state["Type"] == "Map" and map_state.is_distributed(inner_state) and self._redrive_inner_map_run(step, execution, child, point.children)):
                    step.run.append((execution, child))
            else:
                child = self._child(execution, path, generation, index, branch, processor["StartAt"], PENDING, snapshot["pending"][key])
            step.touch(execution, child)
        counts["next"] = snapshot["next"]
        return True

    def _redrive_inner_map_run(self, step: Step, execution: Execution, path: Path, counts: dict | None) -> bool:
        """A Distributed Map inside a redriven branch or iteration: redrive its failed or aborted Map Run, as at the top level."""
        rows = self.map_run_rows(counts["map_run"]) if counts and counts.get("map_run") else None
        if rows is None or rows[0]["status"] not in ("FAILED", "ABORTED"):
            return False
        run, children = rows
        return self.redrive_map_run(step, execution, path, run, children, counts.get("unstarted"))

    def map_run_rows(self, map_run_arn: str) -> tuple[dict, list[dict]] | None:
        """A Map Run's journal row and its children's (the engine reads them from its journal); None: not known."""
        return None

    def _direct_children(self, execution: Execution, parent: Path) -> list[Path]:
        prefix = f"{parent.id}.{parent.children['generation']}."
        return [
            execution.paths[f"{prefix}{index}"]
            for index in range(parent.children["total"])
            if f"{prefix}{index}" in execution.paths
        ]

    def _remove_descendants(self, step: Step, execution: Execution, parent: Path) -> None:
        prefix = f"{parent.id}."
        removed = [path for path_id, path in execution.paths.items() if path_id.startswith(prefix)]
        self._abort_open(step, execution, removed)
        for path in removed:
            step.remove(execution, path)

    # ------------------------------------------------------------------ completing and failing

    def _complete(self, step: Step, execution: Execution, path: Path, state: dict, result: JSON) -> None:
        """ResultSelector, ResultPath and OutputPath on a Task/Parallel/Map result, then leave the state."""
        context = self._context(execution, path)
        if _is_jsonata(execution, state):
            self._leave_jsonata(step, execution, path, state, context, result, result=result)
            return
        assign = _assign(state, result, context)
        if "ResultSelector" in state:
            result = render(state["ResultSelector"], result, context)
        output = output_path(state, write_result(state.get("ResultPath", "$"), path.data, result), context)
        self._exit(step, execution, path, state, output, assign=assign)

    def _exit(self, step: Step, execution: Execution, path: Path, state: dict, output: JSON, target: str | None = None, assign: dict | None = None) -> None:
        """`<Type>StateExited`, then the next state (or the end of the path); `assign` takes effect from the next state on."""
        if assign:
            path.variables = {**(path.variables or {}), **assign}
        output_text = _dumps(output)
        _check_size(output_text, f"The output of state '{path.state}'")
        step.emit(execution, path, _exited_type(state["Type"]), "stateExitedEventDetails", _io_details("output", output_text, name=path.state))
        target = target or state.get("Next")
        if target is None:
            self._finish_path(step, execution, path, output, output_text)
            return
        path.move_to(target, output, output_text)
        step.touch(execution, path)
        step.run.append((execution, path))

    def _state_failed(self, step: Step, execution: Execution, path: Path, state: dict, error: str, cause: str | None) -> None:
        """A state failed: its Retry, then its Catch, else the path fails (a None cause stays absent)."""
        if error in _RUNTIME_ERRORS and cause is not None and not cause.startswith(_CAUSE_PREFIX):
            # How Step Functions words a failure of the state machine's own evaluation.
            cause = f"{_CAUSE_PREFIX} the state '{path.state}' (entered at the event id #{path.entered_event}). {cause}"
        kind = state["Type"]
        if kind in ("Task", "Parallel", "Map") and error not in _UNCATCHABLE:
            for index, retrier in enumerate(state.get("Retry", ())):
                if not _matches(retrier["ErrorEquals"], error):
                    continue
                attempts = path.retries[index]
                if attempts >= retrier.get("MaxAttempts", 3):
                    break  # the first matching retrier is exhausted: go to Catch
                path.retries[index] = attempts + 1
                path.phase = RETRY_WAIT
                path.serial += 1
                path.deadline = step.now + _backoff(retrier, attempts)
                step.touch(execution, path)
                step.timers.append((path.deadline, execution.arn, path.id, path.serial, "retry"))
                return
            for catcher in state.get("Catch", ()):
                if _matches(catcher["ErrorEquals"], error):
                    error_output = {"Error": error, "Cause": cause or ""}
                    try:
                        context = self._context(execution, path)
                        if _is_jsonata(execution, state):
                            bindings = self._bindings(context, path.data, error_output=error_output)
                            output = jsonata.render(catcher["Output"], bindings, "Output") if "Output" in catcher else error_output
                            assign = jsonata.render(catcher["Assign"], bindings, "Assign") if "Assign" in catcher else None
                        else:
                            assign = _assign(catcher, error_output, context)
                            output = write_result(catcher.get("ResultPath", "$"), path.data, error_output)
                    except StatesError as failure:
                        self._fail_path(step, execution, path, failure.error, failure.cause)
                        return
                    self._exit(step, execution, path, state, output, catcher["Next"], assign=assign)
                    return
        self._fail_path(step, execution, path, error, cause)

    def _retries(self, path: Path, state: dict, error: str) -> bool:
        """Whether `_state_failed` will retry the state for `error` (its first matching retrier has attempts left)."""
        if error in _UNCATCHABLE:
            return False
        for index, retrier in enumerate(state.get("Retry", ())):
            if _matches(retrier["ErrorEquals"], error):
                return path.retries[index] < retrier.get("MaxAttempts", 3)
        return False

    def _finish_path(self, step: Step, execution: Execution, path: Path, output: JSON, output_text: str) -> None:
        if path.parent is not None:
            if self._is_child_execution(execution, path):
                step.emit(execution, path, "ExecutionSucceeded", "executionSucceededEventDetails", _io_details("output", output_text))
                step.batch.executions[path.events_arn] = {"status": "SUCCEEDED", "stopped": step.now, "output": output_text}
                execution.child_contexts.pop(path.events_arn, None)
            self._child_finished(step, execution, path, output, output_text)
            return
        step.emit(execution, path, "ExecutionSucceeded", "executionSucceededEventDetails", _io_details("output", output_text))
        self._close(step, execution, "SUCCEEDED", output=output_text)

    def _fail_path(self, step: Step, execution: Execution, path: Path, error: str | None, cause: str | None) -> None:
        if path.parent is not None:
            if self._is_child_execution(execution, path):
                step.emit(execution, path, "ExecutionFailed", "executionFailedEventDetails", _error_details(error, cause))
                step.batch.executions[path.events_arn] = {"status": "FAILED", "stopped": step.now, "error": error, "cause": cause}
                step.batch.redrive_points[path.events_arn] = (path.record(), path.data_json())  # where a Map Run redrive resumes it
                execution.child_contexts.pop(path.events_arn, None)
                path.phase = DONE  # ended: not to be aborted with the rest of the Map Run
            self._child_failed(step, execution, path, error, cause)
            return
        step.emit(execution, path, "ExecutionFailed", "executionFailedEventDetails", _error_details(error, cause))
        self._close(step, execution, "FAILED", error=error, cause=cause)

    def _close(self, step: Step, execution: Execution, status: str, **columns: str | None) -> None:
        if status != "SUCCEEDED":
            self._abort_open(step, execution, list(execution.paths.values()))
        execution.closed = True
        execution.paths.clear()
        step.batch.executions[execution.arn] = {"status": status, "stopped": step.now, **columns}
        step.batch.removed_executions_paths.add(execution.arn)
        step.closed.append(execution)

    def _context(self, execution: Execution, path: Path, task: bool = False) -> Context:
        state = {"Name": path.state, "EnteredTime": iso_timestamp(path.entered)}
        if task:  # AWS gives RetryCount in Task states only
            state["RetryCount"] = sum(path.retries)
        values = execution.context
        if path.events_arn is not None:  # in a child execution of a Map Run: its own Execution and StateMachine
            values = execution.child_contexts.get(path.events_arn)
            if values is None:
                values = execution.child_contexts[path.events_arn] = self.load_child_context(path.events_arn)
        return Context.of(values, lambda: self._visible(execution, path), State=state)

    def _visible(self, execution: Execution, path: Path) -> dict:
        """The variables `path` reads: its own over those of the paths that contain it."""
        outer = []
        parent_id = path.parent
        while parent_id is not None and (parent := execution.paths.get(parent_id)) is not None:
            outer.append(parent.variables)
            parent_id = parent.parent
        return visible(path.variables, iter(outer))

    def _bindings(self, context: Context, state_input: JSON, **more: JSON) -> dict:
        """What a JSONata expression reads: `$states` and the workflow variables."""
        states = {"input": state_input, "context": dict(context)}
        for name, value in more.items():
            states["errorOutput" if name == "error_output" else name] = value
        return {**context.variables, "states": states}

    # ------------------------------------------------------------------ JSONata states

    def _advance_jsonata(self, step: Step, execution: Execution, path: Path, state: dict, kind: str) -> None:
        """Enter a state whose query language is JSONata (Arguments, Output, Assign, Condition, Items)."""
        context = self._context(execution, path, task=kind == "Task")
        if kind in ("Pass", "Succeed"):
            self._leave_jsonata(step, execution, path, state, context, path.data)
        elif kind == "Choice":
            bindings = self._bindings(context, path.data)
            for index, rule in enumerate(state["Choices"]):
                if _condition(rule["Condition"], bindings, f"Choices[{index}].Condition"):
                    self._leave_jsonata(step, execution, path, rule if ("Output" in rule or "Assign" in rule) else state, context, path.data, target=rule["Next"], state_type="Choice")
                    return
            if "Default" not in state:
                raise StatesError("States.NoChoiceMatched", "No choice rule matched the state input and the Choice state has no Default")
            self._leave_jsonata(step, execution, path, state, context, path.data, target=state["Default"])
        elif kind == "Wait":
            bindings = self._bindings(context, path.data)
            self._wait_until(step, execution, path, state, _jsonata_due(state, bindings, step.now))
        elif kind == "Fail":
            bindings = self._bindings(context, path.data)
            error, cause = (jsonata.render(state[name], bindings, name) if name in state else None for name in ("Error", "Cause"))
            for name, value in (("Error", error), ("Cause", cause)):
                if value is not None and not isinstance(value, str):
                    raise StatesError(jsonata.QUERY_ERROR, f"The {name} of state '{path.state}' is not a string: {_dumps(value)}")
            self._fail_path(step, execution, path, error, cause)
        elif kind == "Task":
            self._attempt_task(step, execution, path, state)
        elif kind == "Parallel":
            self._start_parallel(step, execution, path, state)
        else:
            self._start_map(step, execution, path, state)

    def _leave_jsonata(self, step: Step, execution: Execution, path: Path, state: dict, context: Context, default: JSON, target: str | None = None, state_type: str | None = None, **results: JSON) -> None:
        """Output and Assign, evaluated together from the same input, result and variables; then exit."""
        bindings = self._bindings(context, path.data, **results)
        output = jsonata.render(state["Output"], bindings, "Output") if "Output" in state else default
        assign = jsonata.render(state["Assign"], bindings, "Assign") if "Assign" in state else None
        exiting = state if state_type is None else {"Type": state_type}
        self._exit(step, execution, path, exiting, output, target, assign=assign)


# ---------------------------------------------------------------------- helpers


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_RECORD_FIELDS = tuple(item.name for item in fields(Path) if item.name not in ("id", "data", "data_text"))


def child_context(arn: str, machine_arn: str, execution_input: JSON, started: float, role_arn: str) -> dict:
    """The fixed parts of a child execution's context object, as of a top-level execution's."""
    return {
        "Execution": {"Id": arn, "Name": arn.rsplit(":", 1)[1], "Input": execution_input, "StartTime": iso_timestamp(started), "RoleArn": role_arn},
        "StateMachine": {"Id": machine_arn, "Name": machine_arn.rsplit(":", 1)[1]},
    }


def _map_run_ended(step: Step, map_run_arn: str, status: str, **columns: int) -> None:
    step.batch.map_runs[map_run_arn] = {"status": status, "stopped": step.now, **columns}


def _check_size(text: str, what: str) -> None:
    # A character is at most 4 bytes in UTF-8: encode only texts that could be over.
    if len(text) * 4 > PAYLOAD_LIMIT_BYTES and len(text.encode()) > PAYLOAD_LIMIT_BYTES:
        raise StatesError("States.DataLimitExceeded", f"{what} has a size of {len(text.encode())} bytes, over the limit of {PAYLOAD_LIMIT_BYTES}")


def _is_jsonata(execution: Execution, state: dict) -> bool:
    return state.get("QueryLanguage", execution.definition.get("QueryLanguage")) == "JSONata"


def _assign(state: dict, source: JSON, context: dict) -> dict | None:
    """A JSONPath state's Assign, rendered like Parameters from `source` (its result, or its input)."""
    return render(state["Assign"], source, context) if "Assign" in state else None


def _condition(condition: JSON, bindings: dict, field_name: str) -> bool:
    value = jsonata.render(condition, bindings, field_name)
    if not isinstance(value, bool):
        raise StatesError(jsonata.QUERY_ERROR, f"The Condition of a choice rule must be a boolean, got {_dumps(value)}")
    return value


def _jsonata_due(state: dict, bindings: dict, now: float) -> float:
    if "Seconds" in state:
        seconds = jsonata.render(state["Seconds"], bindings, "Seconds")
        if not isinstance(seconds, int) or isinstance(seconds, bool) or not 0 <= seconds <= 99999999:
            raise StatesError(jsonata.QUERY_ERROR, f"The Seconds field must be an integer from 0 to 99999999, got {_dumps(seconds)}")
        return now + seconds
    stamp = jsonata.render(state["Timestamp"], bindings, "Timestamp")
    due = parse_timestamp(stamp) if isinstance(stamp, str) else None
    if due is None:
        raise StatesError(jsonata.QUERY_ERROR, f"The Timestamp field must be an RFC 3339 timestamp such as 2016-03-14T01:59:00Z, got {_dumps(stamp)}")
    return due


def _jsonata_seconds(state: dict, field_name: str, bindings: dict) -> int | None:
    if field_name not in state:
        return None
    value = jsonata.render(state[field_name], bindings, field_name)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise StatesError(jsonata.QUERY_ERROR, f"The {field_name} field must be a positive integer, got {_dumps(value)}")
    return value


def _map_setting(holder: dict, name: str, bindings: dict | None, effective: JSON, context: dict, check: Callable) -> JSON:
    """A Map setting given as a value, a JSONata expression, or (JSONPath) through `<name>Path`; None when absent."""
    if name in holder:
        value = holder[name]
        if bindings is not None and jsonata.is_expression(value):
            value = jsonata.render(value, bindings, name)
    elif f"{name}Path" in holder:
        value = read_path(holder[f"{name}Path"], effective, context)
    else:
        return None
    return check(value, name)


def _max_concurrency(state: dict, bindings: dict | None, effective: JSON, context: dict) -> int:
    if bindings is not None and jsonata.is_expression(state.get("MaxConcurrency")):
        value = jsonata.render(state["MaxConcurrency"], bindings, "MaxConcurrency")
    elif "MaxConcurrencyPath" in state:
        value = read_path(state["MaxConcurrencyPath"], effective, context)
    else:
        return state.get("MaxConcurrency", 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise StatesError("States.Runtime", f"The MaxConcurrency of the Map state must be a non-negative integer, got {_dumps(value)}")
    return value


def _parameters(state: dict, data: JSON, context: dict) -> JSON:
    return render(state["Parameters"], data, context) if "Parameters" in state else data


def _seconds(state: dict, field_name: str, data: JSON) -> int | None:
    if field_name in state:
        return state[field_name]
    path = state.get(f"{field_name}Path")
    if path is None:
        return None
    value = read_path(path, data)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise StatesError("States.Runtime", f"{field_name}Path '{path}' does not reference a positive integer: {_dumps(value)}")
    return value


def _matches(names: list[str], error: str) -> bool:
    if error in names:
        return True
    if "States.ALL" in names:
        return error not in _NOT_MATCHED_BY_ALL
    # States.TaskFailed matches every error but States.Timeout (and those States.ALL does not match).
    return "States.TaskFailed" in names and error != "States.Timeout" and error not in _NOT_MATCHED_BY_ALL


def _backoff(retrier: dict, attempts: int) -> float:
    delay = retrier.get("IntervalSeconds", 1) * retrier.get("BackoffRate", 2.0) ** attempts
    if "MaxDelaySeconds" in retrier:
        delay = min(delay, retrier["MaxDelaySeconds"])
    if retrier.get("JitterStrategy") == "FULL":
        delay = random.uniform(0, delay)
    return delay


def _task_token(execution_arn: str, path: Path) -> str:
    """A token that names its task, so a stale or foreign token can be told apart after a restart."""
    raw = _dumps([execution_arn, path.id, path.serial, secrets.token_hex(8)])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def parse_task_token(token: str) -> tuple[str, str, int] | None:
    """(execution ARN, path id, serial) of a token this engine issued, else None."""
    try:
        arn, path_id, serial, _ = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):
        return None
    if not (isinstance(arn, str) and isinstance(path_id, str) and isinstance(serial, int)):
        return None
    return arn, path_id, serial


def _invoke_response(payload: str) -> dict:
    """What `arn:aws:states:::lambda:invoke` returns: Lambda's Invoke response with the payload decoded."""
    return {
        "ExecutedVersion": "$LATEST",
        "Payload": json.loads(payload),
        "SdkHttpMetadata": {
            "AllHttpHeaders": {"Content-Type": ["application/json"], "X-Amz-Executed-Version": ["$LATEST"]},
            "HttpHeaders": {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST"},
            "HttpStatusCode": 200,
        },
        "SdkResponseMetadata": {"RequestId": secrets.token_hex(16)},
        "StatusCode": 200,
    }


def _task_resource(task: dict) -> dict:
    return {"resourceType": "lambda", "resource": "invoke.waitForTaskToken" if task["kind"] == "token" else "invoke"}


def _io_details(field_name: str, text: str, name: str | None = None) -> dict:
    details = {"name": name} if name is not None else {}
    details[field_name] = text
    details[f"{field_name}Details"] = {"truncated": False}
    return details


def _error_details(error: str | None, cause: str | None) -> dict:
    return {key: value for key, value in (("error", error), ("cause", cause)) if value is not None}


def _entered_type(kind: str) -> str:
    return f"{kind}StateEntered"


def _exited_type(kind: str) -> str:
    return f"{kind}StateExited"
