"""Pause and resume on the local stack: rows written while paused wait in the slot, and all of them arrive after.

A team provisions a pipeline through the local API, pauses it
(PausePipeline on the engine service), writes rows while it is paused and
finds none of them at the sink; a reconciliation sweep leaves the paused
connectors paused and reports the WAL the slot retains; the team resumes it
(ResumePipeline: RUNNING connectors and a fresh canary), and every row
arrives, none lost. The teardown leaves nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import requests

from cdcflow.local.config import Endpoints, aws_environment
from lambdas import aws
from lambdas.connect.client import ConnectClient
from lambdas.spec import parse_spec
from tests import slots
from tests.footprint import footprint
from tests.provision import api_auth, engine_client, local_spec, signed_session, wait_for_execution
from tests.tenancy import team_request

pytestmark = pytest.mark.slow

PIPELINE_ID = "e2e_pause"
TEAM = "team-orders"  # the local demo team whose requester signs below
REQUESTER = "cdcflow-orders-requester"
CAPTURED = "public.e2e_pause_orders"
SINK_TABLE = "public.public_e2e_pause_orders"
ARRIVAL_TIMEOUT_SECONDS = 120
# How long rows written while paused are given to (wrongly) reach the sink.
QUIET_SECONDS = 6



@pytest.fixture(scope="module")
def stack(local_stack: Endpoints) -> Endpoints:
    with psycopg.connect(local_stack.postgres.source_dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.e2e_pause_orders "
                     "(id serial PRIMARY KEY, item text NOT NULL, qty int NOT NULL)")
    return local_stack


@pytest.fixture(scope="module")
def sfn(stack: Endpoints) -> Any:
    return engine_client(stack)


@pytest.fixture(scope="module")
def api(stack: Endpoints) -> Iterator[requests.Session]:
    with signed_session(stack, REQUESTER) as session:
        yield session


def call(stack: Endpoints, api: requests.Session, method: str, path: str, **kwargs: Any) -> requests.Response:
    return api.request(method, stack.api.url + path, timeout=30, **kwargs)


def resolved_spec(stack: Endpoints) -> dict[str, Any]:
    return local_spec(stack, PIPELINE_ID, [CAPTURED], TEAM)


def insert(stack: Endpoints, *items: str) -> list[int]:
    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        return [conn.execute(f"INSERT INTO {CAPTURED} (item, qty) VALUES (%s, 1) RETURNING id", [item]).fetchone()[0]
                for item in items]


def at_sink(stack: Endpoints, ids: list[int]) -> list[int]:
    with psycopg.connect(stack.postgres.sink_dsn(), autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s)", [SINK_TABLE]).fetchone()[0] is None:
            return []
        return [row[0] for row in conn.execute(f"SELECT id FROM {SINK_TABLE} WHERE id = ANY(%s) ORDER BY id",
                                               [ids]).fetchall()]


def wait_at_sink(stack: Endpoints, ids: list[int]) -> list[int]:
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_SECONDS
    while (arrived := at_sink(stack, ids)) != sorted(ids) and time.monotonic() < deadline:
        time.sleep(0.5)
    return arrived


def connector_states(stack: Endpoints) -> dict[str, tuple[str, list[str]]]:
    names = parse_spec(resolved_spec(stack)).names
    with ConnectClient(stack.connect.url) as client:
        states = {}
        for name in (names.source_connector, names.sink_connector):
            status = client.get_status(name)
            states[name] = (status["connector"]["state"], [task["state"] for task in status["tasks"]])
        return states


def lifecycle(stack: Endpoints, api: requests.Session, sfn: Any, action: str) -> dict[str, Any]:
    response = call(stack, api, "POST", f"/pipelines/{PIPELINE_ID}/{action}")
    assert response.status_code == 202, response.text
    execution = wait_for_execution(sfn, response.json()["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    return execution


def sweep() -> dict[str, Any]:
    return slots.sweep(PIPELINE_ID)


@pytest.fixture(scope="module")
def active(stack: Endpoints, api: requests.Session, sfn: Any) -> dict[str, Any]:
    response = call(stack, api, "POST", "/pipelines", json=team_request(stack, resolved_spec(stack)))
    assert response.status_code == 202, response.text
    execution = wait_for_execution(sfn, response.json()["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    before = insert(stack, "before-pause")
    assert wait_at_sink(stack, before) == before
    return {"before": before}


def test_paused_rows_wait_in_the_slot_and_all_arrive_after_the_resume(stack, api, sfn, active) -> None:
    lifecycle(stack, api, sfn, "pause")
    pipeline = call(stack, api, "GET", f"/pipelines/{PIPELINE_ID}").json()
    assert pipeline["status"] == "PAUSED" and pipeline["last_error"] is None
    assert all(state == ("PAUSED", ["PAUSED"]) for state in connector_states(stack).values())

    # A second pause is refused: the pipeline is no longer ACTIVE.
    again = call(stack, api, "POST", f"/pipelines/{PIPELINE_ID}/pause")
    assert again.status_code == 409 and again.json()["status"] == "PAUSED"

    while_paused = insert(stack, *(f"paused-{n}" for n in range(20)))
    time.sleep(QUIET_SECONDS)
    assert at_sink(stack, while_paused) == []

    swept = sweep()
    assert swept["status"] == "PAUSED"
    assert swept["restarted"] == [] and swept["problems"] == []
    assert swept["source_connector"] == swept["sink_connector"] == "PAUSED"
    assert swept["slot_lag_bytes"] and swept["slot_lag_bytes"] > 0
    assert any("retains" in note for note in swept["notes"]), swept["notes"]
    assert all(state == ("PAUSED", ["PAUSED"]) for state in connector_states(stack).values())
    assert at_sink(stack, while_paused) == []
    recorded = call(stack, api, "GET", f"/pipelines/{PIPELINE_ID}").json()
    assert recorded["status"] == "PAUSED" and recorded["slot_lag_bytes"] == swept["slot_lag_bytes"]

    resumed = lifecycle(stack, api, sfn, "resume")
    assert '"CheckCanaryArrived"' in str(sfn.get_execution_history(executionArn=resumed["executionArn"],
                                                                    maxResults=1000)["events"])
    pipeline = call(stack, api, "GET", f"/pipelines/{PIPELINE_ID}").json()
    assert pipeline["status"] == "ACTIVE"
    assert all(state == ("RUNNING", ["RUNNING"]) for state in connector_states(stack).values())

    after = insert(stack, "after-resume")
    everything = active["before"] + while_paused + after
    assert wait_at_sink(stack, everything) == sorted(everything)


def test_resume_of_an_active_pipeline_is_refused(stack, api, active) -> None:
    response = call(stack, api, "POST", f"/pipelines/{PIPELINE_ID}/resume")

    assert response.status_code == 409 and response.json()["status"] == "ACTIVE"


def test_another_team_may_not_pause_it(stack, active) -> None:
    response = requests.post(f"{stack.api.url}/pipelines/{PIPELINE_ID}/pause", auth=api_auth(stack, "cdcflow-payments-requester"),
                             timeout=30)

    assert response.status_code == 403 and "team-orders" in response.json()["message"]


def test_teardown_leaves_nothing_behind(stack, api, sfn, active) -> None:
    response = call(stack, api, "DELETE", f"/pipelines/{PIPELINE_ID}")
    assert response.status_code == 202, response.text
    execution = wait_for_execution(sfn, response.json()["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")

    with pytest.MonkeyPatch.context() as patch:
        for name, value in aws_environment(stack).items():  # the footprint reads moto's Secrets Manager
            patch.setenv(name, value)
        aws.reset_clients()
        try:
            assert footprint(parse_spec(resolved_spec(stack))).present() == {}
        finally:
            aws.reset_clients()
