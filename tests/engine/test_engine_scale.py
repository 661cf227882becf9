"""Waiting costs memory, not threads: a thousand executions in Wait states share the engine's one loop."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from localsfn import Engine

pytestmark = pytest.mark.slow


def test_a_thousand_waiting_executions_add_no_threads(tmp_path: Path):
    with Engine(tmp_path / "journal.sqlite", {}) as engine:
        machine = engine.create_state_machine("Sleepers", json.dumps({"StartAt": "Sleep", "States": {"Sleep": {"Type": "Wait", "Seconds": 3600, "End": True}}}))
        threads_before = threading.active_count()
        executions = [engine.start_execution(machine, "{}") for _ in range(1000)]
        history = engine.get_execution_history(executions[-1])
        while history[-1]["type"] != "WaitStateEntered":
            threading.Event().wait(0.01)
            history = engine.get_execution_history(executions[-1])
        assert threading.active_count() == threads_before
        statuses = {engine.describe_execution(arn)["status"] for arn in executions}
        assert statuses == {"RUNNING"}
        assert all(engine.get_execution_history(arn)[-1]["type"] == "WaitStateEntered" for arn in executions[::97])
