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
import math
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path as FilePath
from typing import Any

from localsfn import interpreter, map_state, result_writer
from localsfn.clock import Clock, SystemClock, VirtualClock
from localsfn.errors import DefinitionInvalid, ServiceError
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
from localsfn.timestamps import as_datetime, iso_timestamp
from localsfn.validation import LAMBDA_INVOKE_WAIT, validate
from localsfn.variables import variable_references

_log = logging.getLogger(__name__)
DEFAULT_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/localsfn"
_NAME = re.compile(r"^[^\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]{1,80}$")
_MACHINE_ARN = re.compile(r"^arn:aws:states:[a-z0-9-]+:\d{12}:stateMachine:(?P<name>[^:]+)$")
# A state machine, one of its versions (`:3`) or one of its aliases (`:prod`).
_QUALIFIED_ARN = re.compile(r"^(?P<machine>arn:aws:states:[a-z0-9-]+:\d{12}:stateMachine:[^:]+)(?::(?P<qualifier>[^:]+))?$")
_EXECUTION_ARN = re.compile(r"^arn:aws:states:[a-z0-9-]+:\d{12}:(?P<kind>execution|express):(?P<machine>[^:]+):(?P<name>[^:]+)(?::[0-9a-f-]+)?$")
_MAP_RUN_ARN = re.compile(r"^arn:aws:states:[a-z0-9-]+:\d{12}:mapRun:[^:/]+/[^:]+:[0-9a-f-]+$")
_ALIAS_NAME = re.compile(r"^(?=.*[a-zA-Z_\-.])[a-zA-Z0-9_\-.]{1,80}$")
REDRIVABLE = ("FAILED", "TIMED_OUT", "ABORTED")
REDRIVE_WINDOW_SECONDS = 14 * 24 * 3600
MAX_REDRIVES = 1000
EXPRESS_MAX_SECONDS = 300
MAX_TAGS = 50
_NOT_FOR_EXPRESS = "Resource type not valid in this context: express"

Functions = Mapping[str, Handler] | Callable[[str], Handler | None]


class Engine:
    """Runs Amazon States Language state machines whose tasks are Python Lambda handlers.

    `functions` maps Lambda function ARNs to handlers `handler(event, context)`
    (a mapping, or a callable returning the handler or None). `clock`
    defaults to the system clock; pass a `VirtualClock` to skip Wait and
    Retry time. `before_resume` runs once the journal is this engine's and
    before its RUNNING executions resume: the tasks they had in flight died
    with the last engine on it, which the runtime that keeps their functions'
    state may be told. Thread-safe.
    """

    def __init__(
        self,
        journal_path: str | FilePath,
        functions: Functions,
        clock: Clock | None = None,
        max_workers: int = 8,
        synchronous: str = "NORMAL",
        before_resume: Callable[[], None] | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.journal = Journal(journal_path, synchronous=synchronous)
        if before_resume is not None:
            # The journal is this engine's now: whatever task the last engine on it had in flight died with it.
            try:
                before_resume()
            except BaseException:
                self.journal.close()
                raise
        self._functions = functions
        self._interpreter = _Interpreter(self._resolve)
        self._interpreter.map_run_rows = self._map_run_rows
        self._interpreter.write_results = result_writer.handler_reading(self.journal.map_run_executions)
        self._interpreter.load_child_context = self._child_context
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
        try:
            self._resume()
        except BaseException:
            self._pool.shutdown(wait=False)
            self.journal.close()
            raise
        self._thread = threading.Thread(target=self._loop, name="localsfn-engine", daemon=True)
        self._thread.start()

    # ================================================================== state machines

    def create_state_machine(
        self, name: str, definition: str, role_arn: str = DEFAULT_ROLE_ARN, machine_type: str = "STANDARD",
        tags: dict[str, str] | None = None, publish: bool = False, version_description: str | None = None,
    ) -> str:
        """Create a state machine; returns its ARN (`create_state_machine_published` also gives the version).

        Idempotent as on AWS: the same name, definition and type return the
        existing ARN (a different role or tags are ignored, not applied);
        another definition or type raises StateMachineAlreadyExists.
        Raises `DefinitionInvalid` naming every problem of the definition.
        """
        return self.create_state_machine_published(name, definition, role_arn, machine_type, tags, publish, version_description)[0]

    def create_state_machine_published(
        self, name: str, definition: str, role_arn: str = DEFAULT_ROLE_ARN, machine_type: str = "STANDARD",
        tags: dict[str, str] | None = None, publish: bool = False, version_description: str | None = None,
    ) -> tuple[str, str | None]:
        """CreateStateMachine: (ARN, version ARN if `publish`)."""
        _check_name(name, "state machine")
        if machine_type not in ("STANDARD", "EXPRESS"):
            raise ServiceError("ValidationException", f"1 validation error detected: Value '{machine_type}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [STANDARD, EXPRESS]")
        self._check_definition(definition, machine_type)
        tags = _check_tags(tags or {})
        arn = machine_arn(name)
        with self._machines_lock:
            existing = self._machine(arn, missing_ok=True)
            if existing:
                if existing["definition"] != definition or existing["type"] != machine_type:
                    raise ServiceError("StateMachineAlreadyExists", f"State Machine Already Exists: '{arn}'")
                version = self._published_revision(arn, existing["revision"]) if publish else None
                if publish and version is None:
                    version = self._publish(arn, existing, version_description)
                return arn, version
            revision = str(uuid.uuid4())
            self.journal.put_state_machine(arn, name, definition, role_arn, self.clock.now(), machine_type, revision, tags)
            version = self._publish(arn, self._machine(arn), version_description) if publish else None
        return arn, version

    def update_state_machine(
        self, arn: str, definition: str | None = None, role_arn: str | None = None,
        publish: bool = False, version_description: str | None = None,
    ) -> float:
        """Replace the definition and/or role; running executions keep the definition they started with."""
        return self.update_state_machine_published(arn, definition, role_arn, publish, version_description)[0]

    def update_state_machine_published(
        self, arn: str, definition: str | None = None, role_arn: str | None = None,
        publish: bool = False, version_description: str | None = None,
    ) -> tuple[float, str, str | None]:
        """UpdateStateMachine: (update time, revision id, version ARN if `publish`)."""
        _check_arn(arn, _MACHINE_ARN, "state machine")
        if definition is None and role_arn is None and not publish:
            raise ServiceError("MissingRequiredParameter", "Either the definition, the roleArn or publish must be specified")
        with self._machines_lock:
            machine = self._machine(arn)
            if definition is not None:
                self._check_definition(definition, machine["type"])
            updated = self.clock.now()
            new_definition, new_role = definition or machine["definition"], role_arn or machine["role_arn"]
            revision = machine["revision"]
            if (new_definition, new_role) != (machine["definition"], machine["role_arn"]) or not revision:
                revision = str(uuid.uuid4())
                self.journal.update_state_machine(arn, new_definition, new_role, updated, revision)
            version = None
            if publish:
                version = self._published_revision(arn, revision) or self._publish(arn, self._machine(arn), version_description)
        return updated, revision, version

    def describe_state_machine(self, arn: str) -> dict:
        """DescribeStateMachine of a machine, or of one of its versions (`...:Name:3`) or aliases (`...:Name:prod`)."""
        _check_arn(arn, _QUALIFIED_ARN, "state machine")
        match = _QUALIFIED_ARN.match(arn)
        machine = self._machine(match["machine"])
        qualifier = match["qualifier"]
        description = {
            "stateMachineArn": arn,
            "name": machine["name"],
            "status": "ACTIVE",
            "definition": machine["definition"],
            "roleArn": machine["role_arn"],
            "type": machine["type"],
            "creationDate": as_datetime(machine["created"]),
        }
        if machine["revision"]:
            description["revisionId"] = machine["revision"]
        if qualifier is not None and qualifier.isdigit():
            version = self._version(arn)
            description.update(definition=version["definition"], roleArn=version["role_arn"], revisionId=version["revision"], creationDate=as_datetime(version["created"]))
            if version["description"]:
                description["description"] = version["description"]
        elif qualifier is not None:
            raise ServiceError("ValidationException", f"Describing an alias is DescribeStateMachineAlias: '{arn}'")
        # As AWS: the workflow variables each state reads; states that read none are left out.
        if references := variable_references(self._definition(description["definition"])):
            description["variableReferences"] = references
        return description

    def list_state_machines(self) -> list[dict]:
        return [
            {"stateMachineArn": row["arn"], "name": row["name"], "type": row["type"], "creationDate": as_datetime(row["created"])}
            for row in self.journal.state_machines()
        ]

    def delete_state_machine(self, arn: str) -> None:
        """Delete a state machine with its versions and aliases; its executions keep running to the end. Idempotent."""
        _check_arn(arn, _QUALIFIED_ARN, "state machine")
        match = _QUALIFIED_ARN.match(arn)
        if match["qualifier"] is not None:
            if match["qualifier"].isdigit():
                self.delete_state_machine_version(arn)
            else:
                self.delete_state_machine_alias(arn)
            return
        with self._machines_lock:
            self.journal.delete_state_machine(arn)

    # ================================================================== versions and aliases

    def publish_state_machine_version(self, arn: str, revision_id: str | None = None, description: str | None = None) -> tuple[str, Any]:
        """PublishStateMachineVersion: (version ARN, creation date). Idempotent for an already published revision."""
        _check_arn(arn, _MACHINE_ARN, "state machine")
        with self._machines_lock:
            machine = self._machine(arn)
            if revision_id is not None and revision_id != machine["revision"]:
                raise ServiceError(
                    "ConflictException",
                    f"Failed to publish the State Machine version for revision {revision_id}. The current State Machine revision is {machine['revision']}.",
                )
            version = self._published_revision(arn, machine["revision"]) or self._publish(arn, machine, description)
        return version, as_datetime(self._version(version)["created"])

    def list_state_machine_versions(self, arn: str) -> list[dict]:
        _check_arn(arn, _MACHINE_ARN, "state machine")
        self._machine(arn)
        return [{"stateMachineVersionArn": f"{arn}:{row['version']}", "creationDate": as_datetime(row["created"])} for row in self.journal.versions(arn)]

    def delete_state_machine_version(self, version_arn: str) -> None:
        """Delete a version no alias routes to. Idempotent."""
        machine, number = _version_parts(version_arn)
        with self._machines_lock:
            referencing = [alias["arn"] for alias in self.journal.aliases(machine) if any(route["stateMachineVersionArn"] == version_arn for route in alias["routing"])]
            if referencing:
                raise ServiceError(
                    "ConflictException",
                    f"Version to be deleted must not be referenced by an alias. Current list of aliases referencing this version: {referencing}",
                )
            self.journal.delete_version(machine, number)

    def create_state_machine_alias(self, name: str, routing: list[dict], description: str | None = None) -> tuple[str, Any]:
        """CreateStateMachineAlias: (alias ARN, creation date). The same name and routing again returns the alias."""
        if not isinstance(name, str) or not _ALIAS_NAME.match(name) or name.isdigit():
            raise ServiceError("InvalidName", f"Invalid Name: '{name}' (an alias name has 1 to 80 letters, digits, '-', '_' or '.', and not only digits)")
        machine = self._check_routing(routing)
        arn = f"{machine}:{name}"
        with self._machines_lock:
            existing = self.journal.alias(arn)
            if existing:
                if _routing_key(existing["routing"]) == _routing_key(routing) and existing["description"] == description:
                    return arn, as_datetime(existing["created"])
                raise ServiceError("ConflictException", f"Failed to create alias because an alias with the same name and a different routing configuration already exists: '{arn}'")
            created = self.clock.now()
            self.journal.put_alias(arn, machine, name, description, _routing(routing), created)
        return arn, as_datetime(created)

    def update_state_machine_alias(self, arn: str, routing: list[dict] | None = None, description: str | None = None) -> Any:
        alias = self._alias(arn)
        if routing is None and description is None:
            raise ServiceError("ValidationException", "Either the description or the routingConfiguration must be specified")
        if routing is not None and self._check_routing(routing) != alias["machine_arn"]:
            raise ServiceError("ValidationException", f"The routing configuration of '{arn}' must name versions of {alias['machine_arn']}")
        updated = self.clock.now()
        self.journal.update_alias(arn, description if description is not None else alias["description"], _routing(routing) if routing is not None else alias["routing"], updated)
        return as_datetime(updated)

    def describe_state_machine_alias(self, arn: str) -> dict:
        alias = self._alias(arn)
        description = {
            "stateMachineAliasArn": arn, "name": alias["name"], "routingConfiguration": alias["routing"],
            "creationDate": as_datetime(alias["created"]),
        }
        if alias["description"] is not None:
            description["description"] = alias["description"]
        if alias["updated"] is not None:
            description["updateDate"] = as_datetime(alias["updated"])
        return description

    def list_state_machine_aliases(self, arn: str) -> list[dict]:
        _check_arn(arn, _QUALIFIED_ARN, "state machine")
        machine = _QUALIFIED_ARN.match(arn)["machine"]
        if self._machine(machine, missing_ok=True) is None:
            raise ServiceError("ResourceNotFound", f"Resource not found: '{arn}'")
        return [{"stateMachineAliasArn": alias["arn"], "creationDate": as_datetime(alias["created"])} for alias in self.journal.aliases(machine)]

    def delete_state_machine_alias(self, arn: str) -> None:
        self._alias(arn)
        self.journal.delete_alias(arn)

    # ================================================================== tags and validation

    def tag_resource(self, arn: str, tags: dict[str, str]) -> None:
        self._taggable(arn)
        tags = _check_tags(tags)
        if len({**self.journal.tags(arn), **tags}) > MAX_TAGS:
            raise ServiceError("TooManyTags", f"Too many tags: a resource has at most {MAX_TAGS} tags")
        self.journal.tag(arn, tags)

    def untag_resource(self, arn: str, keys: list[str]) -> None:
        self._taggable(arn)
        self.journal.untag(arn, list(keys))

    def list_tags_for_resource(self, arn: str) -> list[dict]:
        self._taggable(arn)
        return [{"key": key, "value": value} for key, value in self.journal.tags(arn).items()]

    def validate_state_machine_definition(self, definition: str, machine_type: str = "STANDARD") -> list[str]:
        """The problems AWS would reject `definition` for (none: it is valid). Pure."""
        try:
            self._check_definition(definition, machine_type)
        except DefinitionInvalid as invalid:
            return invalid.problems
        return []

    # ================================================================== executions

    def start_execution(self, state_machine_arn: str, input: str = "{}", name: str | None = None) -> str:
        """Start an execution of a machine, one of its versions or one of its aliases; returns its ARN.

        Standard-workflow semantics: the same name and input as a RUNNING
        execution returns that execution; a closed one, or other input,
        raises ExecutionAlreadyExists. Express executions get an ARN of
        their own each time. Returns once ExecutionStarted is journaled.
        """
        _check_arn(state_machine_arn, _QUALIFIED_ARN, "state machine")
        name = name if name is not None else str(uuid.uuid4())
        _check_name(name, "execution")
        try:
            json.loads(input)
        except (TypeError, json.JSONDecodeError) as error:
            raise ServiceError("InvalidExecutionInput", f"Invalid State Machine Execution Input: '{error}'") from None
        if len(input.encode()) > PAYLOAD_LIMIT_BYTES:
            raise ServiceError("InvalidExecutionInput", f"The execution input is larger than {PAYLOAD_LIMIT_BYTES} bytes")
        machine, version_arn, alias_arn = self._target(state_machine_arn)
        express = machine["type"] == "EXPRESS"
        arn = f"{express_arn(machine['name'], name)}:{uuid.uuid4()}" if express else execution_arn(machine["name"], name)

        def start(step: Step) -> str:
            # An execution started earlier in this same step is not journaled yet.
            existing = self.journal.execution(arn) or step.started_execution(arn)
            if existing:
                if existing["status"] == "RUNNING" and existing["input"] == input:
                    return arn
                raise ServiceError("ExecutionAlreadyExists", f"Execution Already Exists: '{arn}'")
            row = {
                "arn": arn, "machine_arn": machine["arn"], "name": name, "definition": machine["definition"],
                "role_arn": machine["role_arn"], "input": input, "started": step.now,
                "version_arn": version_arn, "alias_arn": alias_arn, "express": int(express),
            }
            execution = Execution(row, self._definition(machine["definition"]), machine["name"])
            self._executions[arn] = execution
            step.batch.new_executions.append(row)
            self._interpreter.start(step, execution, input, machine["role_arn"])
            if express:
                step.timers.append((step.now + EXPRESS_MAX_SECONDS, arn, "0", -1, "execution_timeout"))
            return arn

        return self._call(start)

    def start_sync_execution(self, state_machine_arn: str, input: str = "{}", name: str | None = None) -> dict:
        """StartSyncExecution: run an Express execution to its end and answer with its outcome. Blocks."""
        _check_arn(state_machine_arn, _QUALIFIED_ARN, "state machine")
        machine, _, _ = self._target(state_machine_arn)
        if machine["type"] != "EXPRESS":
            raise ServiceError("StateMachineTypeNotSupported", "This operation is not supported by this type of state machine")
        arn = self.start_execution(state_machine_arn, input, name)
        row = self._wait_closed(arn, EXPRESS_MAX_SECONDS + 5)
        duration_ms = max(0, (row["stopped"] - row["started"]) * 1000)
        outcome = {
            "executionArn": arn, "stateMachineArn": state_machine_arn, "name": row["name"],
            "startDate": as_datetime(row["started"]), "stopDate": as_datetime(row["stopped"]), "status": row["status"],
            "input": row["input"], "inputDetails": {"included": True},
            # Express is billed per 100 ms started and 64 MB of memory.
            "billingDetails": {"billedMemoryUsedInMB": 64, "billedDurationInMilliseconds": max(100, math.ceil(duration_ms / 100) * 100)},
        }
        if row["output"] is not None:
            outcome.update(output=row["output"], outputDetails={"included": True})
        for field_name in ("error", "cause"):
            if row[field_name] is not None:
                outcome[field_name] = row[field_name]
        return outcome

    def start_date(self, arn: str) -> Any:
        """When an execution (Express ones included) started."""
        return as_datetime(self._execution_row(arn, express_ok=True)["started"])

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
            "redriveCount": row["redrive_count"],
        }
        for column, key in (("version_arn", "stateMachineVersionArn"), ("alias_arn", "stateMachineAliasArn"), ("map_run_arn", "mapRunArn")):
            if row[column] is not None:
                description[key] = row[column]
        if row["redrive_date"] is not None:
            description["redriveDate"] = as_datetime(row["redrive_date"])
        reason = self._not_redrivable(row)
        if row["map_run_arn"] is not None and row["status"] in REDRIVABLE:
            description["redriveStatus"] = "REDRIVABLE_BY_MAP_RUN"  # AWS's status for a failed child: redrive its parent
        else:
            description["redriveStatus"] = "NOT_REDRIVABLE" if reason else "REDRIVABLE"
        if reason:
            description["redriveStatusReason"] = reason
        if row["stopped"] is not None:
            description["stopDate"] = as_datetime(row["stopped"])
        if row["output"] is not None:
            description["output"] = row["output"]
            description["outputDetails"] = {"included": True}
        for field_name in ("error", "cause"):
            if row[field_name] is not None:
                description[field_name] = row[field_name]
        return description

    def describe_state_machine_for_execution(self, arn: str) -> dict:
        """The definition and role an execution runs with (its version's, if it started on one)."""
        row = self._execution_row(arn)
        machine = self._machine(row["machine_arn"], missing_ok=True) or {}
        return {
            "stateMachineArn": row["version_arn"] or row["machine_arn"], "name": _EXECUTION_ARN.match(arn)["machine"],
            "definition": row["definition"], "roleArn": row["role_arn"],
            "updateDate": as_datetime(machine.get("updated") or machine.get("created") or row["started"]),
        }

    def list_executions(self, state_machine_arn: str | None = None, status_filter: str | None = None, map_run_arn: str | None = None) -> list[dict]:
        """Executions of a state machine, newest first, or the child executions of a Map Run (the ListExecutions item shape)."""
        if (state_machine_arn is None) == (map_run_arn is None):
            raise ServiceError("ValidationException", "Exactly one of stateMachineArn and mapRunArn must be given")
        if map_run_arn is not None:
            self._map_run(map_run_arn)
            return [
                {**self._execution_item(row), "mapRunArn": map_run_arn, "itemCount": row["item_count"]}
                for row in self.journal.map_run_executions(map_run_arn)
                if status_filter is None or row["status"] == status_filter
            ]
        _check_arn(state_machine_arn, _QUALIFIED_ARN, "state machine")
        match = _QUALIFIED_ARN.match(state_machine_arn)
        machine = self._machine(match["machine"], missing_ok=True)
        if machine is not None and machine["type"] == "EXPRESS":
            raise ServiceError("StateMachineTypeNotSupported", "This operation is not supported by this type of state machine")
        rows = self.journal.executions(match["machine"], status_filter)
        if not rows and machine is None:
            self._machine(match["machine"])
        if match["qualifier"] is not None:
            column = "version_arn" if match["qualifier"].isdigit() else "alias_arn"
            rows = [row for row in rows if row[column] == state_machine_arn]
        return [self._execution_item(row) for row in rows if not row["express"]]

    def _execution_item(self, row: dict) -> dict:
        item = {
            "executionArn": row["arn"], "stateMachineArn": row["machine_arn"], "name": row["name"],
            "status": row["status"], "startDate": as_datetime(row["started"]), "redriveCount": row["redrive_count"],
        }
        for column, key in (("version_arn", "stateMachineVersionArn"), ("alias_arn", "stateMachineAliasArn")):
            if row[column] is not None:
                item[key] = row[column]
        if row["stopped"] is not None:
            item["stopDate"] = as_datetime(row["stopped"])
        if row["redrive_date"] is not None:
            item["redriveDate"] = as_datetime(row["redrive_date"])
        return item

    # ================================================================== Map Runs

    def describe_map_run(self, arn: str) -> dict:
        """DescribeMapRun: a Distributed Map's run, its settings and the counts of its items and child executions."""
        run = self._map_run(arn)
        counts = self.journal.map_run_counts(arn)
        description = {
            "mapRunArn": arn, "executionArn": run["execution_arn"], "status": run["status"], "startDate": as_datetime(run["started"]),
            "maxConcurrency": run["max_concurrency"], "toleratedFailurePercentage": run["tolerated_percentage"],
            "toleratedFailureCount": run["tolerated_count"],
            "itemCounts": _map_run_counts(counts, 1, run["item_total"], run["items_written"]),
            "executionCounts": _map_run_counts(counts, 0, run["execution_total"], run["results_written"]),
            "redriveCount": run["redrive_count"],
        }
        if run["redrive_date"] is not None:
            description["redriveDate"] = as_datetime(run["redrive_date"])
        if run["stopped"] is not None:
            description["stopDate"] = as_datetime(run["stopped"])
        return description

    def list_map_runs(self, execution_arn: str) -> list[dict]:
        """ListMapRuns: the Map Runs an execution started, newest first."""
        self._execution_row(execution_arn)
        items = []
        for run in self.journal.map_runs(execution_arn):
            item = {"executionArn": execution_arn, "mapRunArn": run["arn"], "stateMachineArn": run["machine_arn"], "startDate": as_datetime(run["started"])}
            if run["stopped"] is not None:
                item["stopDate"] = as_datetime(run["stopped"])
            items.append(item)
        return items

    def update_map_run(
        self, arn: str, max_concurrency: int | None = None, tolerated_failure_percentage: float | None = None, tolerated_failure_count: int | None = None,
    ) -> None:
        """UpdateMapRun: change a running Map Run's maximum concurrency and tolerated failures.

        As the API reference has it (https://docs.aws.amazon.com/step-functions/latest/apireference/API_UpdateMapRun.html):
        maxConcurrency and toleratedFailureCount at least 0, toleratedFailurePercentage
        from 0 to 100, each optional. A higher concurrency starts waiting children at
        once, a lower one starts no more until fewer run; a new threshold applies
        from the next failed child on. No history event records it (the event types
        AWS lists have none for an update).
        """
        _check_map_run_update(max_concurrency, tolerated_failure_percentage, tolerated_failure_count)
        self._map_run(arn)

        def update(step: Step) -> None:
            run = self.journal.map_run(arn)
            found = self._running_map_run(arn) if run["status"] == "RUNNING" else None
            if found is None:
                raise ServiceError("ValidationException", f"Map Run {arn} is {run['status']}: only a RUNNING Map Run can be updated")
            execution, path = found
            columns: dict = {}
            if max_concurrency is not None:
                columns["max_concurrency"] = max_concurrency
            if tolerated_failure_count is not None:
                columns["tolerated_count"] = tolerated_failure_count
            if tolerated_failure_percentage is not None:
                columns["tolerated_percentage"] = float(tolerated_failure_percentage)
            step.batch.map_runs[arn] = {**step.batch.map_runs.get(arn, {}), **columns}
            self._interpreter.update_map_run(step, execution, path, max_concurrency, tolerated_failure_percentage, tolerated_failure_count)

        self._call(update)

    def _running_map_run(self, arn: str) -> tuple[Execution, Path] | None:
        """The execution and the Distributed Map path whose Map Run `arn` is running (children of children included)."""
        for execution in self._executions.values():
            if execution.closed:
                continue
            for path in execution.paths.values():
                counts = path.children or {}
                if counts.get("distributed") and counts.get("map_run") == arn:
                    return execution, path
        return None

    def _map_run(self, arn: str) -> dict:
        if not isinstance(arn, str) or not _MAP_RUN_ARN.match(arn):
            raise ServiceError("InvalidArn", f"Invalid Arn: '{arn}' is not a Map Run ARN")
        run = self.journal.map_run(arn)
        if run is None:
            raise ServiceError("ResourceNotFound", f"Resource not found: '{arn}'")
        return run

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
        self._wait_closed(arn, timeout)
        return self.describe_execution(arn)

    def _wait_closed(self, arn: str, timeout: float) -> dict:
        """The execution's journal row once it is no longer RUNNING (Express ones included)."""
        deadline = time.monotonic() + timeout
        with self._closed_executions:
            while True:
                row = self._execution_row(arn, express_ok=True)
                if row["status"] != "RUNNING":
                    return row
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{arn} is still RUNNING after {timeout} s")
                self._closed_executions.wait(min(remaining, 0.5))

    def redrive_execution(self, arn: str) -> float:
        """RedriveExecution: run a FAILED, TIMED_OUT or ABORTED execution on from the state it stopped in.

        The states that succeeded keep their results (the redriven state gets
        the input it had); history goes on with ExecutionRedriven. A top-level
        Distributed Map whose Map Run failed has that run redriven, as AWS does:
        only its unsuccessful children run again (`Interpreter.redrive_map_run`);
        a failed Parallel or inline Map redrives only its branches or iterations
        that failed or were aborted (`Interpreter.redrive_children`). Returns
        the redrive time.
        """
        self._execution_row(arn)

        def redrive(step: Step) -> float:
            row = self.journal.execution(arn)
            reason = self._not_redrivable(row, step.now)
            if reason:
                raise ServiceError("ExecutionNotRedrivable", f"Execution {arn} cannot be redriven: {reason}")
            record, data = self.journal.redrive_point(arn)
            execution = Execution(row, self._definition(row["definition"]), _EXECUTION_ARN.match(arn)["machine"], self.journal.last_event_id(arn) + 1)
            count = row["redrive_count"] + 1
            redriven = step.emit(execution, None, "ExecutionRedriven", "executionRedrivenEventDetails", {"redriveCount": count})
            _redriven_context(execution, count, step.now)
            root = Path.load("0", record, data)
            snapshot = (root.children or {}).get("redrive")  # a failed Parallel or inline Map: which children to redrive
            unstarted = (root.children or {}).get("unstarted")  # a Distributed Map's children not started: their inputs
            root.move_to(root.state, root.data, root.data_text)
            root.serial += 1  # timers and calls of the attempt that stopped stay stale
            root.last_event = redriven.id
            execution.paths[root.id] = root
            self._executions[arn] = execution
            step.touch(execution, root)
            if not self._redrive_map_run(step, execution, root, unstarted) and not (snapshot and self._interpreter.redrive_children(step, execution, root, snapshot)):
                step.run.append((execution, root))
            step.batch.executions[arn] = {
                "status": "RUNNING", "stopped": None, "output": None, "error": None, "cause": None,
                "redrive_count": count, "redrive_date": step.now,
            }
            step.batch.redrive_points[arn] = None
            timeout = execution.definition.get("TimeoutSeconds")
            if timeout:
                step.timers.append((step.now + timeout, arn, "0", -1, "execution_timeout"))
            return step.now

        return self._call(redrive)

    def _redrive_map_run(self, step: Step, execution: Execution, root: Path, unstarted: dict | None) -> bool:
        """If the execution failed in a Distributed Map's Map Run, redrive that run (its unsuccessful children only)."""
        state = execution.states_of(root)[root.state]
        if state["Type"] != "Map" or not map_state.is_distributed(state):
            return False
        runs = self.journal.map_runs(execution.arn)
        if not runs or runs[0]["status"] not in ("FAILED", "ABORTED"):
            return False
        run = runs[0]
        if map_state.map_run_path(run["arn"]) != f"{execution.context['StateMachine']['Name']}/{state.get('Label', root.state)}":
            return False
        _, children = self._map_run_rows(run["arn"])
        return self._interpreter.redrive_map_run(step, execution, root, run, children, unstarted)

    def _map_run_rows(self, map_run_arn: str) -> tuple[dict, list[dict]] | None:
        """A Map Run's journal row and its children's, those not succeeded with their last event id and redrive point."""
        run = self.journal.map_run(map_run_arn)
        if run is None:
            return None
        children = self.journal.map_run_executions(map_run_arn)
        for child in children:
            if child["status"] != "SUCCEEDED":
                child["last_event"] = self.journal.last_event_id(child["arn"])
                child["redrive_point"] = self.journal.redrive_point(child["arn"])
        return run, children

    def _child_context(self, arn: str) -> dict:
        """A Map Run's child execution's context object (fixed parts) from its journal row."""
        row = self.journal.execution(arn)
        context = interpreter.child_context(arn, row["machine_arn"], json.loads(row["input"]), row["started"], row["role_arn"])
        if row["redrive_count"]:
            context["Execution"].update(RedriveCount=row["redrive_count"], RedriveTime=iso_timestamp(row["redrive_date"]))
        return context

    def _not_redrivable(self, row: dict, now: float | None = None) -> str | None:
        """Why RedriveExecution would refuse the execution, in AWS's words; None if it may be redriven."""
        if row["status"] not in REDRIVABLE:
            return f"Execution is {row['status']} and cannot be redriven."
        if row["map_run_arn"] is not None:
            return "Execution is a child workflow execution of a Map Run: redrive its parent execution."
        if (now if now is not None else self.clock.now()) - row["stopped"] > REDRIVE_WINDOW_SECONDS:
            return "Execution redrivable period exceeded."
        if row["redrive_count"] >= MAX_REDRIVES:
            return f"Execution has been redriven {MAX_REDRIVES} times, the maximum."
        if self.journal.redrive_point(row["arn"]) is None:
            # Closed before the journal kept where executions stop.
            return "Execution was started before the launch of RedriveExecution."
        return None

    def stop_execution(self, arn: str, error: str | None = None, cause: str | None = None) -> float:
        """Abort a RUNNING execution (ExecutionAborted); stopping a closed one changes nothing. Returns the stop time."""
        if self._execution_row(arn)["map_run_arn"] is not None:
            raise ServiceError("ValidationException", f"'{arn}' is a child workflow execution of a Map Run: it stops with its parent execution")

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

    def _check_definition(self, definition: str, machine_type: str) -> dict:
        parsed = self._definition(definition)
        if machine_type == "EXPRESS" and ".waitForTaskToken" in definition and LAMBDA_INVOKE_WAIT in _resources(parsed):
            raise DefinitionInvalid(["Express state machine does not support '.waitForTaskToken' service integration pattern"])
        return parsed

    def _target(self, arn: str) -> tuple[dict, str | None, str | None]:
        """What StartExecution on `arn` runs: (machine row with the definition to run, version ARN, alias ARN)."""
        match = _QUALIFIED_ARN.match(arn)
        machine = self._machine(match["machine"])
        qualifier = match["qualifier"]
        if qualifier is None:
            return machine, None, None
        alias_arn = None
        if not qualifier.isdigit():
            alias = self.journal.alias(arn)
            if alias is None:
                raise ServiceError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
            alias_arn = arn
            routes = alias["routing"]
            arn = random.choices([route["stateMachineVersionArn"] for route in routes], [route["weight"] for route in routes])[0]
        version = self.journal.version(match["machine"], int(arn.rsplit(":", 1)[1]))
        if version is None:
            raise ServiceError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
        return {**machine, "definition": version["definition"], "role_arn": version["role_arn"]}, arn, alias_arn

    def _publish(self, arn: str, machine: dict, description: str | None) -> str:
        number = self.journal.publish_version(arn, machine["definition"], machine["role_arn"], machine["revision"], description, self.clock.now())
        return f"{arn}:{number}"

    def _published_revision(self, arn: str, revision: str) -> str | None:
        """The version already published for `revision`, if any."""
        return next((f"{arn}:{row['version']}" for row in self.journal.versions(arn) if row["revision"] == revision), None)

    def _version(self, version_arn: str) -> dict:
        machine, number = _version_parts(version_arn)
        version = self.journal.version(machine, number)
        if version is None:
            raise ServiceError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{version_arn}'")
        return version

    def _alias(self, arn: str) -> dict:
        match = _QUALIFIED_ARN.match(arn) if isinstance(arn, str) else None
        if match is None or match["qualifier"] is None or match["qualifier"].isdigit():
            raise ServiceError("InvalidArn", f"Invalid Arn: '{arn}' is not a state machine alias ARN")
        alias = self.journal.alias(arn)
        if alias is None:
            raise ServiceError("ResourceNotFound", f"Resource not found: '{arn}'")
        return alias

    def _check_routing(self, routing: list[dict]) -> str:
        """The machine whose versions `routing` splits traffic between; raises ValidationException otherwise."""
        if not isinstance(routing, list) or not 1 <= len(routing) <= 2:
            raise ServiceError("ValidationException", "The routingConfiguration must name one or two state machine versions")
        machines = set()
        for route in routing:
            weight = route.get("weight") if isinstance(route, dict) else None
            if not isinstance(weight, int) or not 0 <= weight <= 100:
                raise ServiceError("ValidationException", f"A routing weight must be an integer from 0 to 100, got {weight!r}")
            version_arn = route.get("stateMachineVersionArn")
            machine, _ = _version_parts(version_arn)
            self._version(version_arn)
            machines.add(machine)
        if len(machines) > 1:
            raise ServiceError("ValidationException", "The versions of a routingConfiguration must be versions of one state machine")
        if len({route["stateMachineVersionArn"] for route in routing}) != len(routing):
            raise ServiceError("ValidationException", "A routingConfiguration must not name a version twice")
        if sum(route["weight"] for route in routing) != 100:
            raise ServiceError("ValidationException", "The weights of a routingConfiguration must add up to 100")
        return machines.pop()

    def _taggable(self, arn: str) -> None:
        if not isinstance(arn, str) or not _MACHINE_ARN.match(arn):
            raise ServiceError("InvalidArn", f"Invalid Arn: '{arn}' is not a state machine ARN")
        if self._machine(arn, missing_ok=True) is None:
            raise ServiceError("ResourceNotFound", f"Resource not found: '{arn}'")

    def _machine(self, arn: str, missing_ok: bool = False) -> dict | None:
        machine = self.journal.state_machine(arn)
        if machine is not None or missing_ok:
            return machine
        raise ServiceError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")

    def _execution_row(self, arn: str, express_ok: bool = False) -> dict:
        _check_arn(arn, _EXECUTION_ARN, "execution")
        if not express_ok and _EXECUTION_ARN.match(arn)["kind"] == "express":
            # AWS keeps no describable record of Express executions.
            raise ServiceError("InvalidArn", f"Invalid Arn: '{_NOT_FOR_EXPRESS}'")
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
            if row["redrive_count"]:
                _redriven_context(execution, row["redrive_count"], row["redrive_date"])
            self._executions[execution.arn] = execution
            for path_id, record, data in self.journal.paths(execution.arn):
                path = execution.paths[path_id] = Path.load(path_id, record, data)
                if path.events_arn is not None and path.events_arn not in execution.child_next:
                    execution.child_next[path.events_arn] = self.journal.last_event_id(path.events_arn) + 1
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


class _Interpreter(Interpreter):
    """The interpreter, keeping where each execution stopped so RedriveExecution can run it on from there."""

    def _close(self, step: Step, execution: Execution, status: str, **columns: str | None) -> None:
        root = execution.paths.get("0")
        if status in REDRIVABLE and root is not None:
            step.batch.redrive_points[execution.arn] = (root.record(), root.data_json())
        super()._close(step, execution, status, **columns)


def _redriven_context(execution: Execution, count: int, when: float) -> None:
    """`$$.Execution.RedriveCount` and `RedriveTime`, which AWS's context object carries once an execution is redriven."""
    execution.context["Execution"]["RedriveCount"] = count
    execution.context["Execution"]["RedriveTime"] = iso_timestamp(when)


def _resources(definition: dict) -> set[str]:
    resources = set()
    for state in definition.get("States", {}).values():
        if isinstance(state, dict):
            if isinstance(state.get("Resource"), str):
                resources.add(state["Resource"])
            for branch in state.get("Branches", ()):
                resources |= _resources(branch)
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if isinstance(processor, dict):
                resources |= _resources(processor)
    return resources


def _map_run_counts(counts: dict[str, tuple[int, int]], column: int, total: int, written: int) -> dict:
    """MapRunItemCounts (`column` 1) or MapRunExecutionCounts (0) from the children's status counts."""
    started = sum(count[column] for count in counts.values())
    number = {status: count[column] for status, count in counts.items()}
    return {
        "pending": max(0, total - started), "running": number.get("RUNNING", 0), "succeeded": number.get("SUCCEEDED", 0),
        "failed": number.get("FAILED", 0), "timedOut": number.get("TIMED_OUT", 0), "aborted": number.get("ABORTED", 0),
        "total": total, "resultsWritten": written, "failuresNotRedrivable": 0, "pendingRedrive": 0,
    }


def _check_map_run_update(max_concurrency: Any, percentage: Any, count: Any) -> None:
    """UpdateMapRun's constraints, refused as AWS words a constraint violation (ValidationException)."""
    problems = []
    for name, value, integral, top in (
        ("maxConcurrency", max_concurrency, True, None),
        ("toleratedFailureCount", count, True, None),
        ("toleratedFailurePercentage", percentage, False, 100),
    ):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int if integral else (int, float)):
            problems.append(f"Value '{value}' at '{name}' failed to satisfy constraint: Member must be a number")
        elif value < 0:
            problems.append(f"Value '{value}' at '{name}' failed to satisfy constraint: Member must have value greater than or equal to 0")
        elif top is not None and value > top:
            problems.append(f"Value '{value}' at '{name}' failed to satisfy constraint: Member must have value less than or equal to {top}")
    if problems:
        count_words = "1 validation error" if len(problems) == 1 else f"{len(problems)} validation errors"
        raise ServiceError("ValidationException", f"{count_words} detected: {'; '.join(problems)}")
    if max_concurrency is None and percentage is None and count is None:
        raise ServiceError("ValidationException", "At least one of maxConcurrency, toleratedFailurePercentage and toleratedFailureCount must be given")


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    if len(tags) > MAX_TAGS:
        raise ServiceError("TooManyTags", f"Too many tags: a resource has at most {MAX_TAGS} tags")
    for key, value in tags.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 128 or not isinstance(value, str) or len(value) > 256:
            raise ServiceError("ValidationException", f"A tag key has 1 to 128 characters and a value at most 256: {key!r}")
    return tags


def _routing(routing: list[dict]) -> list[dict]:
    return [{"stateMachineVersionArn": route["stateMachineVersionArn"], "weight": route["weight"]} for route in routing]


def _routing_key(routing: list[dict]) -> list[tuple[str, int]]:
    return sorted((route["stateMachineVersionArn"], route["weight"]) for route in routing)


def _version_parts(version_arn: str) -> tuple[str, int]:
    match = _QUALIFIED_ARN.match(version_arn) if isinstance(version_arn, str) else None
    if match is None or match["qualifier"] is None or not match["qualifier"].isdigit():
        raise ServiceError("InvalidArn", f"Invalid Arn: '{version_arn}' is not a state machine version ARN")
    return match["machine"], int(match["qualifier"])


def express_arn(machine_name: str, name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:express:{machine_name}:{name}"


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

