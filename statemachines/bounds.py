"""How long a workflow's history can get: events and state transitions of its longest path.

AWS stops a Standard workflow at 25,000 history events, and bills each
state transition (retries included). The longest path is computed from the
rendered definition and the step table's wait-loops, so a change to either
changes the figure. Along it:

- every task attempt fails until its Retry policies are exhausted, and only
  the last attempt goes on (each retrier counts separately: a task that
  retries on two errors may use both budgets);
- every wait-loop runs all of its schedule's checks (a loop that follows
  progress, its `most_checks`), and its last check either finds the
  dependency ready or gives up, whichever leads further;
- at every other Choice, and at every task with a Catch, the branch with the
  most events is taken: for ProvisionPipeline an RDS source with an approval,
  then a backfill followed to its last check that fails.

Events per state follow AWS's history: StateEntered and StateExited for each
visit, and for a Lambda task Scheduled, Started and Succeeded/Failed per
attempt (a `.waitForTaskToken` task also records TaskSubmitted).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from statemachines import render
from statemachines.model import WaitLoop, Workflow

EXECUTION_EVENTS = 2  # ExecutionStarted, ExecutionSucceeded/Failed
AWS_HISTORY_LIMIT = 25_000


@dataclass(frozen=True)
class HistoryBound:
    events: int
    transitions: int
    path: tuple[str, ...]

    @property
    def states_visited(self) -> int:
        return len(self.path)


def task_attempts(state: dict[str, Any]) -> int:
    return 1 + sum(retrier.get("MaxAttempts", 3) for retrier in state.get("Retry", []))


def task_events(state: dict[str, Any], attempts: int) -> int:
    per_attempt = 4 if str(state.get("Resource", "")).endswith(".waitForTaskToken") else 3
    return 2 + per_attempt * attempts


def worst_case(workflow: Workflow) -> HistoryBound:
    """The longest path of the workflow, with its events and transitions (see the module's docstring)."""
    return bound(render.definition(workflow), [row for row in workflow.all_rows() if isinstance(row, WaitLoop)])


def bound(definition: dict[str, Any], loops: list[WaitLoop] = ()) -> HistoryBound:
    """The longest path through `definition`, whose wait-loops are `loops` (each entered at its Start state)."""
    states = definition["States"]
    loops_by_start = {loop.start_state: loop for loop in loops}

    @functools.cache
    def longest(name: str) -> tuple[int, int, tuple[str, ...]]:
        if name in loops_by_start:
            return _through_loop(loops_by_start[name])
        state = states[name]
        kind = state["Type"]
        if kind == "Task":
            attempts = task_attempts(state)
            here = (task_events(state, attempts), attempts)
        elif kind == "Fail":
            here = (1, 1)  # its exit is the ExecutionFailed event
        else:
            here = (2, 1)
        following = [longest(target) for target in _successors(state)]
        events, transitions, path = max(following, default=(0, 0, ()))
        return here[0] + events, here[1] + transitions, (name, *path)

    def _through_loop(loop: WaitLoop) -> tuple[int, int, tuple[str, ...]]:
        check = states[loop.check.name]
        attempts = task_attempts(check)
        one_round = 2 + task_events(check, attempts) + 2  # Wait, Check, Choice
        rounds = loop.schedule.checks_at_most
        events = 2 + rounds * one_round
        transitions = 1 + rounds * (2 + attempts)
        path = (loop.start_state, *(loop.wait_state, loop.check.name, loop.choice_state) * rounds)
        # The last round ends either ready (its Choice goes on) or giving up (the check's Catch, and no Choice).
        on_ready = longest(states[loop.choice_state]["Choices"][0]["Next"])
        on_give_up = max((longest(catcher["Next"]) for catcher in check.get("Catch", [])), default=None)
        if on_give_up is not None and on_give_up[0] - 2 > on_ready[0]:
            return events - 2 + on_give_up[0], transitions - 1 + on_give_up[1], path[:-1] + on_give_up[2]
        return events + on_ready[0], transitions + on_ready[1], path + on_ready[2]

    events, transitions, path = longest(definition["StartAt"])
    return HistoryBound(events=EXECUTION_EVENTS + events, transitions=transitions, path=path)


def _successors(state: dict[str, Any]) -> list[str]:
    targets = [state.get("Next"), state.get("Default")]
    targets += [choice["Next"] for choice in state.get("Choices", [])]
    targets += [catcher["Next"] for catcher in state.get("Catch", [])]
    return list(dict.fromkeys(target for target in targets if target))
