"""JSONata states and workflow variables survive a SIGKILL of the engine like the rest (see test_engine_crash.py; the engine_process fixture is in conftest.py)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from test_engine_crash import RECORD_ARN, start, wait_until

pytestmark = pytest.mark.slow


def test_killed_during_a_wait_keeps_the_variables_assigned_before_it(engine_process):
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "Set",
        "States": {
            "Set": {"Type": "Pass", "Assign": {"pipeline": "orders", "attempt": 1}, "Next": "First"},
            "First": {
                "Type": "Task", "Resource": RECORD_ARN, "Arguments": {"step": "{% $pipeline & '-first' %}"},
                "Assign": {"first": "{% $states.result.step %}", "attempt": "{% $attempt + 1 %}"}, "Next": "Hold",
            },
            "Hold": {"Type": "Wait", "Seconds": 3, "Next": "Second"},
            "Second": {
                "Type": "Task", "Resource": RECORD_ARN, "Arguments": {"step": "{% $first & '-then' %}"},
                "Output": {"first": "{% $first %}", "second": "{% $states.result.step %}", "attempt": "{% $attempt %}"}, "End": True,
            },
        },
    }
    engine_process.start()
    arn = start(engine_process, definition)
    wait_until(lambda: any(event["type"] == "WaitStateEntered" for event in engine_process.history(arn)))
    engine_process.kill()
    assert engine_process.runs() == Counter({"orders-first": 1})

    engine_process.start()
    description = engine_process.wait_for_end(arn)
    assert description["status"] == "SUCCEEDED"
    assert json.loads(description["output"]) == {"first": "orders-first", "second": "orders-first-then", "attempt": 2}
    assert engine_process.runs() == Counter({"orders-first": 1, "orders-first-then": 1})
    assert engine_process.stop() == 0
