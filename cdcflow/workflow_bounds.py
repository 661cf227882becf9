"""How long ProvisionPipeline's history can get: events and state transitions of its longest path.

AWS stops a Standard workflow at 25,000 history events, and bills each
state transition (retries included). The longest path is computed from the
definition itself, so a change to the workflow changes the figure:

- the RDS source with an approval: every state of the happy path, plus
  RequestApproval, the reboot and the instance wait-loop;
- every wait-loop runs its full `MAX_READINESS_ATTEMPTS` rounds;
- every task attempt fails until its Retry policies are exhausted, and only
  the last attempt succeeds (each retrier counts separately: a task that
  retries on two errors may use both budgets);
- the last canary check fails, so the whole compensation chain runs, each
  compensation again exhausting its retries, and the execution fails.

Events per state follow AWS's history: StateEntered and StateExited for each
visit, and for a Lambda task Scheduled, Started and Succeeded/Failed per
attempt (a `.waitForTaskToken` task also records TaskSubmitted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambdas.connect.readiness import MAX_READINESS_ATTEMPTS

PROVISION_DEFINITION = Path(__file__).resolve().parent.parent / "statemachines" / "provision_pipeline.asl.json"
EXECUTION_EVENTS = 2  # ExecutionStarted, ExecutionSucceeded/Failed
# Choices of the longest path: ask for approval, get it, reboot.
LONGEST_CHOICES = {"RebootRequired?": "RequestApproval", "Approved?": "RebootSourceInstance"}
LAST_CHECK = "CheckCanaryArrived"


@dataclass(frozen=True)
class HistoryBound:
    events: int
    transitions: int
    states_visited: int


def _attempts(state: dict[str, Any]) -> int:
    return 1 + sum(retrier.get("MaxAttempts", 3) for retrier in state.get("Retry", []))


def _task_events(state: dict[str, Any], attempts: int) -> int:
    per_attempt = 4 if str(state.get("Resource", "")).endswith(".waitForTaskToken") else 3
    return 2 + per_attempt * attempts


def longest_path(definition: dict[str, Any]) -> list[str]:
    """The state names of the longest path, in order (see the module's docstring)."""
    states = definition["States"]
    path: list[str] = []
    rounds: dict[str, int] = {}
    name = definition["StartAt"]
    while True:
        path.append(name)
        state = states[name]
        kind = state["Type"]
        if kind in ("Succeed", "Fail"):
            return path
        if kind == "Choice":
            if name in LONGEST_CHOICES:
                name = LONGEST_CHOICES[name]
                continue
            rounds[name] = rounds.get(name, 0) + 1
            ready = state["Choices"][0]["Next"]
            name = ready if rounds[name] >= MAX_READINESS_ATTEMPTS else state["Default"]
            continue
        if name == LAST_CHECK and rounds.get("CanaryArrivedReady?", 0) == MAX_READINESS_ATTEMPTS - 1:
            name = state["Catch"][0]["Next"]  # the last check gives up: roll everything back
            continue
        name = state["Next"]


def bound(definition: dict[str, Any]) -> HistoryBound:
    states = definition["States"]
    events, transitions = EXECUTION_EVENTS, 0
    path = longest_path(definition)
    for name in path:
        state = states[name]
        if state["Type"] == "Task":
            attempts = _attempts(state)
            events += _task_events(state, attempts)
            transitions += attempts
        else:
            events += 1 if state["Type"] == "Fail" else 2  # a Fail state's exit is the ExecutionFailed event
            transitions += 1
    return HistoryBound(events=events, transitions=transitions, states_visited=len(path))


def provision_worst_case(definition_file: Path = PROVISION_DEFINITION) -> HistoryBound:
    return bound(json.loads(definition_file.read_text()))
