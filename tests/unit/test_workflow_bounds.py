"""The workflows' longest paths stay far inside AWS's 25,000-event history limit, computed from the step tables."""

from dataclasses import replace

import pytest

from lambdas.wait_loop import Schedule
from statemachines import PROVISION, WORKFLOWS, bounds
from statemachines.model import Compensate, Fail, Function, Succeed, Task, WaitLoop, Workflow

pytestmark = pytest.mark.unit


def loops_of(workflow: Workflow) -> list[WaitLoop]:
    return [row for row in workflow.steps if isinstance(row, WaitLoop)]


def test_the_longest_provision_runs_every_loop_to_its_limit_then_a_backfill_that_fails() -> None:
    path = bounds.worst_case(PROVISION).path

    for loop in loops_of(PROVISION):
        assert path.count(loop.check.name) == loop.schedule.checks_at_most
    assert "RequestApproval" in path and "RebootSourceInstance" in path
    assert list(path[-3:]) == ["MarkBackfilled", "MarkBackfillFailed", "BackfillNotRecorded"]


def test_the_longest_rollback_runs_every_compensation() -> None:
    """Without a backfill the longest path fails as late as it can: the whole compensation chain runs."""
    definition = bounds.render.definition(PROVISION)
    definition["States"]["Backfill?"] = {"Type": "Pass", "Next": "MarkActive"}
    path = bounds.bound(definition, loops_of(PROVISION)).path

    chain = [task.name for task in PROVISION.compensation_chain()]
    assert list(path[-len(chain) - 2:]) == [*chain, "MarkFailed", "ProvisionFailed"]


def test_a_backfill_is_followed_for_hours_and_its_history_still_fits() -> None:
    backfill = next(loop for loop in loops_of(PROVISION) if loop.name == "BackfillCopied")
    assert backfill.schedule.checks_at_most > backfill.schedule.attempts
    assert backfill.schedule.longest_wait_seconds() > 4 * 3600


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_the_worst_case_history_fits_the_aws_limit_with_room(workflow: Workflow) -> None:
    assert bounds.worst_case(workflow).events < bounds.AWS_HISTORY_LIMIT / 2


def test_more_loop_attempts_make_a_longer_history() -> None:
    def one_more_check(schedule: Schedule) -> Schedule:
        return replace(schedule, attempts=schedule.attempts + 1,
                       most_checks=schedule.most_checks and schedule.most_checks + 1)

    longer_loops = [replace(row, schedule=one_more_check(row.schedule)) if isinstance(row, WaitLoop) else row
                    for row in PROVISION.steps]
    longer = replace(PROVISION, steps=longer_loops)

    grown = bounds.worst_case(longer).events - bounds.worst_case(PROVISION).events

    one_round_each = 0
    definition = bounds.render.definition(PROVISION)
    for loop in loops_of(PROVISION):
        check = definition["States"][loop.check.name]
        one_round_each += 2 + bounds.task_events(check, bounds.task_attempts(check)) + 2
    assert grown == one_round_each


def test_a_small_workflow_is_counted_event_by_event() -> None:
    work = Function("Work", "lambdas.steps.work.handler", "work")
    undo = Task("Undo", Function("Undo", "lambdas.steps.undo.handler", "undo"), retry=())
    tiny = Workflow(
        name="Tiny", file_stem="tiny", comment="", timeout_seconds=60,
        steps=[
            Task("Make", work, retry=("lambda",), undo="Undo"),  # lambda: MaxAttempts 5
            WaitLoop("Ready", Task("CheckReady", work, retry=()), Schedule(0, 1, 2, 3, attempts=2), gives_up="Never"),
            Succeed("Done"),
        ],
        on_error=Compensate({"Undo": undo}, then=[Fail("Failed", "$.e.Error", "$.e.Cause")]),
    )

    worst = bounds.worst_case(tiny)

    # Make: 6 attempts (2 + 3*6 = 20 events); the loop: Start (2) + 2 rounds of Wait (2), CheckReady (2 + 3),
    # Choice (2), the second giving up without its Choice; Undo (5); Failed (1); execution started/failed (2).
    assert worst.path == ("Make", "StartReady", "WaitForReady", "CheckReady", "ReadyReady?", "WaitForReady",
                          "CheckReady", "Undo", "Failed")
    assert worst.events == 20 + 2 + (2 + 5 + 2) + (2 + 5) + 5 + 1 + 2
    assert worst.transitions == 6 + 1 + (1 + 1 + 1) + (1 + 1) + 1 + 1


def test_retries_are_counted_as_attempts() -> None:
    one_task = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn", "Next": "S",
                                                  "Retry": [{"ErrorEquals": ["A"], "MaxAttempts": 2},
                                                            {"ErrorEquals": ["B"], "MaxAttempts": 3}]},
                                            "S": {"Type": "Succeed"}}}

    counted = bounds.bound(one_task)

    # 6 attempts of 3 events, entered and exited; Succeed entered and exited; execution started and ended.
    assert counted.events == 2 + 3 * 6 + 2 + 2
    assert counted.transitions == 6 + 1
