"""Step table -> Amazon States Language: the committed `statemachines/*.asl.json` are this module's output.

Rendering is deterministic: the same table gives the same bytes, so
`render --check` can tell a stale or hand-edited file from a current one.
The conventions every row shares are applied here once:

- a task's payload is the step payload (spec, execution id, state name) plus its own parameters;
- a task's `TimeoutSeconds` is its function's timeout (or the approval's time limit);
- a forward task keeps its result in `$.results.<state>`; where its failure goes and where the
  error is kept follow the workflow's `on_error` (see `statemachines.model`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import zip_longest
from pathlib import Path
from typing import Any

from statemachines.model import (
    STEP_PAYLOAD, Catch, Choice, Compensate, Fail, Pass, Reject, Row, Succeed, Task, WaitLoop, Workflow,
)
from statemachines.retry import retriers

STATEMACHINES_DIR = Path(__file__).resolve().parent
DEFINITION_SUFFIX = ".asl.json"
WAIT_FOR_TASK_TOKEN = "arn:aws:states:::lambda:invoke.waitForTaskToken"


class InvalidWorkflow(ValueError):
    """A step table that cannot render to a valid state machine; the message names the workflow and state."""


@dataclass(frozen=True)
class _Placement:
    """Where a task sits: what it does with its result and its failure, and what follows it."""

    result_path: str
    catch: Catch | None
    next: str


def first_state(row: Row) -> str:
    return row.start_state if isinstance(row, WaitLoop) else row.name


def definition(workflow: Workflow) -> dict[str, Any]:
    """The workflow as an ASL document (a dict in the order it is written out)."""
    states: dict[str, dict[str, Any]] = {}
    for name, state in _states(workflow):
        if name in states:
            raise InvalidWorkflow(f"{workflow.name}: two states are named {name!r}")
        states[name] = state
    _check_targets(workflow, states)
    return {
        "Comment": workflow.comment,
        "StartAt": first_state(workflow.steps[0]),
        "TimeoutSeconds": workflow.timeout_seconds,
        "States": states,
    }


def text(workflow: Workflow) -> str:
    """The exact content of the workflow's committed `.asl.json` file."""
    return json.dumps(definition(workflow), indent=2, ensure_ascii=False) + "\n"


def path(workflow: Workflow, directory: Path = STATEMACHINES_DIR) -> Path:
    return directory / f"{workflow.file_stem}{DEFINITION_SUFFIX}"


def write(workflows: Sequence[Workflow], directory: Path = STATEMACHINES_DIR) -> list[Path]:
    """Write each workflow's file; returns the files whose content changed."""
    changed = []
    for workflow in workflows:
        target, content = path(workflow, directory), text(workflow)
        if not target.exists() or target.read_text() != content:
            target.write_text(content)
            changed.append(target)
    return changed


def first_difference(workflows: Sequence[Workflow], directory: Path = STATEMACHINES_DIR) -> str | None:
    """None when every committed file is what its table renders; else the first difference, named."""
    for workflow in workflows:
        target, wanted = path(workflow, directory), text(workflow)
        if not target.exists():
            return f"{target.name} is missing: run `cdcflow workflows render`"
        lines = zip_longest(target.read_text().splitlines(), wanted.splitlines(), fillvalue="(end of file)")
        for line_number, (have, want) in enumerate(lines, start=1):
            if have != want:
                return (f"{target.name} line {line_number} is not what {workflow.name}'s table renders:\n"
                        f"  committed: {have.strip()}\n  rendered:  {want.strip()}\n"
                        "edit the table in statemachines/ and run `cdcflow workflows render`")
    return None


def _states(workflow: Workflow) -> Iterator[tuple[str, dict[str, Any]]]:
    on_error = workflow.on_error
    chain = workflow.compensation_chain()
    then = list(on_error.then)
    failure_target = first_state(chain[0]) if chain else first_state(then[0])

    for index, row in enumerate(workflow.steps):
        following = _following(workflow.steps, index)

        def forward(task: Task, next_state: str | None) -> _Placement:
            catch = task.catch or Catch(failure_target, f"$.errors.{task.name}")
            if isinstance(catch, Reject):
                catch = Catch(catch.name, catch.result_path)
            return _Placement(task.result_path or f"$.results.{task.name}", catch, task.next or next_state or "")

        yield from _row_states(row, following, forward)

    if isinstance(on_error, Compensate):
        for index, compensation in enumerate(chain):
            next_state = first_state(chain[index + 1]) if index + 1 < len(chain) else first_state(then[0])
            placement = _Placement(f"$.compensations.{compensation.name}",
                                   Catch(next_state, f"$.compensation_errors.{compensation.name}"), next_state)
            yield compensation.name, _task(compensation, placement)

    for index, row in enumerate(then):
        def final(task: Task, next_state: str | None) -> _Placement:
            return _Placement(task.result_path or f"$.results.{task.name}", None, task.next or next_state or "")

        yield from _row_states(row, _following(then, index), final)


def _following(rows: Sequence[Row], index: int) -> str | None:
    return first_state(rows[index + 1]) if index + 1 < len(rows) else None


def _row_states(row: Row, following: str | None, place) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(row, Task):
        yield row.name, _task(row, place(row, following))
        if isinstance(row.catch, Reject):
            reject = row.catch
            yield reject.name, {"Type": "Fail", "Comment": reject.comment, "ErrorPath": f"{reject.result_path}.Error",
                                "CausePath": f"{reject.result_path}.Cause"}
    elif isinstance(row, WaitLoop):
        yield from _wait_loop(row, row.next or following, place)
    elif isinstance(row, Choice):
        yield row.name, _compact({"Type": "Choice", "Comment": row.comment, "Choices": [dict(c) for c in row.choices],
                                  "Default": row.default})
    elif isinstance(row, Pass):
        yield row.name, _compact({"Type": "Pass", "Comment": row.comment, "Parameters": row.parameters,
                                  "ResultPath": row.result_path, "Next": row.next or following})
    elif isinstance(row, Fail):
        yield row.name, _compact({"Type": "Fail", "Comment": row.comment, "ErrorPath": row.error_path,
                                  "CausePath": row.cause_path})
    elif isinstance(row, Succeed):
        yield row.name, _compact({"Type": "Succeed", "OutputPath": row.output_path})
    else:  # pragma: no cover - the Row union is closed
        raise InvalidWorkflow(f"unknown row {row!r}")


def _task(task: Task, placement: _Placement, loop: WaitLoop | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = dict(STEP_PAYLOAD)
    if loop is not None:
        payload["attempt.$"] = f"{loop.loop_path}.attempt"
        payload["schedule"] = loop.schedule.as_payload()
    if task.approval_timeout_seconds is not None:
        payload["task_token.$"] = "$$.Task.Token"
    payload.update(task.parameters)
    if task.approval_timeout_seconds is not None:
        resource = WAIT_FOR_TASK_TOKEN
        parameters: dict[str, Any] = {"FunctionName": f"${{{task.function.substitution}}}", "Payload": payload}
        timeout = task.approval_timeout_seconds
    else:
        resource, parameters, timeout = f"${{{task.function.substitution}}}", payload, task.function.timeout_seconds
    state = {
        "Type": "Task",
        "Comment": task.comment,
        "Resource": resource,
        "Parameters": parameters,
        "ResultSelector": task.result_selector,
        "ResultPath": placement.result_path,
        "TimeoutSeconds": timeout,
        "Retry": retriers(task.retry),
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": placement.catch.result_path,
                   "Next": placement.catch.next}] if placement.catch else None,
        "Next": placement.next,
    }
    return _compact(state)


def _wait_loop(loop: WaitLoop, following: str | None, place) -> Iterator[tuple[str, dict[str, Any]]]:
    if following is None:
        raise InvalidWorkflow(f"wait-loop {loop.name} has nothing to go on to once ready")
    schedule = loop.schedule
    yield loop.start_state, {
        "Type": "Pass",
        "Result": {"attempt": 0, "wait_seconds": schedule.wait_seconds(0), "ready": False},
        "ResultPath": loop.loop_path,
        "Next": loop.wait_state,
    }
    yield loop.wait_state, {"Type": "Wait", "SecondsPath": f"{loop.loop_path}.wait_seconds", "Next": loop.check.name}
    placement = place(loop.check, loop.choice_state)
    check = replace(loop.check, comment=loop.check.comment or _loop_comment(loop))
    yield loop.check.name, _task(check, _Placement(loop.loop_path, placement.catch, loop.choice_state), loop)
    yield loop.choice_state, {
        "Type": "Choice",
        "Choices": [{"Variable": f"{loop.loop_path}.ready", "BooleanEquals": True, "Next": following}],
        "Default": loop.wait_state,
    }


def _loop_comment(loop: WaitLoop) -> str:
    schedule = loop.schedule
    settle = f", each check looking for up to {schedule.settle_seconds:g} s" if schedule.settle_seconds else ""
    checks = (f"up to {schedule.attempts} checks without progress and {schedule.most_checks} in all"
              if schedule.most_checks else f"up to {schedule.attempts} checks")
    return (f"Wait-loop: {checks}, {schedule.first} s before the first, then {schedule.base} s "
            f"growing x{schedule.growth} to {schedule.cap} s{settle}; gives up with {loop.gives_up}.")


def _compact(state: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in state.items() if value is not None}


def _check_targets(workflow: Workflow, states: dict[str, dict[str, Any]]) -> None:
    for name, state in states.items():
        targets = [state.get("Next"), state.get("Default")]
        targets += [choice.get("Next") for choice in state.get("Choices", [])]
        targets += [catcher["Next"] for catcher in state.get("Catch", [])]
        if state["Type"] in ("Task", "Pass", "Wait") and not state.get("Next"):
            raise InvalidWorkflow(f"{workflow.name}: {name} has no next state")
        for target in targets:
            if target is not None and target not in states:
                raise InvalidWorkflow(f"{workflow.name}: {name} goes to {target!r}, which is not a state")
