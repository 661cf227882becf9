"""Kill the engine process with SIGKILL mid-execution, start it again on the same journal, and check the outcome.

The engine runs as `python -m localsfn` in a subprocess (the `engine_process`
fixture of tests/engine/conftest.py), driven over its API with boto3. Its
tasks record each call in a SQLite ledger, so the test sees every side
effect, including those of calls the killed engine never heard back from.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter

import pytest

pytestmark = pytest.mark.slow

RECORD_ARN = "arn:aws:lambda:us-east-1:000000000000:function:Record"


def record(step: str, next_state: str | None, first_call_seconds: float = 0) -> dict:
    state = {
        "Type": "Task",
        "Resource": RECORD_ARN,
        "Parameters": {"step": step, "first_call_seconds": first_call_seconds},
        "ResultPath": f"$.{step}",
    }
    return {**state, "Next": next_state} if next_state else {**state, "End": True}


def start(engine, definition: dict, name: str = "run-1") -> str:
    machine = engine.client.create_state_machine(name="Crash", definition=json.dumps(definition), roleArn="arn:aws:iam::000000000000:role/crash")
    return engine.client.start_execution(stateMachineArn=machine["stateMachineArn"], name=name, input="{}")["executionArn"]


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_killed_during_a_wait_resumes_with_completed_tasks_run_once(engine_process):
    definition = {
        "StartAt": "A",
        "States": {"A": record("A", "B"), "B": record("B", "Hold"), "Hold": {"Type": "Wait", "Seconds": 4, "Next": "C"}, "C": record("C", None)},
    }
    engine_process.start()
    arn = start(engine_process, definition)
    wait_until(lambda: any(event["type"] == "WaitStateEntered" for event in engine_process.history(arn)))
    engine_process.kill()
    assert engine_process.runs() == Counter({"A": 1, "B": 1})

    restarted_at = time.time()
    engine_process.start()
    description = engine_process.wait_for_end(arn)
    history = engine_process.history(arn)
    assert description["status"] == "SUCCEEDED"
    assert set(json.loads(description["output"])) == {"A", "B", "C"}
    assert engine_process.runs() == Counter({"A": 1, "B": 1, "C": 1})
    entered = next(event for event in history if event["type"] == "WaitStateEntered")["timestamp"].timestamp()
    exited = next(event for event in history if event["type"] == "WaitStateExited")["timestamp"].timestamp()
    assert exited >= entered + 4 - 0.01
    assert exited < restarted_at + 4  # the remaining time, not the whole Wait again from the restart
    assert engine_process.stop() == 0


def test_killed_during_a_task_runs_that_task_once_more(engine_process):
    definition = {"StartAt": "A", "States": {"A": record("A", "Slow"), "Slow": record("Slow", "C", first_call_seconds=30), "C": record("C", None)}}
    engine_process.start()
    arn = start(engine_process, definition)
    wait_until(lambda: engine_process.runs()["Slow"] == 1)
    engine_process.kill()

    engine_process.start()
    description = engine_process.wait_for_end(arn)
    assert description["status"] == "SUCCEEDED"
    assert engine_process.runs() == Counter({"A": 1, "Slow": 2, "C": 1})
    types = [event["type"] for event in engine_process.history(arn)]
    assert types.count("LambdaFunctionScheduled") == 3 and types.count("LambdaFunctionSucceeded") == 3


def test_repeated_kills_at_random_moments(engine_process):
    steps = [f"S{index:02d}" for index in range(12)]
    states = {step: record(step, following, first_call_seconds=0.15) for step, following in zip(steps, [*steps[1:], None])}
    engine_process.start()
    arn = start(engine_process, {"StartAt": steps[0], "States": states})
    randomness = random.Random(20261122)
    kills = 0
    for _ in range(4):
        time.sleep(randomness.uniform(0.1, 0.6))
        if engine_process.client.describe_execution(executionArn=arn)["status"] != "RUNNING":
            break
        engine_process.kill()
        kills += 1
        engine_process.start()
    description = engine_process.wait_for_end(arn)
    counts = engine_process.runs()
    assert description["status"] == "SUCCEEDED"
    assert set(counts) == set(steps)
    # Only a call in flight at a kill runs again, once: one chain, so at most one extra call per kill.
    assert sum(counts.values()) - len(steps) <= kills
    assert all(count <= 2 for count in counts.values())
    assert kills >= 1


def test_sigterm_stops_the_engine_cleanly(engine_process):
    engine_process.start()
    assert engine_process.client.list_state_machines()["stateMachines"] == []
    assert engine_process.stop() == 0
