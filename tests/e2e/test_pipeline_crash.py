"""The engine service killed with SIGKILL while pipelines provision, and started again on its journal.

Each round starts a few provisions through the API (one of them bound to
fail, so its compensations run), kills the engine at seeded random moments
(inside steps, wait-loops and the compensation chain), starts it again with
`up`, and at the end checks from the systems themselves: every execution
ended SUCCEEDED or FAILED, each ACTIVE pipeline has exactly one role, slot,
publication, heartbeat table, secret and pair of connectors, and a FAILED
one has nothing left.
"""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from typing import Any

import boto3
import pytest
import requests

from cdcflow.local import stack
from cdcflow.local.config import Endpoints
from lambdas.spec import parse_spec
from tests.footprint import footprint
from tests.provision import api_auth
from tests.tenancy import team_request

pytestmark = pytest.mark.slow

SEED = 20261122
ROUNDS = 4
KILLS_PER_ROUND = 3
EXECUTION_TIMEOUT_SECONDS = 900
RUN = uuid.uuid4().hex[:6]


def engine_pid() -> int:
    status = next(service for service in stack.status() if service.name == "engine")
    assert status.pid is not None, "the engine service is not running"
    return status.pid


def kill_engine_and_restart() -> None:
    pid = engine_pid()
    os.kill(pid, signal.SIGKILL)
    while any(service.name == "engine" and service.state != "down" for service in stack.status()):
        time.sleep(0.1)
    stack.up()


def wait_all(sfn: Any, arns: list[str]) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + EXECUTION_TIMEOUT_SECONDS
    done: dict[str, dict[str, Any]] = {}
    while len(done) < len(arns) and time.monotonic() < deadline:
        for arn in arns:
            if arn not in done and (execution := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING":
                done[arn] = execution
        time.sleep(1)
    assert len(done) == len(arns), "executions still RUNNING after the engine came back"
    return done


# A kill inside a step leaves its idempotency record in progress; the engine forgets such records as it starts
# again (cdcflow/engine_cli.py), so a round recovers in seconds wherever its kills land (bench/crash_recovery).
# The hang guard is generous for a loaded two-core machine.
@pytest.mark.timeout(900)
def test_killed_mid_flight_every_execution_still_ends_and_nothing_happens_twice(workflow_env: Endpoints,
                                                                                spec_for) -> None:
    sfn = boto3.client("stepfunctions", endpoint_url=workflow_env.engine.url)
    chooser = random.Random(SEED)
    kill_points: list[str] = []
    outcomes: dict[str, tuple[dict[str, Any], str]] = {}
    for round_number in range(ROUNDS):
        specs = [spec_for(f"crash_{RUN}_{round_number}_{n}") for n in range(2)]
        # A table that does not exist fails CreateReplicationUser for real: the compensations run.
        specs.append(spec_for(f"crash_{RUN}_{round_number}_bad", source={"tables": ["public.no_such_table"]}))
        arns = {}
        for spec in specs:
            response = requests.post(f"{workflow_env.api.url}/pipelines", json=team_request(workflow_env, spec), auth=api_auth(workflow_env),
                                     timeout=60)
            assert response.status_code == 202, response.text
            arns[response.json()["execution_arn"]] = spec
        started = time.monotonic()
        for kill in range(KILLS_PER_ROUND):
            # The first kill comes early, while the failing pipeline is still in its compensations.
            time.sleep(chooser.uniform(0.05, 0.6) if kill == 0 else chooser.uniform(0.5, 3.0))
            where = _current_states(sfn, list(arns))
            kill_points.append(f"round {round_number} at {time.monotonic() - started:.1f} s: {where}")
            kill_engine_and_restart()
        for arn, execution in wait_all(sfn, list(arns)).items():
            outcomes[arn] = (arns[arn], execution["status"])
    print("\n".join(["engine killed at:", *kill_points]))

    assert len(kill_points) >= 10
    for arn, (spec, status) in outcomes.items():
        left = footprint(parse_spec(spec)).present()
        if spec["pipeline_id"].endswith("_bad"):
            assert status == "FAILED", arn
            assert left == {}, f"{spec['pipeline_id']} left {left}"
        else:
            assert status == "SUCCEEDED", arn
            names = parse_spec(spec).names
            assert {kind: left[kind] for kind in ("roles", "slots", "publications", "connectors", "secrets")} == {
                "roles": [names.replication_role],
                "slots": [names.replication_slot],
                "publications": [names.publication],
                "connectors": [names.sink_connector, names.source_connector],
                "secrets": [names.replication_secret],
            }
    _tear_down(workflow_env, sfn, [spec for spec, status in outcomes.values() if status == "SUCCEEDED"])


def _current_states(sfn: Any, arns: list[str]) -> str:
    """The state each execution was last in, for the printed list of kill points."""
    states = []
    for arn in arns:
        events = sfn.get_execution_history(executionArn=arn, reverseOrder=True, maxResults=5)["events"]
        entered = [e for e in events if e["type"].endswith("StateEntered")]
        states.append(entered[0]["stateEnteredEventDetails"]["name"] if entered else events[0]["type"])
    return ", ".join(states)


def _tear_down(stack_endpoints: Endpoints, sfn: Any, specs: list[dict[str, Any]]) -> None:
    arns = []
    for spec in specs:
        response = requests.delete(f"{stack_endpoints.api.url}/pipelines/{spec['pipeline_id']}",
                                    auth=api_auth(stack_endpoints), timeout=60)
        assert response.status_code == 202, response.text
        arns.append(response.json()["execution_arn"])
    assert {execution["status"] for execution in wait_all(sfn, arns).values()} == {"SUCCEEDED"}
    assert {spec["pipeline_id"]: footprint(parse_spec(spec)).present() for spec in specs} == {
        spec["pipeline_id"]: {} for spec in specs
    }
