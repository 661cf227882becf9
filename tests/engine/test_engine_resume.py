"""Closing an engine and opening another on the same journal: executions go on where they were."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

from localsfn import Engine, VirtualClock

ARN = "arn:aws:lambda:us-east-1:000000000000:function:"


class Ledger:
    """Handlers that count their calls by step name; `blocking` steps wait until released on their first call."""

    def __init__(self, blocking: set[str] = frozenset()) -> None:
        self.calls: Counter[str] = Counter()
        self.started = {name: threading.Event() for name in blocking}
        self.release = threading.Event()
        self._lock = threading.Lock()

    def handler(self, event, context):
        with self._lock:
            self.calls[event["step"]] += 1
            first = self.calls[event["step"]] == 1
        if first and event["step"] in self.started:
            self.started[event["step"]].set()
            self.release.wait(10)
        return {"step": event["step"]}

    def functions(self) -> dict:
        return {ARN + "Record": self.handler}


def record(step: str, next_state: str | None) -> dict:
    state = {"Type": "Task", "Resource": ARN + "Record", "Parameters": {"step": step}, "ResultPath": f"$.{step}"}
    return {**state, "Next": next_state} if next_state else {**state, "End": True}


def start(engine: Engine, definition: dict) -> str:
    machine = engine.create_state_machine("Resumable", json.dumps(definition))
    return engine.start_execution(machine, "{}", name="run-1")


def events_of(engine: Engine, arn: str, kind: str) -> list[dict]:
    return [event for event in engine.get_execution_history(arn) if event["type"] == kind]


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_a_wait_resumes_with_its_remaining_time_and_completed_tasks_do_not_run_again(tmp_path: Path):
    ledger = Ledger()
    definition = {
        "StartAt": "A",
        "States": {"A": record("A", "Hold"), "Hold": {"Type": "Wait", "Seconds": 3600, "Next": "B"}, "B": record("B", None)},
    }
    journal = tmp_path / "journal.sqlite"
    first = Engine(journal, ledger.functions())
    arn = start(first, definition)
    wait_until(lambda: events_of(first, arn, "WaitStateEntered"))
    entered = events_of(first, arn, "WaitStateEntered")[0]["timestamp"]
    first.close()

    with Engine(journal, ledger.functions(), clock=VirtualClock()) as second:
        description = second.wait_for_execution(arn, timeout=10)
        exited = events_of(second, arn, "WaitStateExited")[0]["timestamp"]
        history = second.get_execution_history(arn)
    assert description["status"] == "SUCCEEDED"
    assert ledger.calls == Counter({"A": 1, "B": 1})
    assert (exited - entered).total_seconds() == 3600  # the original due time, not a new hour from the restart
    assert [event["id"] for event in history] == list(range(1, len(history) + 1))


def test_a_task_in_flight_is_run_once_more_after_a_restart(tmp_path: Path):
    ledger = Ledger(blocking={"B"})
    definition = {"StartAt": "A", "States": {"A": record("A", "B"), "B": record("B", "C"), "C": record("C", None)}}
    journal = tmp_path / "journal.sqlite"
    first = Engine(journal, ledger.functions())
    arn = start(first, definition)
    assert ledger.started["B"].wait(10)
    first.close()  # B's call is in flight; its result will be dropped

    with Engine(journal, ledger.functions()) as second:
        description = second.wait_for_execution(arn, timeout=10)
        history = second.get_execution_history(arn)
    ledger.release.set()
    assert description["status"] == "SUCCEEDED"
    assert json.loads(description["output"]) == {"A": {"step": "A"}, "B": {"step": "B"}, "C": {"step": "C"}}
    assert ledger.calls == Counter({"A": 1, "B": 2, "C": 1})
    assert [event["type"] for event in history].count("LambdaFunctionSucceeded") == 3


def test_a_map_resumes_without_rerunning_finished_iterations(tmp_path: Path):
    ledger = Ledger(blocking={"item-2"})
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "MaxConcurrency": 1,
                "ItemSelector": {"step.$": "States.Format('item-{}', $$.Map.Item.Index)"},
                "ItemProcessor": {"StartAt": "R", "States": {"R": {"Type": "Task", "Resource": ARN + "Record", "End": True}}},
                "End": True,
            }
        },
    }
    journal = tmp_path / "journal.sqlite"
    first = Engine(journal, ledger.functions())
    machine = first.create_state_machine("Each", json.dumps(definition))
    arn = first.start_execution(machine, json.dumps([0, 1, 2, 3]))
    assert ledger.started["item-2"].wait(10)
    first.close()

    with Engine(journal, ledger.functions()) as second:
        description = second.wait_for_execution(arn, timeout=10)
    ledger.release.set()
    assert json.loads(description["output"]) == [{"step": f"item-{index}"} for index in range(4)]
    assert ledger.calls == Counter({"item-0": 1, "item-1": 1, "item-2": 2, "item-3": 1})


def test_a_task_token_stays_valid_across_a_restart(tmp_path: Path):
    tokens: list[str] = []
    functions = {ARN + "Ask": lambda event, context: tokens.append(event["token"])}
    definition = {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "Ask", "Payload": {"token.$": "$$.Task.Token"}},
                "End": True,
            }
        },
    }
    journal = tmp_path / "journal.sqlite"
    first = Engine(journal, functions)
    arn = start(first, definition)
    wait_until(lambda: events_of(first, arn, "TaskSubmitted"))
    first.close()

    with Engine(journal, functions) as second:
        second.send_task_success(tokens[0], '{"approved": true}')
        description = second.wait_for_execution(arn, timeout=10)
    assert json.loads(description["output"]) == {"approved": True}
    assert len(tokens) == 1


def test_closed_executions_stay_closed(tmp_path: Path):
    journal = tmp_path / "journal.sqlite"
    with Engine(journal, {}) as first:
        machine = first.create_state_machine("Done", json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}))
        arn = first.start_execution(machine, '{"x": 1}')
        first.wait_for_execution(arn, timeout=10)
        history = first.get_execution_history(arn)
    with Engine(journal, {}) as second:
        assert second.describe_execution(arn)["status"] == "SUCCEEDED"
        assert second.get_execution_history(arn) == history
        assert second.list_state_machines()[0]["stateMachineArn"] == machine
