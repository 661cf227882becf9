"""Many requests at once, through the local API and the engine service, on one source database and one Kafka.

Twenty pipelines provisioned together all become ACTIVE and are all torn
down without leftovers; ten identical requests start one execution; two
different specs for one id: one is accepted, the other refused, nothing mixed.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
import requests

from cdcflow.local.config import Endpoints
from lambdas.spec import parse_spec
from tests.footprint import footprint
from tests.provision import api_auth
from tests.tenancy import team_request

pytestmark = pytest.mark.slow

EXECUTION_TIMEOUT_SECONDS = 900
# The stack's registry and engine journal outlive a test run: each run uses ids of its own.
RUN = uuid.uuid4().hex[:6]


@pytest.fixture(scope="module")
def sfn(workflow_env: Endpoints) -> Any:
    return boto3.client("stepfunctions", endpoint_url=workflow_env.engine.url)


def post(stack: Endpoints, spec: dict[str, Any]) -> requests.Response:
    return requests.post(f"{stack.api.url}/pipelines", json=team_request(stack, spec), auth=api_auth(stack), timeout=60)


def wait_all(sfn: Any, arns: list[str]) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + EXECUTION_TIMEOUT_SECONDS
    done: dict[str, dict[str, Any]] = {}
    while len(done) < len(arns) and time.monotonic() < deadline:
        for arn in arns:
            if arn not in done:
                execution = sfn.describe_execution(executionArn=arn)
                if execution["status"] != "RUNNING":
                    done[arn] = execution
        time.sleep(1)
    assert len(done) == len(arns), f"{len(arns) - len(done)} executions still RUNNING"
    return done


def executions_named(sfn: Any, pipeline_id: str) -> list[dict[str, Any]]:
    machine = next(m for m in sfn.list_state_machines()["stateMachines"] if m["name"] == "ProvisionPipeline")
    executions = sfn.get_paginator("list_executions").paginate(stateMachineArn=machine["stateMachineArn"])
    return [e for page in executions for e in page["executions"] if e["name"].startswith(f"{pipeline_id}-")]


def tear_down(stack: Endpoints, sfn: Any, pipeline_ids: list[str]) -> None:
    auth = api_auth(stack)
    with ThreadPoolExecutor(len(pipeline_ids)) as pool:
        responses = list(pool.map(lambda pid: requests.delete(f"{stack.api.url}/pipelines/{pid}", auth=auth,
                                                              timeout=60), pipeline_ids))
    assert [response.status_code for response in responses] == [202] * len(pipeline_ids)
    finished = wait_all(sfn, [response.json()["execution_arn"] for response in responses])
    assert {execution["status"] for execution in finished.values()} == {"SUCCEEDED"}


def test_twenty_pipelines_at_once_all_become_active_and_all_go(workflow_env, sfn, spec_for) -> None:
    specs = [spec_for(f"conc_{RUN}_{number:02d}") for number in range(20)]

    with ThreadPoolExecutor(len(specs)) as pool:
        responses = list(pool.map(lambda spec: post(workflow_env, spec), specs))
    assert [response.status_code for response in responses] == [202] * len(specs)
    finished = wait_all(sfn, [response.json()["execution_arn"] for response in responses])

    failures = {arn: execution.get("cause") for arn, execution in finished.items() if execution["status"] != "SUCCEEDED"}
    assert failures == {}
    for spec in specs:
        pipeline = requests.get(f"{workflow_env.api.url}/pipelines/{spec['pipeline_id']}", auth=api_auth(workflow_env),
                                timeout=30).json()
        assert pipeline["status"] == "ACTIVE"

    tear_down(workflow_env, sfn, [spec["pipeline_id"] for spec in specs])
    leftovers = {spec["pipeline_id"]: footprint(parse_spec(spec)).present() for spec in specs}
    assert {pipeline_id: left for pipeline_id, left in leftovers.items() if left} == {}


def test_ten_identical_requests_start_exactly_one_execution(workflow_env, sfn, spec_for) -> None:
    pipeline_id = f"conc_{RUN}_same"
    spec = spec_for(pipeline_id)

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda _: post(workflow_env, spec), range(10)))

    assert [response.status_code for response in responses] == [202] * 10
    assert len({response.json()["execution_arn"] for response in responses}) == 1
    started = [e["executionArn"] for e in executions_named(sfn, pipeline_id)]
    assert started == [responses[0].json()["execution_arn"]]
    wait_all(sfn, started)
    tear_down(workflow_env, sfn, [pipeline_id])


def test_two_specs_for_one_id_at_once_one_wins_and_nothing_is_mixed(workflow_env, sfn, spec_for) -> None:
    pipeline_id = f"conc_{RUN}_race"
    specs = [spec_for(pipeline_id, kafka={"partitions": partitions}) for partitions in (1, 2)]

    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda spec: post(workflow_env, spec), specs))

    assert sorted(response.status_code for response in responses) == [202, 409]
    winner = specs[[response.status_code for response in responses].index(202)]
    loser = responses[[response.status_code for response in responses].index(409)].json()
    assert loser["field"] == "pipeline_id" and pipeline_id in loser["message"]
    started = [e["executionArn"] for e in executions_named(sfn, pipeline_id)]
    assert started == [r.json()["execution_arn"] for r in responses if r.status_code == 202]
    wait_all(sfn, [response.json()["execution_arn"] for response in responses if response.status_code == 202])
    pipeline = requests.get(f"{workflow_env.api.url}/pipelines/{pipeline_id}", auth=api_auth(workflow_env),
                            timeout=30).json()
    assert pipeline["status"] == "ACTIVE"
    assert pipeline["spec"]["kafka"]["partitions"] == winner["kafka"]["partitions"]
    tear_down(workflow_env, sfn, [pipeline_id])
