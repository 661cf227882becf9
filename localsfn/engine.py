"""The engine: state machines, executions, one loop thread, timers and a pool for Lambda calls.

All interpretation happens on the engine's loop thread. Each turn of the
loop takes the work that is ready (API commands, Lambda results, due
timers, paths to move on), makes one interpreter step of each, commits
everything those steps produced to the journal in one transaction, and
only then carries out their effects: paths to run on, Lambda calls to
make, timers to arm. Waiting costs a timer in a heap, not a thread;
Lambda handlers (blocking Python functions) run on a small pool.

On construction the engine resumes every RUNNING execution in its
journal from where it stopped: Waits and Retry backoffs keep their due
times, a Lambda call that was in flight is made again, completed tasks
are never run again.
"""

from __future__ import annotations

import heapq
import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path as FilePath
from typing import Any

from localsfn import interpreter
from localsfn.clock import Clock, SystemClock, VirtualClock
from localsfn.errors import ServiceError
from localsfn.interpreter import (
    AWAITING_TOKEN,
    PAYLOAD_LIMIT_BYTES,
    READY,
    RUNNING,
    Execution,
    Interpreter,
    Path,
    Step,
)
from localsfn.journal import Journal
from localsfn.lambdas import (
    ACCOUNT,
    REGION,
    Handler,
    Invocation,
    invoke,
    not_found_cause,
    unqualified,
)
from localsfn.timestamps import as_datetime
from localsfn.validation import validate

_log = logging.getLogger(__name__)
DEFAULT_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/localsfn"
_NAME = re.compile(r"^[^\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]{1,80}$")
_MACHINE_ARN = re.compile(r"^arn:aws:states:[a-z0-9-]+:\d{12}:stateMachine:(?P<name>[^:]+)$")
_EXECUTION_ARN = re.compile(r"^arn:aws:states:[a-z0-9-]+:\d{12}:execution:(?P<machine>[^:]+):(?P<name>[^:]+)$")

Functions = Mapping[str, Handler] | Callable[[str], Handler | None]


class Engine:
    """Runs Amazon States Language state machines whose tasks are Python Lambda handlers.

    `functions` maps Lambda function ARNs to handlers `handler(event, context)`
    (a mapping, or a callable returning the handler or None). `clock`
    defaults to the system clock; pass a `VirtualClock` to skip Wait and
    Retry time. Thread-safe.
    """

    def __init__(
        self,
        journal_path: str | FilePath,
        functions: Functions,
        clock: Clock | None = None,
        max_workers: int = 8,
        synchronous: str = "NORMAL",
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.journal = Journal(journal_path, synchronous=synchronous)
        self._functions = functions
        self._interpreter = Interpreter(self._resolve)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="localsfn-lambda")
        self._condition = threading.Condition()
        self._commands: deque[tuple[Callable[[Step], Any], Future | None]] = deque()
        self._runnable: deque[tuple[Execution, Path]] = deque()
        self._timers: list[tuple[float, int, str, str, int, str]] = []
        self._timer_sequence = 0
        self._in_flight = 0
        self._executions: dict[str, Execution] = {}
        self._definitions: dict[str, dict] = {}
        self._machines_lock = threading.Lock()
        self._closed_executions = threading.Condition()
        self._stopping = False
        self._closed = False
        self.failure: BaseException | None = None  # the error that stopped the loop on its own, if one did
        self._failure_cause = ""
        self._resume()
        self._thread = threading.Thread(target=self._loop, name="localsfn-engine", daemon=True)
        self._thread.start()

    # ================================================================== state machines

    def create_state_machine(self, name: str, definition: str, role_arn: str = DEFAULT_ROLE_ARN) -> str:
        """Create a state machine; returns its ARN.

        Idempotent: the same name with the same definition and role returns
        the existing ARN; a different one raises StateMachineAlreadyExists.
        Raises `DefinitionInvalid` naming every problem of the definition.
        """
        _check_name(name, "state machine")
        self._definition(definition)
        arn = machine_arn(name)
        with self._machines_lock:
            existing = self._machine(arn, missing_ok=True)
            if existing:
                if existing["definition"] == definition and existing["role_arn"] == role_arn:
                    return arn
                raise ServiceError("StateMachineAlreadyExists", f"State Machine Already Exists: '{arn}'")
            self.journal.put_state_machine(arn, name, definition, role_arn, self.clock.now())
        return arn

    def update_state_machine(self, arn: str, definition: str | None = None, role_arn: str | None = None) -> float:
        """Replace the definition and/or role; running executions keep the definition they started with."""
        _check_arn(arn, _MACHINE_ARN, "state machine")
        if definition is not None:
            self._definition(definition)
        with self._machines_lock:
            machine = self._machine(arn)
            updated = self.clock.now()
            self.journal.update_state_machine(arn, definition or machine["definition"], role_arn or machine["role_arn"], updated)
        return updated

    def describe_state_machine(self, arn: str) -> dict:
        _check_arn(arn, _MACHINE_ARN, "state machine")
        machine = self._machine(arn)
        return {
            "stateMachineArn": arn,
            "name": machine["name"],
            "status": "ACTIVE",
            "definition": machine["definition"],
            "roleArn": machine["role_arn"],
            "type": "STANDARD",
            "creationDate": as_datetime(machine["created"]),
        }

    def list_state_machines(self) -> list[dict]:
        return [
            {"stateMachineArn": row["arn"], "name": row["name"], "type": "STANDARD", "creationDate": as_datetime(row["created"])}
            for row in self.journal.state_machines()
        ]

    def delete_state_machine(self, arn: str) -> None:
        """Delete a state machine; its executions keep running to the end. Idempotent."""
        _check_arn(arn, _MACHINE_ARN, "state machine")
        with self._machines_lock:
            self.journal.delete_state_machine(arn)

    # ================================================================== executions

    def start_execution(self, state_machine_arn: str, input: str = "{}", name: str | None = None) -> str:
        """Start an execution; returns its ARN.

        Standard-workflow semantics: the same name and input as a RUNNING
        execution returns that execution; a closed one, or other input,
        raises ExecutionAlreadyExists. Returns once ExecutionStarted is journaled.
        """
        _check_arn(state_machine_arn, _MACHINE_ARN, "state machine")
        name = name if name is not None else str(uuid.uuid4())
        _check_name(name, "execution")
        try:
            json.loads(input)
        except (TypeError, json.JSONDecodeError) as error:
            raise ServiceError("InvalidExecutionInput", f"Invalid State Machine Execution Input: '{error}'") from None
        if len(input.encode()) > PAYLOAD_LIMIT_BYTES:
            raise ServiceError("InvalidExecutionInput", f"The execution input is larger than {PAYLOAD_LIMIT_BYTES} bytes")
        machine = self._machine(state_machine_arn)
        arn = execution_arn(machine["name"], name)

        def start(step: Step) -> str:
            # An execution started earlier in this same step is not journaled yet.
            existing = self.journal.execution(arn) or step.started_execution(arn)
            if existing:
                if existing["status"] == "RUNNING" and existing["input"] == input:
                    return arn
                raise ServiceError("ExecutionAlreadyExists", f"Execution Already Exists: '{arn}'")
            row = {
                "arn": arn, "machine_arn": state_machine_arn, "name": name, "definition": machine["definition"],
                "role_arn": machine["role_arn"], "input": input, "started": step.now,
            }
            execution = Execution(row, self._definition(machine["definition"]), machine["name"])
            self._executions[arn] = execution
            step.batch.new_executions.append(row)
            self._interpreter.start(step, execution, input, machine["role_arn"])
            return arn

        return self._call(start)

    def describe_execution(self, arn: str) -> dict:
        """The boto3 DescribeExecution shape. Never blocks on the loop."""
        row = self._execution_row(arn)
        description = {
            "executionArn": arn,
            "stateMachineArn": row["machine_arn"],
            "name": row["name"],
            "status": row["status"],
            "startDate": as_datetime(row["started"]),
            "input": row["input"],
            "inputDetails": {"included": True},
        }
        if row["stopped"] is not None:
            description["stopDate"] = as_datetime(row["stopped"])
        if row["output"] is not None:
            description["output"] = row["output"]
            description["outputDetails"] = {"included": True}
        for field_name in ("error", "cause"):
            if row[field_name] is not None:
                description[field_name] = row[field_name]
        return description

    def list_executions(self, state_machine_arn: str, status_filter: str | None = None) -> list[dict]:
        """Executions of a state machine, newest first (the ListExecutions item shape)."""
        _check_arn(state_machine_arn, _MACHINE_ARN, "state machine")
        rows = self.journal.executions(state_machine_arn, status_filter)
        if not rows:
            self._machine(state_machine_arn)
        items = []
        for row in rows:
            item = {
                "executionArn": row["arn"], "stateMachineArn": row["machine_arn"], "name": row["name"],
                "status": row["status"], "startDate": as_datetime(row["started"]),
            }
            if row["stopped"] is not None:
                item["stopDate"] = as_datetime(row["stopped"])
            items.append(item)
        return items

    def get_execution_history(self, arn: str, reverse_order: bool = False, include_execution_data: bool = True) -> list[dict]:
        """Every history event in the boto3 GetExecutionHistory shape."""
        self._execution_row(arn)
        events = []
        for event in self.journal.events(arn, reverse=reverse_order):
            shaped = {"timestamp": as_datetime(event.timestamp), "type": event.type, "id": event.id, "previousEventId": event.previous_id}
            if event.details_key:
                details = event.details
                if not include_execution_data:
                    details = {key: value for key, value in details.items() if key not in ("input", "output", "parameters")}
                shaped[event.details_key] = details
            events.append(shaped)
        return events

    def wait_for_execution(self, arn: str, timeout: float) -> dict:
        """Block until the execution is no longer RUNNING (at most `timeout` real seconds); returns its description."""
        deadline = time.monotonic() + timeout
        with self._closed_executions:
            while True:
                description = self.describe_execution(arn)
                if description["status"] != "RUNNING":
                    return description
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{arn} is still RUNNING after {timeout} s")
                self._closed_executions.wait(min(remaining, 0.5))

    def stop_execution(self, arn: str, error: str | None = None, cause: str | None = None) -> float:
        """Abort a RUNNING execution (ExecutionAborted); stopping a closed one changes nothing. Returns the stop time."""
        self._execution_row(arn)

        def stop(step: Step) -> float:
            execution = self._executions.get(arn)
            if execution is not None and not execution.closed:
                self._interpreter.abort(step, execution, error, cause)
                return step.now
            return self.journal.execution(arn)["stopped"]

        return self._call(stop)

    def send_task_success(self, task_token: str, output: str) -> None:
        """Complete a waitForTaskToken task with `output` (JSON text)."""
        try:
            json.loads(output)
        except (TypeError, json.JSONDecodeError) as error:
            raise ServiceError("InvalidOutput", f"Invalid output: '{error}'") from None
        self._task_command(task_token, lambda step, execution, path: self._interpreter.on_task_token(step, execution, path, output, None, None))

    def send_task_failure(self, task_token: str, error: str | None = None, cause: str | None = None) -> None:
        """Fail a waitForTaskToken task with `error` and `cause` (Retry and Catch apply)."""
        self._task_command(task_token, lambda step, execution, path: self._interpreter.on_task_token(step, execution, path, None, error, cause))

    def send_task_heartbeat(self, task_token: str) -> None:
        """Push back a waitForTaskToken task's HeartbeatSeconds deadline."""
        self._task_command(task_token, lambda step, execution, path: self._interpreter.on_heartbeat(step, execution, path))

    def close(self) -> None:
        """Stop the loop and close the journal; RUNNING executions resume when an engine opens it again. Idempotent."""
        with self._condition:
            if self._closed:
                return
            self._closed = self._stopping = True
            self._condition.notify_all()
        self._thread.join()
        self._fail_pending(RuntimeError("the engine closed before this request ran"))
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.journal.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ================================================================== internals

    def _resolve(self, arn: str) -> Handler | None:
        functions = self._functions
        if isinstance(functions, Mapping):
            return functions.get(arn) or functions.get(unqualified(arn))
        return functions(arn) or (functions(unqualified(arn)) if unqualified(arn) != arn else None)

    def _definition(self, text: str) -> dict:
        """The parsed definition; parsed and validated once per distinct text."""
        definition = self._definitions.get(text)
        if definition is None:
            definition = self._definitions[text] = validate(text)
        return definition

    def _machine(self, arn: str, missing_ok: bool = False) -> dict | None:
        machine = self.journal.state_machine(arn)
        if machine is not None or missing_ok:
            return machine
        raise ServiceError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")

    def _execution_row(self, arn: str) -> dict:
        _check_arn(arn, _EXECUTION_ARN, "execution")
        row = self.journal.execution(arn)
        if row is None:
            raise ServiceError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{arn}'")
        return row

    def _task_command(self, token: str, action: Callable[[Step, Execution, Path], None]) -> None:
        parsed = interpreter.parse_task_token(token) if isinstance(token, str) else None
        if parsed is None:
            raise ServiceError("InvalidToken", "Invalid Token: the task token was not issued by this engine")
        arn, path_id, serial = parsed

        def command(step: Step) -> None:
            execution = self._executions.get(arn)
            path = execution.paths.get(path_id) if execution and not execution.closed else None
            if path is None or path.token != token or path.serial != serial or path.phase not in (RUNNING, AWAITING_TOKEN):
                if self.journal.execution(arn) is None:
                    raise ServiceError("TaskDoesNotExist", "Task Does Not Exist")
                raise ServiceError("TaskTimedOut", "Task Timed Out: the task is no longer waiting for this token")
            action(step, execution, path)

        self._call(command)

    def _call(self, command: Callable[[Step], Any]) -> Any:
        """Run `command` on the loop thread in the next step; return its result once that step is journaled."""
        future: Future = Future()
        with self._condition:
            if self._stopping:
                raise RuntimeError(self.stopped_reason)
            self._commands.append((command, future))
            self._condition.notify()
        return future.result()

    def _post(self, command: Callable[[Step], Any]) -> None:
        with self._condition:
            self._commands.append((command, None))
            self._condition.notify()

    # ------------------------------------------------------------------ the loop

    @property
    def stopped_reason(self) -> str:
        """Why the engine takes no more requests, in a sentence."""
        if self.failure is not None:
            return f"the engine stopped because {self._failure_cause}: {self.failure!r}"
        return "the engine is closed"

    def _fail_pending(self, error: BaseException) -> None:
        with self._condition:
            pending, self._commands = self._commands, deque()
        for _, future in pending:
            if future is not None:
                future.set_exception(error)

    def _halt(self, error: BaseException, cause: str) -> None:
        """Stop taking work: memory may now be ahead of the journal or inconsistent.

        More work could act on state that a restart would not see. A new engine
        on the same journal resumes every execution from what the journal holds.
        """
        _log.critical("the engine stopped because %s", cause, exc_info=error)
        with self._condition:
            self.failure, self._failure_cause = error, cause
            self._stopping = True
        self._fail_pending(RuntimeError(self.stopped_reason))

    def _loop(self) -> None:
        try:
            self._run_turns()
        except BaseException as error:  # noqa: BLE001 - the loop must never die silently
            if self.failure is None:
                self._halt(error, "its loop failed")

    def _run_turns(self) -> None:
        while True:
            with self._condition:
                while not self._has_work():
                    if self._stopping:
                        return
                    if isinstance(self.clock, VirtualClock) and self._timers and self._in_flight == 0:
                        self.clock.advance_to(self._timers[0][0])
                        break
                    self.clock.wait(self._condition, self._timers[0][0] if self._timers else None)
                if self._stopping:
                    return
                commands, self._commands = self._commands, deque()
                runnable, self._runnable = self._runnable, deque()
            self._turn(commands, runnable)

    def _has_work(self) -> bool:
        return bool(self._commands or self._runnable or (self._timers and self._timers[0][0] <= self.clock.now()))

    def _turn(self, commands: deque, runnable: deque) -> None:
        """One turn: every ready piece of work makes one step; one commit; then the effects."""
        step = Step(self.clock.now())
        replies: list[tuple[Future, Any, BaseException | None]] = []
        for command, future in commands:
            try:
                result = command(step)
            except Exception as error:  # noqa: BLE001 - handed to the caller
                if future is None:
                    _log.exception("an internal engine command failed")
                    continue
                replies.append((future, None, error))
            else:
                if future is not None:
                    replies.append((future, result, None))
        while self._timers and self._timers[0][0] <= step.now:
            _, _, arn, path_id, serial, kind = heapq.heappop(self._timers)
            execution = self._executions.get(arn)
            if execution is None or execution.closed:
                continue
            if kind == "execution_timeout":
                self._interpreter.time_out(step, execution)
            elif (path := execution.paths.get(path_id)) is not None:
                self._interpreter.on_timer(step, execution, path, serial, kind)
        for execution, path in runnable:
            self._interpreter.advance(step, execution, path)
        try:
            self.journal.commit(step.seal())
        except BaseException as error:  # noqa: BLE001 - handed to the callers, and the engine stops
            self._halt(error, "a step could not be journaled")
            for future, _, _ in replies:
                future.set_exception(error)
            return
        self._apply(step)
        for future, result, error in replies:
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    def _apply(self, step: Step) -> None:
        """Carry out a committed step's effects."""
        with self._condition:
            self._runnable.extend(step.run)
            for due, arn, path_id, serial, kind in step.timers:
                self._timer_sequence += 1
                heapq.heappush(self._timers, (due, self._timer_sequence, arn, path_id, serial, kind))
            self._in_flight += len(step.invocations)
        for execution, path, handler in step.invocations:
            self._submit(execution, path, handler)
        if step.closed:
            for execution in step.closed:
                self._executions.pop(execution.arn, None)
            with self._closed_executions:
                self._closed_executions.notify_all()

    def _submit(self, execution: Execution, path: Path, handler: Handler | None) -> None:
        task, serial = path.task, path.serial
        timeout = task["timeout"] or interpreter.DEFAULT_LAMBDA_TIMEOUT_SECONDS

        def call() -> None:
            if handler is None:
                outcome = Invocation(not_found_cause(task["arn"]), "Lambda.ResourceNotFoundException")
            else:
                outcome = invoke(handler, task["arn"], task["payload"], timeout)

            def completed(step: Step) -> None:
                self._in_flight -= 1
                self._interpreter.on_invocation(step, execution, path, serial, outcome)

            self._post(completed)

        try:
            self._pool.submit(call)
        except RuntimeError:  # the pool is shut down: the engine is closing
            pass

    # ------------------------------------------------------------------ resume

    def _resume(self) -> None:
        """Load every RUNNING execution and carry on from its journaled paths."""
        for row in self.journal.running_executions():
            machine_name = _EXECUTION_ARN.match(row["arn"])["machine"]
            execution = Execution(row, self._definition(row["definition"]), machine_name, self.journal.last_event_id(row["arn"]) + 1)
            self._executions[execution.arn] = execution
            for path_id, record, data in self.journal.paths(execution.arn):
                execution.paths[path_id] = Path.load(path_id, record, data)
            step = Step(self.clock.now())
            timeout = execution.definition.get("TimeoutSeconds")
            if timeout:
                step.timers.append((execution.started + timeout, execution.arn, "0", -1, "execution_timeout"))
            for path in execution.paths.values():
                self._resume_path(step, execution, path)
            self._apply(step)

    def _resume_path(self, step: Step, execution: Execution, path: Path) -> None:
        if path.phase == READY:
            step.run.append((execution, path))
        elif path.phase == RUNNING:
            # The call was in flight when the engine stopped: make it again (handlers are idempotent, as on AWS).
            self._interpreter.schedule_call(step, execution, path, self._resolve(path.task["arn"]))
        elif path.phase == AWAITING_TOKEN:
            for due, kind in ((path.deadline, "timeout"), (path.heartbeat_due, "heartbeat")):
                if due is not None:
                    step.timers.append((due, execution.arn, path.id, path.serial, kind))
        elif path.phase in (interpreter.WAITING, interpreter.RETRY_WAIT):
            kind = "wait" if path.phase == interpreter.WAITING else "retry"
            step.timers.append((path.deadline, execution.arn, path.id, path.serial, kind))
        # CHILDREN, PENDING and DONE paths move when their children or siblings do.


def machine_arn(name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"


def execution_arn(machine_name: str, name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine_name}:{name}"


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ServiceError(
            "InvalidName",
            f"Invalid Name: '{name}' (a {what} name has 1 to 80 characters, no whitespace, "
            "no control characters and none of < > { } [ ] ? * \" # % \\ ^ | ~ ` $ & , ; : /)",
        )


def _check_arn(arn: str, pattern: re.Pattern[str], what: str) -> None:
    if not isinstance(arn, str) or not pattern.match(arn):
        raise ServiceError("InvalidArn", f"Invalid Arn: '{arn}' is not a {what} ARN")

