"""Cancel and clean on the real stack, through its API, engine and `cdcflow teardown`.

A DELETE of a pipeline that is being provisioned stops the provisioning and
tears down what it had created. A FAILED pipeline whose spec named an
unreachable source, a missing sink database or a wrong Kafka address (each
failing at Preflight, before anything was created) is torn down at once.
Either way the teardown exits 0, the registry says DELETED and
`tests.footprint` finds nothing of the pipeline.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import psycopg
import pytest

from cdcflow.local.config import Endpoints
from cdcflow.local.workflows import REGISTRY_TABLE, STATE_MACHINE_ARN_PREFIX
from lambdas import registry
from lambdas.registry import PipelineStatus
from lambdas.spec import parse_spec
from lambdas.steps.cancel import NOT_BEGUN_GRACE_SECONDS as AWAIT_GRACE_SECONDS
from tests.footprint import footprint
from tests.tenancy import team_request

pytestmark = pytest.mark.slow

RUN = uuid.uuid4().hex[:6]
# Steps after the first resource exists and before the pipeline is ACTIVE: a DELETE seen here lands mid-way.
SETTLE_SECONDS = 180  # a bound for a loaded two-core machine; reaching it fails the test, nothing is timed


def wait_for(description: str, probe: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + SETTLE_SECONDS
    while not (result := probe()):
        assert time.monotonic() < deadline, f"gave up waiting for {description}"
        time.sleep(0.05)
    return result


def cdcflow(stack: Endpoints, *arguments: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it against the stack (it signs its requests as the stack's admin)."""
    return subprocess.run(
        [sys.executable, "-m", "cdcflow.cli", *arguments, "--api-url", stack.api.url, "--sfn-endpoint",
         stack.engine.url],
        check=False, capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "300"},
    )


def cdcflow_started(stack: Endpoints, *arguments: str) -> subprocess.Popen[str]:
    """The CLI started in the background, as `cdcflow` runs it."""
    return subprocess.Popen(
        [sys.executable, "-m", "cdcflow.cli", *arguments, "--api-url", stack.api.url, "--sfn-endpoint",
         stack.engine.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "300"},
    )


def printout(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


@pytest.fixture
def stack_registry(workflow_env, monkeypatch):
    """`lambdas.registry` reading the stack's own registry (the one its API and engine write)."""
    monkeypatch.setenv("REGISTRY_TABLE", REGISTRY_TABLE)
    return registry


def request_file(stack: Endpoints, tmp_path, spec: dict[str, Any]) -> str:
    """The team's request for the resolved `spec`, its connections registered, as a file for the CLI."""
    path = tmp_path / f"{spec['pipeline_id']}.json"
    path.write_text(json.dumps(team_request(stack, spec)))
    return str(path)


def port_nobody_listens_on() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mistaken(stack: Endpoints, case: str) -> tuple[dict[str, Any], str]:
    """The spec sections that are wrong, and the error Preflight fails with."""
    return {
        "unreachable_source_port": ({"source": {"port": port_nobody_listens_on()}}, "SourceUnreachable"),
        "missing_sink_database": ({"sink": {"database": f"no_such_db_{RUN}"}}, "SinkDatabaseMissing"),
        "wrong_kafka_address": ({"kafka": {"bootstrap_servers": f"127.0.0.1:{port_nobody_listens_on()}"}},
                                "KafkaUnreachable"),
    }[case]


def test_a_delete_during_provisioning_stops_it_and_removes_everything_it_created(
    workflow_env, spec_for, stack_registry, tmp_path,
):
    """The DELETE lands while CreateSlot is blocked; the slot it creates after the stop is removed too.

    Creating a logical slot waits for the transactions open when it began: a
    transaction held open here keeps CreateSlot in the middle of its work
    while the provisioning is stopped, and ends only once the stop is done.
    """
    stack = workflow_env
    pipeline_id = f"cancel_{RUN}"
    spec = spec_for(pipeline_id)
    sfn = boto3.client("stepfunctions", endpoint_url=stack.engine.url)
    slot = parse_spec(spec).names.replication_slot
    with psycopg.connect(stack.postgres.source_dsn()) as blocker:
        blocker.execute("SELECT txid_current()")  # an open transaction with an xid: slot creation waits for it
        started = cdcflow(stack, "provision", request_file(stack, tmp_path, spec), "--no-follow")
        assert started.returncode == 0, printout(started)
        wait_for("CreateSlot to wait for the open transaction", lambda: blocker_waited_on(stack, slot))
        provisioning_arn = stack_registry.get(pipeline_id).execution_arn

        teardown = cdcflow_started(stack, "teardown", pipeline_id)
        wait_for("the provisioning to stop",
                 lambda: sfn.describe_execution(executionArn=provisioning_arn)["status"] != "RUNNING")
        assert sfn.describe_execution(executionArn=provisioning_arn)["status"] == "ABORTED"
        wait_for("the teardown to wait for CreateSlot",
                 lambda: stack_registry.get(pipeline_id).current_step == "AwaitStoppedStep")
        time.sleep(AWAIT_GRACE_SECONDS + 1)  # past the grace a step that never began gets
        teardown_arn = teardown_execution(sfn, pipeline_id)
        assert sfn.describe_execution(executionArn=teardown_arn)["status"] == "RUNNING"  # still waiting
        blocker.rollback()  # CreateSlot now creates the slot, after the provisioning was stopped

    stdout, stderr = teardown.communicate(timeout=600)
    assert teardown.returncode == 0, f"exit {teardown.returncode}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    assert stack_registry.get(pipeline_id).status is PipelineStatus.DELETED
    assert footprint(parse_spec(spec)).present() == {}


def teardown_execution(sfn: Any, pipeline_id: str) -> str:
    machine = STATE_MACHINE_ARN_PREFIX + "TeardownPipeline"
    return next(execution["executionArn"] for execution in sfn.list_executions(stateMachineArn=machine)["executions"]
                if execution["name"].startswith(f"{pipeline_id}-teardown-"))


def blocker_waited_on(stack: Endpoints, slot: str) -> bool:
    """Whether a backend is creating replication slot `slot` (and so waiting for the open transaction)."""
    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        return conn.execute(
            "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE query LIKE 'SELECT pg_create_logical_replication_slot%%'"
            " AND state = 'active')").fetchone()[0]


@pytest.mark.parametrize("case", ["unreachable_source_port", "missing_sink_database", "wrong_kafka_address"])
def test_a_pipeline_that_failed_at_preflight_is_torn_down_at_once(
    workflow_env, spec_for, stack_registry, tmp_path, case,
):
    stack = workflow_env
    sections, error = mistaken(stack, case)
    pipeline_id = f"ftd_{RUN}_{case.split('_')[1]}"
    spec = spec_for(pipeline_id, **sections)
    failed = cdcflow(stack, "provision", request_file(stack, tmp_path, spec))
    assert failed.returncode == 1 and error in failed.stdout + failed.stderr, printout(failed)
    assert stack_registry.get(pipeline_id).status is PipelineStatus.FAILED

    result = cdcflow(stack, "teardown", pipeline_id)

    assert result.returncode == 0, printout(result)
    assert stack_registry.get(pipeline_id).status is PipelineStatus.DELETED
    # Asked with the correct references: nothing of the pipeline exists anywhere.
    assert footprint(parse_spec(spec_for(pipeline_id))).present() == {}
