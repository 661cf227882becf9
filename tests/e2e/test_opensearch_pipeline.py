"""ProvisionPipeline, Reconcile and TeardownPipeline with an OpenSearch sink, on the local engine and a real OpenSearch.

The workflows run in this process against the local stack, with OpenSearch
started for this module. What is left after a rollback or a teardown is
counted by querying every system (`tests/footprint.py`), the sink's indices
included.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import requests

from cdcflow.local import stack as local_stack_module
from cdcflow.local.config import config_from_env
from lambdas import registry
from lambdas.opensearch import existing_indices, pipeline_indices
from lambdas.reconcile import reconcile
from lambdas.registry import PipelineStatus
from lambdas.spec import parse_spec
from statemachines.catalogue import resolve_local_function
from tests.footprint import footprint

pytestmark = pytest.mark.slow

EXECUTION_TIMEOUT_SECONDS = 600


class InjectedFault(Exception):
    """Raised after (or instead of) a step's real work; the engine reports it under this name, as Lambda would."""


@pytest.fixture(scope="module")
def opensearch_url(local_stack) -> Iterator[str]:
    config = config_from_env()
    started = local_stack_module.up(config, progress=print, extras=("opensearch",)).started
    yield f"http://127.0.0.1:{config.ports.opensearch}"
    if "opensearch" in started:
        local_stack_module.down(config, only=("opensearch",))


@pytest.fixture
def opensearch_spec(spec_for, opensearch_url) -> Callable[[str], dict[str, Any]]:
    def make(pipeline_id: str) -> dict[str, Any]:
        spec = spec_for(pipeline_id)
        spec["sink"] = {"type": "opensearch", "url": opensearch_url}
        return spec
    return make


def fail_after(state: str) -> Callable[[str], Any]:
    """The real handlers, except that `state` raises InjectedFault once its real work is done."""
    def functions(arn: str) -> Any:
        handler = resolve_local_function(arn)
        if handler is None:
            return None

        def invoke(event: dict[str, Any], context: Any) -> Any:
            result = handler(event, context)
            if event.get("state_name") == state:
                raise InjectedFault(f"injected failure after {state}")
            return result
        return invoke
    return functions


def run(engine_with, machine: str, document: dict[str, Any], name: str, functions=resolve_local_function) -> dict:
    with engine_with(functions) as (engine, machines):
        arn = engine.start_execution(machines[machine], json.dumps(document), name=name)
        return engine.wait_for_execution(arn, EXECUTION_TIMEOUT_SECONDS)


@pytest.mark.parametrize("failing_state", ["PutSinkConnector", "CheckCanaryArrived"])
def test_a_failure_at_the_sink_or_the_canary_rolls_back_the_index_too(engine_with, opensearch_spec, failing_state):
    spec = opensearch_spec(f"os_rb_{failing_state.lower()}")
    parsed = parse_spec(spec)

    execution = run(engine_with, "ProvisionPipeline", {"spec": spec}, spec["pipeline_id"], fail_after(failing_state))

    assert execution["status"] == "FAILED" and execution["error"] == "InjectedFault"
    assert registry.get(spec["pipeline_id"]).status is PipelineStatus.FAILED
    # The failing step had created the indices (and the connector) before it failed: none is left.
    assert footprint(parsed).present() == {}


def test_an_opensearch_pipeline_provisions_reconciles_and_tears_down(engine_with, opensearch_spec, opensearch_url,
                                                                    local_stack, captured_table):
    spec = opensearch_spec("os_lifecycle")
    parsed = parse_spec(spec)
    indices = pipeline_indices(parsed)

    execution = run(engine_with, "ProvisionPipeline", {"spec": spec}, spec["pipeline_id"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert registry.get(spec["pipeline_id"]).status is PipelineStatus.ACTIVE
    assert existing_indices(opensearch_url, indices) == set(indices)

    with psycopg.connect(local_stack.postgres.source_dsn(), autocommit=True) as conn:
        row_id = conn.execute(
            "INSERT INTO public.e2e_orders (item, qty) VALUES ('to the index', 2) RETURNING id").fetchone()[0]
    table_index = parsed.names.table_topic(captured_table)

    def document() -> dict | None:
        response = requests.get(f"{opensearch_url}/{table_index}/_doc/{row_id}", timeout=10)
        return response.json()["_source"] if response.status_code == 200 else None

    found = None
    for _ in range(120):
        if found := document():
            break
        time.sleep(1)
    assert found == {"id": row_id, "item": "to the index", "qty": 2}

    healthy = next(p for p in reconcile().pipelines if p.pipeline_id == spec["pipeline_id"])
    assert healthy.sink_connector == "RUNNING" and healthy.problems == [] and healthy.errors == []

    requests.delete(f"{opensearch_url}/{table_index}", timeout=10)
    drifted = next(p for p in reconcile().pipelines if p.pipeline_id == spec["pipeline_id"])
    assert f"index {table_index} is missing at the OpenSearch sink" in drifted.problems

    config = config_from_env()
    local_stack_module.down(config, only=("opensearch",))
    try:
        report = reconcile()
        unreachable = [error for error in report.errors if error.target == "sink"]
        assert [error.location for error in unreachable] == [opensearch_url]
        assert spec["pipeline_id"] in unreachable[0].pipelines and "did not answer" in unreachable[0].error
        mine = next(p for p in report.pipelines if p.pipeline_id == spec["pipeline_id"])
        assert any(f"sink {opensearch_url} could not be checked" in error for error in mine.errors)
    finally:
        local_stack_module.up(config, extras=("opensearch",))

    teardown = run(engine_with, "TeardownPipeline", {"spec": spec, "keep_topics": False, "keep_index": False}, f"teardown-{spec['pipeline_id']}")
    assert teardown["status"] == "SUCCEEDED", teardown.get("cause")
    assert footprint(parsed).present() == {}
