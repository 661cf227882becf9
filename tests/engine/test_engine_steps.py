"""Requests that land in the same engine step, and a journal that refuses a step."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from localsfn import Engine, ServiceError
from localsfn.__main__ import run_until_signalled

# Holds every execution open so that "RUNNING" is what the tests see.
HOLD = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 600, "End": True}}}


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@contextmanager
def one_step_for(engine: Engine, count: int) -> Iterator[None]:
    """Make the `count` requests queued inside the block run in one engine step.

    The loop is held committing an unrelated step until all of them are
    queued; then it takes them together, as under real concurrency.
    """
    entered, release = threading.Event(), threading.Event()
    commit = engine.journal.commit

    def held_commit(batch) -> None:
        entered.set()
        release.wait(10)
        commit(batch)

    machine = engine.create_state_machine("Busy", json.dumps(HOLD))
    engine.journal.commit = held_commit
    with ThreadPoolExecutor(1) as busy:
        busy.submit(engine.start_execution, machine, "{}", "busy")
        assert entered.wait(10)
        engine.journal.commit = commit
        try:
            yield
            wait_until(lambda: len(engine._commands) == count)
        finally:
            release.set()


def test_identical_starts_in_one_step_are_one_execution(engine: Engine):
    machine = engine.create_state_machine("Hold", json.dumps(HOLD))
    with ThreadPoolExecutor(8) as callers:
        with one_step_for(engine, 8):
            starts = [callers.submit(engine.start_execution, machine, '{"n": 1}', "same") for _ in range(8)]
        arns = {start.result(timeout=10) for start in starts}

    assert len(arns) == 1
    assert [execution["name"] for execution in engine.list_executions(machine)] == ["same"]


def test_other_input_in_the_same_step_already_exists(engine: Engine):
    machine = engine.create_state_machine("Hold", json.dumps(HOLD))
    with ThreadPoolExecutor(2) as callers:
        with one_step_for(engine, 2):
            first = callers.submit(engine.start_execution, machine, '{"n": 1}', "same")
            wait_until(lambda: len(engine._commands) == 1)
            second = callers.submit(engine.start_execution, machine, '{"n": 2}', "same")

        assert first.result(timeout=10).endswith(":same")
        with pytest.raises(ServiceError) as refused:
            second.result(timeout=10)
    assert refused.value.code == "ExecutionAlreadyExists"
    assert json.loads(engine.describe_execution(first.result())["input"]) == {"n": 1}


class RefusingJournal:
    """Make the journal's next commit fail as a full or broken disk would."""

    def __init__(self, engine: Engine) -> None:
        engine.journal.commit = self.commit

    @staticmethod
    def commit(batch) -> None:
        raise sqlite3.OperationalError("disk I/O error")


def test_a_step_the_journal_refuses_stops_the_engine_instead_of_hanging(tmp_path: Path):
    # On the system clock, so that the held execution's Wait makes no step of its own.
    engine = Engine(tmp_path / "journal.sqlite", {})
    machine = engine.create_state_machine("Hold", json.dumps(HOLD))
    kept = engine.start_execution(machine, "{}", "kept")
    RefusingJournal(engine)

    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        engine.start_execution(machine, "{}", "lost")
    assert isinstance(engine.failure, sqlite3.OperationalError)
    with pytest.raises(RuntimeError, match="could not be journaled"):
        engine.start_execution(machine, "{}", "after")
    engine.close()

    with Engine(tmp_path / "journal.sqlite", {}) as reopened:
        assert [execution["executionArn"] for execution in reopened.list_executions(machine)] == [kept]
        assert reopened.describe_execution(kept)["status"] == "RUNNING"


def test_the_served_engine_exits_with_the_reason_when_its_journal_refuses_a_step(engine: Engine):
    machine = engine.create_state_machine("Hold", json.dumps(HOLD))
    RefusingJournal(engine)

    def refused_start() -> None:
        time.sleep(0.2)
        with pytest.raises(sqlite3.OperationalError):
            engine.start_execution(machine, "{}", "lost")

    threading.Thread(target=refused_start, daemon=True).start()
    with pytest.raises(SystemExit, match="a step could not be journaled.*disk I/O error"):
        run_until_signalled(engine, "127.0.0.1", 0)
