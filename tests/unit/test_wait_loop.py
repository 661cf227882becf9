"""The wait-loop rules: the schedule the step table gives, settling inside a check, and giving up."""

import itertools

import pytest

from lambdas.errors import StepError
from lambdas.wait_loop import Schedule, next_round, schedule_of, settle

pytestmark = pytest.mark.unit


class GaveUp(StepError):
    pass


def test_waits_start_at_first_then_grow_from_base_to_the_cap():
    schedule = Schedule(first=0, base=1, growth=2, cap=10, attempts=8)
    assert [schedule.wait_seconds(checks) for checks in range(8)] == [0, 1, 2, 4, 8, 10, 10, 10]
    assert schedule.wait_seconds(10_000) == 10
    with pytest.raises(ValueError):
        schedule.wait_seconds(-1)


def test_the_longest_wait_adds_every_wait_and_every_settle():
    schedule = Schedule(first=0, base=1, growth=2, cap=4, attempts=5, settle_seconds=0.5)
    assert schedule.longest_wait_seconds() == 0 + 1 + 2 + 4 + 4 + 5 * 0.5


@pytest.mark.parametrize("bad", [
    {"first": -1, "base": 1, "growth": 2, "cap": 3, "attempts": 2},
    {"first": 0, "base": 1, "growth": 0, "cap": 3, "attempts": 2},
    {"first": 0, "base": 1, "growth": 2, "cap": 3, "attempts": 0},
])
def test_a_schedule_that_cannot_end_or_waits_backwards_is_refused(bad):
    with pytest.raises(ValueError):
        Schedule(**bad)


def test_a_check_reads_the_schedule_the_state_machine_passed():
    schedule = Schedule(first=0, base=1, growth=3, cap=9, attempts=4, settle_seconds=1.5, poll_interval=0.25)
    assert schedule_of({"schedule": schedule.as_payload()}) == schedule
    with pytest.raises(ValueError, match="needs the loop's schedule"):
        schedule_of({"attempt": 1})
    with pytest.raises(ValueError, match="not a wait-loop schedule"):
        schedule_of({"schedule": {"first": 0}})


def test_next_round_counts_the_check_and_gives_up_after_the_last():
    schedule = Schedule(first=0, base=1, growth=2, cap=30, attempts=3)

    def gave_up(checks):
        return GaveUp(f"gave up after {checks}")

    assert next_round(False, 0, schedule, gave_up) == {"ready": False, "attempt": 1, "wait_seconds": 1}
    assert next_round(True, 2, schedule, gave_up, state="RUNNING") == {
        "ready": True, "attempt": 3, "wait_seconds": 4, "state": "RUNNING"}
    with pytest.raises(GaveUp, match="gave up after 3"):
        next_round(False, 2, schedule, gave_up)


def test_settle_looks_again_until_done_within_its_time():
    clock = itertools.count(0.0, 0.1)
    looks = iter([False, False, True, True])
    naps = []
    schedule = Schedule(first=0, base=1, growth=2, cap=30, attempts=3, settle_seconds=1.0, poll_interval=0.1)

    assert settle(lambda: next(looks), bool, schedule, sleep=naps.append, clock=lambda: next(clock)) is True
    assert naps == [0.1, 0.1]


def test_settle_answers_not_yet_once_its_time_is_up():
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    schedule = Schedule(first=0, base=1, growth=2, cap=30, attempts=3, settle_seconds=0.5, poll_interval=0.1)
    looks = []
    assert settle(lambda: looks.append(now[0]) or False, bool, schedule, sleep=sleep, clock=lambda: now[0]) is False
    assert len(looks) == 6 and now[0] == pytest.approx(0.5)


def test_a_schedule_without_settling_looks_once():
    looks = []
    schedule = Schedule(first=0, base=1, growth=2, cap=30, attempts=3)
    assert settle(lambda: looks.append(1) or False, bool, schedule, sleep=pytest.fail) is False
    assert looks == [1]
