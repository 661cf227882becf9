"""A pause or resume that fails half-way on the local stack: the pipeline goes back to where it was.

On the in-process engine, with one check made to fail after the real work
happened: a pause that fails once the connectors are paused resumes them
and leaves the pipeline ACTIVE with the error; a resume that fails once the
connectors run again (its canary never seen) pauses them again and leaves
the pipeline PAUSED with the error. A clean resume then finds it whole, and
a teardown of the paused pipeline leaves nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from lambdas import registry
from lambdas.connect.client import ConnectClient
from lambdas.connect.errors import ConnectorFailed
from lambdas.executions import execution_arn, lifecycle_execution_name
from lambdas.registry import PipelineStatus
from lambdas.spec import parse_spec
from lambdas.steps.canary import CanaryNotArrived
from statemachines.catalogue import resolve_local_function
from tests.footprint import footprint

pytestmark = pytest.mark.slow

PIPELINE_ID = "e2e_pause_faults"
EXECUTION_TIMEOUT_SECONDS = 600
STATE_TIMEOUT_SECONDS = 60


def failing_at(state: str, error: Exception) -> Callable[[str], Any]:
    """The stack's functions, except that the task state `state` raises `error` (after nothing of its own)."""
    def resolve(arn: str) -> Any:
        handler = resolve_local_function(arn)
        if handler is None:
            return None

        def invoke(event: dict[str, Any], context: Any) -> Any:
            if event.get("state_name") == state:
                raise error
            return handler(event, context)

        return invoke

    return resolve


def run(engine_with: Callable[..., Any], machine: str, spec: dict[str, Any], name: str,
        functions: Callable[[str], Any] = resolve_local_function, action: str | None = None,
        **execution_input: Any) -> dict[str, Any]:
    """Run `machine` to its end; a lifecycle action first claims the pipeline, as the API does."""
    with engine_with(functions) as (engine, machines):
        if action is not None:
            entry = registry.get(spec["pipeline_id"])
            name = lifecycle_execution_name(entry, action)
            registry.claim_lifecycle(entry, action, execution_arn(machines[machine], name))
        arn = engine.start_execution(machines[machine], json.dumps({"spec": spec, **execution_input}), name=name)
        return engine.wait_for_execution(arn, EXECUTION_TIMEOUT_SECONDS)


def connectors_become(spec: dict[str, Any], wanted: str) -> dict[str, tuple[str, list[str]]]:
    """The connectors' states once both (and their tasks) are `wanted`, or as they are after the timeout."""
    names = parse_spec(spec).names
    deadline = time.monotonic() + STATE_TIMEOUT_SECONDS
    with ConnectClient(spec["connect"]["url"]) as client:
        while True:
            states = {}
            for name in (names.source_connector, names.sink_connector):
                status = client.get_status(name)
                states[name] = (status["connector"]["state"], [task["state"] for task in status["tasks"]])
            if all(state == (wanted, [wanted]) for state in states.values()) or time.monotonic() > deadline:
                return states
            time.sleep(0.5)


def test_a_failed_pause_or_resume_leaves_the_pipeline_as_it_was(engine_with, spec_for) -> None:
    spec = spec_for(PIPELINE_ID)
    provisioned = run(engine_with, "ProvisionPipeline", spec, PIPELINE_ID)
    assert provisioned["status"] == "SUCCEEDED", provisioned

    # The pause fails once both connectors are paused: they run again, and the pipeline stays ACTIVE.
    failed_pause = run(engine_with, "PausePipeline", spec, "", action="pause",
                       functions=failing_at("CheckConnectorsPaused", ConnectorFailed("injected: a task failed")))
    assert failed_pause["status"] == "FAILED" and failed_pause["error"] == "ConnectorFailed"
    entry = registry.get(PIPELINE_ID)
    assert entry.status is PipelineStatus.ACTIVE and entry.lifecycle_execution_arn is None
    assert entry.last_error["error"] == "ConnectorFailed" and entry.current_step == "CheckConnectorsPaused"
    assert "CheckConnectorsPaused" in entry.last_error["cause"] and "injected" in entry.last_error["cause"]
    assert all(state == ("RUNNING", ["RUNNING"]) for state in connectors_become(spec, "RUNNING").values())

    paused = run(engine_with, "PausePipeline", spec, "", action="pause")
    assert paused["status"] == "SUCCEEDED", paused
    entry = registry.get(PIPELINE_ID)
    assert entry.status is PipelineStatus.PAUSED and entry.last_error is None and entry.current_step == "MarkPaused"

    # The resume fails after the connectors run again: they are paused again, and the pipeline stays PAUSED.
    failed_resume = run(engine_with, "ResumePipeline", spec, "", action="resume",
                        functions=failing_at("CheckCanaryArrived", CanaryNotArrived("injected: no canary")))
    assert failed_resume["status"] == "FAILED" and failed_resume["error"] == "CanaryNotArrived"
    entry = registry.get(PIPELINE_ID)
    assert entry.status is PipelineStatus.PAUSED and entry.lifecycle_execution_arn is None
    assert entry.last_error["error"] == "CanaryNotArrived"
    assert all(state == ("PAUSED", ["PAUSED"]) for state in connectors_become(spec, "PAUSED").values())

    resumed = run(engine_with, "ResumePipeline", spec, "", action="resume")
    assert resumed["status"] == "SUCCEEDED", resumed
    entry = registry.get(PIPELINE_ID)
    assert entry.status is PipelineStatus.ACTIVE and entry.last_error is None
    assert all(state == ("RUNNING", ["RUNNING"]) for state in connectors_become(spec, "RUNNING").values())

    # Paused again, then torn down while PAUSED: nothing is left either.
    assert run(engine_with, "PausePipeline", spec, "", action="pause")["status"] == "SUCCEEDED"
    assert registry.get(PIPELINE_ID).status is PipelineStatus.PAUSED
    teardown = run(engine_with, "TeardownPipeline", spec, f"teardown-{PIPELINE_ID}", keep_topics=False,
                   keep_index=False)
    assert teardown["status"] == "SUCCEEDED", teardown
    assert footprint(parse_spec(spec)).present() == {}
