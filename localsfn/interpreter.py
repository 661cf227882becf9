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

from localsfn.choice import choose
from localsfn.errors import StatesError
from localsfn.journal import Batch, Event
from localsfn.jsonpath import read_path, write_result
from localsfn.lambdas import REGION, Handler, Invocation, function_arn, not_found_cause
from localsfn.payload import render
from localsfn.timestamps import iso_timestamp, parse_timestamp
from localsfn.validation import LAMBDA_INVOKE, LAMBDA_INVOKE_WAIT

JSON = Any
PAYLOAD_LIMIT_BYTES = 256 * 1024
DEFAULT_LAMBDA_TIMEOUT_SECONDS = 900.0

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
_RUNTIME_ERRORS = {"States.Runtime", "States.IntrinsicFailure"}
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

    def record(self) -> str:
        """Everything but the data, as JSON (the journal keeps the data in a column of its own)."""
        return _dumps({name: getattr(self, name) for name in _RECORD_FIELDS})

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
        previous = path.last_event if path is not None else execution.next_event_id - 1
        event = Event(execution.arn, execution.next_event_id, previous, kind, self.now, details_key, details)
        execution.next_event_id += 1
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
            if kind == "Pass":
                self._pass(step, execution, path, state)
            elif kind == "Task":
                self._attempt_task(step, execution, path, state)
            elif kind == "Choice":
                self._choice(step, execution, path, state)
            elif kind == "Wait":
                self._wait(step, execution, path, state)
            elif kind == "Succeed":
                output = _output_path(state, _input_path(state, path.data, self._context(execution, path)), self._context(execution, path))
                self._exit(step, execution, path, state, output)
            elif kind == "Fail":
                self._fail_state(step, execution, path, state)
            elif kind == "Parallel":
                self._start_parallel(step, execution, path, state)
            elif kind == "Map":
                self._start_map(step, execution, path, state)
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
                output = _output_path(state, _input_path(state, path.data, context), context)
                self._exit(step, execution, path, state, output)
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
        root = Path(id="0", scope=[], state=execution.definition["StartAt"], phase=READY, data=json.loads(input_text), last_event=1)
        execution.paths[root.id] = root
        step.touch(execution, root)
        step.run.append((execution, root))
        timeout = execution.definition.get("TimeoutSeconds")
        if timeout:
            step.timers.append((execution.started + timeout, execution.arn, root.id, -1, "execution_timeout"))

    def abort(self, step: Step, execution: Execution, error: str | None, cause: str | None) -> None:
        """StopExecution: ExecutionAborted; in-flight work is dropped."""
        details = {key: value for key, value in (("error", error), ("cause", cause)) if value is not None}
        step.emit(execution, None, "ExecutionAborted", "executionAbortedEventDetails", details)
        self._close(step, execution, "ABORTED", error=error, cause=cause)

    def time_out(self, step: Step, execution: Execution) -> None:
        cause = f"The execution ran longer than its TimeoutSeconds ({execution.definition['TimeoutSeconds']} s)."
        step.emit(execution, None, "ExecutionTimedOut", "executionTimedOutEventDetails", {"error": "States.Timeout", "cause": cause})
        self._close(step, execution, "TIMED_OUT", error="States.Timeout", cause=cause)

    # ------------------------------------------------------------------ states

    def _pass(self, step: Step, execution: Execution, path: Path, state: dict) -> None:
        context = self._context(execution, path)
        effective = _parameters(state, _input_path(state, path.data, context), context)
        result = state.get("Result", effective)
        output = _output_path(state, write_result(state.get("ResultPath", "$"), path.data, result), context)
        self._exit(step, execution, path, state, output)

    def _choice(self, step: Step, execution: Execution, path: Path, state: dict) -> None:
        context = self._context(execution, path)
        effective = _input_path(state, path.data, context)
        target = choose(state, effective)
        output = _output_path(state, effective, context)
        self._exit(step, execution, path, state, output, target)

    def _wait(self, step: Step, execution: Execution, path: Path, state: dict) -> None:
        effective = _input_path(state, path.data, self._context(execution, path))
        if "Seconds" in state:
            due = step.now + state["Seconds"]
        elif "Timestamp" in state:
            due = parse_timestamp(state["Timestamp"])
        elif "SecondsPath" in state:
            seconds = read_path(state["SecondsPath"], effective)
            if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0:
                raise StatesError("States.Runtime", f"The SecondsPath parameter does not reference a non-negative integer: {_dumps(seconds)}")
            due = step.now + seconds
        else:
            stamp = read_path(state["TimestampPath"], effective)
            due = parse_timestamp(stamp) if isinstance(stamp, str) else None
            if due is None:
                raise StatesError("States.Runtime", f"The TimestampPath parameter does not reference a valid ISO-8601 timestamp: {_dumps(stamp)}")
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
        context = self._context(execution, path)
        kind = "token" if resource == LAMBDA_INVOKE_WAIT else "invoke" if resource == LAMBDA_INVOKE else "function"
        if kind == "token":
            path.token = _task_token(execution.arn, path)
            context["Task"] = {"Token": path.token}
        effective = _parameters(state, _input_path(state, path.data, context), context)
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
        effective = _parameters(state, _input_path(state, path.data, context), context)
        step.emit(execution, path, "ParallelStateStarted")
        generation = self._begin_children(step, execution, path, len(state["Branches"]))
        for index, branch in enumerate(state["Branches"]):
            child = self._child(execution, path, generation, index, index, branch["StartAt"], READY, effective)
            step.touch(execution, child)
            step.run.append((execution, child))
        path.children["next"] = path.children["running"] = len(state["Branches"])

    def _start_map(self, step: Step, execution: Execution, path: Path, state: dict) -> None:
        context = self._context(execution, path)
        effective = _input_path(state, path.data, context)
        items = read_path(state.get("ItemsPath", "$"), effective, context)
        if not isinstance(items, list):
            raise StatesError("States.Runtime", f"The ItemsPath of state '{path.state}' does not reference an array: {_dumps(items)[:200]}")
        step.emit(execution, path, "MapStateStarted", "mapStateStartedEventDetails", {"length": len(items)})
        if not items:
            step.emit(execution, path, "MapStateSucceeded")
            self._complete(step, execution, path, state, [])
            return
        generation = self._begin_children(step, execution, path, len(items))
        path.effective = effective
        processor = state.get("ItemProcessor", state.get("Iterator"))
        for index, item in enumerate(items):
            step.touch(execution, self._child(execution, path, generation, index, 0, processor["StartAt"], PENDING, item))
        limit = state.get("MaxConcurrency", 0) or len(items)
        for _ in range(min(limit, len(items))):
            self._start_iteration(step, execution, path, state)

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
        )
        execution.paths[child.id] = child
        return child

    def _start_iteration(self, step: Step, execution: Execution, parent: Path, state: dict) -> None:
        """Start the next PENDING iteration of a Map: ItemSelector, MapIterationStarted, run."""
        counts = parent.children
        child = execution.paths[f"{parent.id}.{counts['generation']}.{counts['next']}"]
        counts["next"] += 1
        counts["running"] += 1
        selector = state.get("ItemSelector", state.get("Parameters"))
        if selector is not None:
            context = {**self._context(execution, parent), "Map": {"Item": {"Index": child.index, "Value": child.data}}}
            child.data, child.data_text = render(selector, parent.effective, context), None
        step.emit(execution, parent, "MapIterationStarted", "mapIterationStartedEventDetails", {"name": parent.state, "index": child.index})
        child.last_event = parent.last_event
        child.phase = READY
        step.touch(execution, child)
        step.run.append((execution, child))

    def _child_finished(self, step: Step, execution: Execution, child: Path, output: JSON, output_text: str) -> None:
        parent = execution.paths[child.parent]
        state = execution.states_of(parent)[parent.state]
        counts = parent.children
        child.phase, child.data, child.data_text = DONE, output, output_text
        step.touch(execution, child)
        counts["running"] -= 1
        counts["finished"] += 1
        step.touch(execution, parent)
        if state["Type"] == "Map":
            parent.last_event = child.last_event
            step.emit(execution, parent, "MapIterationSucceeded", "mapIterationSucceededEventDetails", {"name": parent.state, "index": child.index})
            try:
                if counts["next"] < counts["total"]:
                    self._start_iteration(step, execution, parent, state)
            except StatesError as error:
                self._children_failed(step, execution, parent, state, error.error, error.cause)
                return
        if counts["finished"] < counts["total"]:
            return
        prefix = f"{parent.id}.{counts['generation']}."
        outputs = [execution.paths[f"{prefix}{index}"].data for index in range(counts["total"])]
        self._remove_descendants(step, execution, parent)
        parent.last_event = child.last_event
        step.emit(execution, parent, "MapStateSucceeded" if state["Type"] == "Map" else "ParallelStateSucceeded")
        try:
            self._complete(step, execution, parent, state, outputs)
        except StatesError as error:
            self._state_failed(step, execution, parent, state, error.error, error.cause)

    def _child_failed(self, step: Step, execution: Execution, child: Path, error: str | None, cause: str | None) -> None:
        parent = execution.paths[child.parent]
        state = execution.states_of(parent)[parent.state]
        parent.last_event = child.last_event
        if state["Type"] == "Map":
            step.emit(execution, parent, "MapIterationFailed", "mapIterationFailedEventDetails", {"name": parent.state, "index": child.index})
        self._children_failed(step, execution, parent, state, error, cause, failed=child)

    def _children_failed(self, step: Step, execution: Execution, parent: Path, state: dict, error: str | None, cause: str | None, failed: Path | None = None) -> None:
        """Stop the other children, then fail the Parallel or Map state itself (Retry and Catch apply)."""
        if state["Type"] == "Map":
            for other in self._direct_children(execution, parent):
                if other is not failed and other.phase not in (PENDING, DONE):
                    step.emit(execution, parent, "MapIterationAborted", "mapIterationAbortedEventDetails", {"name": parent.state, "index": other.index})
        self._remove_descendants(step, execution, parent)
        step.emit(execution, parent, "MapStateFailed" if state["Type"] == "Map" else "ParallelStateFailed")
        parent.phase = READY
        self._state_failed(step, execution, parent, state, error or "", cause or "")

    def _direct_children(self, execution: Execution, parent: Path) -> list[Path]:
        prefix = f"{parent.id}.{parent.children['generation']}."
        return [
            execution.paths[f"{prefix}{index}"]
            for index in range(parent.children["total"])
            if f"{prefix}{index}" in execution.paths
        ]

    def _remove_descendants(self, step: Step, execution: Execution, parent: Path) -> None:
        prefix = f"{parent.id}."
        for path_id in [path_id for path_id in execution.paths if path_id.startswith(prefix)]:
            step.remove(execution, execution.paths[path_id])

    # ------------------------------------------------------------------ completing and failing

    def _complete(self, step: Step, execution: Execution, path: Path, state: dict, result: JSON) -> None:
        """ResultSelector, ResultPath and OutputPath on a Task/Parallel/Map result, then leave the state."""
        context = self._context(execution, path)
        if "ResultSelector" in state:
            result = render(state["ResultSelector"], result, context)
        output = _output_path(state, write_result(state.get("ResultPath", "$"), path.data, result), context)
        self._exit(step, execution, path, state, output)

    def _exit(self, step: Step, execution: Execution, path: Path, state: dict, output: JSON, target: str | None = None) -> None:
        """`<Type>StateExited`, then the next state (or the end of the path)."""
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

    def _state_failed(self, step: Step, execution: Execution, path: Path, state: dict, error: str, cause: str) -> None:
        """A state failed: its Retry, then its Catch, else the path fails."""
        if error in _RUNTIME_ERRORS and not cause.startswith(_CAUSE_PREFIX):
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
                    try:
                        output = write_result(catcher.get("ResultPath", "$"), path.data, {"Error": error, "Cause": cause})
                    except StatesError as failure:
                        self._fail_path(step, execution, path, failure.error, failure.cause)
                        return
                    self._exit(step, execution, path, state, output, catcher["Next"])
                    return
        self._fail_path(step, execution, path, error, cause)

    def _finish_path(self, step: Step, execution: Execution, path: Path, output: JSON, output_text: str) -> None:
        if path.parent is not None:
            self._child_finished(step, execution, path, output, output_text)
            return
        step.emit(execution, path, "ExecutionSucceeded", "executionSucceededEventDetails", _io_details("output", output_text))
        self._close(step, execution, "SUCCEEDED", output=output_text)

    def _fail_path(self, step: Step, execution: Execution, path: Path, error: str | None, cause: str | None) -> None:
        if path.parent is not None:
            self._child_failed(step, execution, path, error, cause)
            return
        step.emit(execution, path, "ExecutionFailed", "executionFailedEventDetails", _error_details(error, cause))
        self._close(step, execution, "FAILED", error=error, cause=cause)

    def _close(self, step: Step, execution: Execution, status: str, **columns: str | None) -> None:
        execution.closed = True
        execution.paths.clear()
        step.batch.executions[execution.arn] = {"status": status, "stopped": step.now, **columns}
        step.batch.removed_executions_paths.add(execution.arn)
        step.closed.append(execution)

    def _context(self, execution: Execution, path: Path) -> dict:
        return {
            **execution.context,
            "State": {"Name": path.state, "EnteredTime": iso_timestamp(path.entered), "RetryCount": sum(path.retries)},
        }


# ---------------------------------------------------------------------- helpers


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_RECORD_FIELDS = tuple(item.name for item in fields(Path) if item.name not in ("id", "data", "data_text"))


def _check_size(text: str, what: str) -> None:
    # A character is at most 4 bytes in UTF-8: encode only texts that could be over.
    if len(text) * 4 > PAYLOAD_LIMIT_BYTES and len(text.encode()) > PAYLOAD_LIMIT_BYTES:
        raise StatesError("States.DataLimitExceeded", f"{what} has a size of {len(text.encode())} bytes, over the limit of {PAYLOAD_LIMIT_BYTES}")


def _input_path(state: dict, data: JSON, context: dict) -> JSON:
    if "InputPath" not in state:
        return data
    return {} if state["InputPath"] is None else read_path(state["InputPath"], data, context)


def _output_path(state: dict, data: JSON, context: dict) -> JSON:
    if "OutputPath" not in state:
        return data
    return {} if state["OutputPath"] is None else read_path(state["OutputPath"], data, context)


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
