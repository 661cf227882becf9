"""Alarms and BROKEN slots on the local stack.

A team provisions a pipeline whose slot-lag threshold is set low; ProvisionPipeline
creates its six alarms (in moto, the stack's CloudWatch). Paused, with rows written,
the pipeline's slot lag breaches: a sweep (which evaluates the alarms where nothing
else does) sets slot-lag to ALARM and `cdcflow status` shows it. Resumed, its slot
is then dropped by hand: the next sweep ends with the pipeline BROKEN, its
slot-broken alarm in ALARM, and `cdcflow reconcile` exiting 6 (a pipeline is
broken), not 5 (could not check). A BROKEN pipeline tears down, and its alarms go
with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import requests

from cdcflow.local.config import Endpoints
from cdcflow.operate_cli import EXIT_PIPELINE_BROKEN
from lambdas import alarms
from tests import slots
from tests.provision import api_auth, engine_client, local_spec, signed_session, wait_for_execution
from tests.tenancy import team_request

pytestmark = pytest.mark.slow

PIPELINE_ID = "e2e_alarmed"
TEAM = "team-orders"
REQUESTER = "cdcflow-orders-requester"
CAPTURED = "public.e2e_alarmed_orders"
SLOT = f"cdcflow_{PIPELINE_ID}"
SLOT_LAG_THRESHOLD = 1024  # bytes: a handful of rows written while paused breach it



@pytest.fixture(scope="module")
def stack(local_stack: Endpoints) -> Endpoints:
    with psycopg.connect(local_stack.postgres.source_dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {CAPTURED} (id serial PRIMARY KEY, item text NOT NULL)")
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


def resolved_spec(stack: Endpoints, pipeline_id: str = PIPELINE_ID) -> dict[str, Any]:
    return local_spec(stack, pipeline_id, [CAPTURED], TEAM)


def insert(stack: Endpoints, count: int) -> None:
    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        for n in range(count):
            conn.execute(f"INSERT INTO {CAPTURED} (item) VALUES (%s)", [f"row-{n}-" + "x" * 200])


def sweep(pipeline_id: str = PIPELINE_ID) -> dict[str, Any]:
    return slots.sweep(pipeline_id)


def cdcflow(stack: Endpoints, *arguments: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it against the stack."""
    return subprocess.run(
        [sys.executable, "-m", "cdcflow.cli", *arguments, "--api-url", stack.api.url, "--sfn-endpoint",
         stack.engine.url],
        check=False, capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "300"},
    )


def alarm_states(stack: Endpoints, api: requests.Session) -> dict[str, str]:
    pipeline = call(stack, api, "GET", f"/pipelines/{PIPELINE_ID}").json()
    assert pipeline["alarms"] is not None, pipeline.get("alarms_error")
    return {alarm["alarm"]: alarm["state"] for alarm in pipeline["alarms"]}


def lifecycle(stack: Endpoints, api: requests.Session, sfn: Any, action: str) -> None:
    response = call(stack, api, "POST", f"/pipelines/{PIPELINE_ID}/{action}")
    assert response.status_code == 202, response.text
    execution = wait_for_execution(sfn, response.json()["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")


def drop_slot_by_hand(stack: Endpoints, slot: str = SLOT) -> None:
    slots.drop_slot_by_hand(stack, slot)


@pytest.fixture(scope="module")
def active(stack: Endpoints, api: requests.Session, sfn: Any) -> None:
    request = team_request(stack, resolved_spec(stack))
    request["alarms"] = {"slot_lag_bytes": SLOT_LAG_THRESHOLD}
    response = call(stack, api, "POST", "/pipelines", json=request)
    assert response.status_code == 202, response.text
    execution = wait_for_execution(sfn, response.json()["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")


def test_provisioning_creates_the_pipelines_alarms_with_the_specs_threshold(stack, api, active) -> None:
    pipeline = call(stack, api, "GET", f"/pipelines/{PIPELINE_ID}").json()

    assert pipeline["spec"]["alarms"] == {"slot_lag_bytes": SLOT_LAG_THRESHOLD}
    by_alarm = {alarm["alarm"]: alarm for alarm in pipeline["alarms"]}
    assert sorted(by_alarm) == sorted(kind.key for kind in alarms.KINDS)
    assert by_alarm["slot-lag"]["threshold"] == SLOT_LAG_THRESHOLD
    assert by_alarm["slot-lag"]["metric"] == "SlotLagBytes"


def test_a_paused_pipelines_slot_lag_alarm_breaches_and_status_shows_it(stack, api, sfn, active) -> None:
    lifecycle(stack, api, sfn, "pause")
    insert(stack, 50)

    swept = sweep()

    assert swept["status"] == "PAUSED"
    assert swept["slot_lag_bytes"] > SLOT_LAG_THRESHOLD
    assert swept["alarms"]["slot-lag"] == "ALARM" and swept["alarms"]["slot-broken"] == "OK"
    assert alarm_states(stack, api)["slot-lag"] == "ALARM"
    shown = cdcflow(stack, "status", PIPELINE_ID)
    assert shown.returncode == 0, shown.stderr
    assert any("alarm slot-lag" in line and "ALARM" in line for line in shown.stdout.splitlines()), shown.stdout

    lifecycle(stack, api, sfn, "resume")


def test_a_slot_dropped_by_hand_makes_the_pipeline_broken(stack, api, active) -> None:
    baseline = sweep()  # what the slot looks like while healthy: the next sweep compares with it
    assert baseline["status"] == "ACTIVE", baseline["problems"]
    assert baseline["alarms"]["slot-broken"] == "OK"

    drop_slot_by_hand(stack)
    swept = sweep()

    assert swept["status"] == "BROKEN", swept
    assert SLOT in swept["broken"]
    assert swept["alarms"]["slot-broken"] == "ALARM"
    assert swept["restarted"] == []
    pipeline = call(stack, api, "GET", f"/pipelines/{PIPELINE_ID}").json()
    assert pipeline["status"] == "BROKEN" and pipeline["last_error"]["error"] == "PipelineBroken"
    assert alarm_states(stack, api)["slot-broken"] == "ALARM"

    reconciled = cdcflow(stack, "reconcile")
    assert reconciled.returncode == EXIT_PIPELINE_BROKEN, reconciled.stdout + reconciled.stderr
    assert "BROKEN" in reconciled.stdout


def test_a_broken_pipeline_tears_down_and_its_alarms_go(stack, api, sfn, active) -> None:
    response = call(stack, api, "DELETE", f"/pipelines/{PIPELINE_ID}")
    assert response.status_code == 202, response.text
    execution = wait_for_execution(sfn, response.json()["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")

    assert call(stack, api, "GET", f"/pipelines/{PIPELINE_ID}").json()["alarms"] == []
    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                            [SLOT]).fetchone()[0] == 0


RECREATED_ID = "e2e_recreated"
RECREATED_SLOT = f"cdcflow_{RECREATED_ID}"
RECREATE_TIMEOUT_SECONDS = 180


def test_a_slot_the_connector_re_created_after_a_drop_makes_the_pipeline_broken(stack, sfn) -> None:
    """The case that loses rows silently: Debezium creates a new slot from the current WAL position."""
    with requests.Session() as session:
        session.auth = api_auth(stack, REQUESTER)
        response = call(stack, session, "POST", "/pipelines", json=team_request(stack, resolved_spec(stack, RECREATED_ID)))
        assert response.status_code == 202, response.text
        execution = wait_for_execution(sfn, response.json()["execution_arn"])
        assert execution["status"] == "SUCCEEDED", execution.get("cause")
        insert(stack, 100)  # a slot that has decoded more than its re-created successor will have soon
        assert sweep(RECREATED_ID)["status"] == "ACTIVE"  # the healthy slot, recorded

        drop_slot_by_hand(stack, RECREATED_SLOT)
        insert(stack, 5)  # written while no slot exists: never decoded
        deadline = time.monotonic() + RECREATE_TIMEOUT_SECONDS
        with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
            while conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s AND active",
                               [RECREATED_SLOT]).fetchone()[0] == 0:
                assert time.monotonic() < deadline, "the connector did not create its slot again"
                time.sleep(1)
        insert(stack, 5)  # decoded by the new slot, so its connector commits offsets past it

        swept = sweep(RECREATED_ID)
        assert swept["status"] == "BROKEN", swept
        # The stack's own scheduled sweep may have run while the slot was gone, and found it so first.
        assert RECREATED_SLOT in swept["broken"] and any(
            words in swept["broken"] for words in ("re-created", "created again", "is gone")), swept["broken"]
        assert swept["alarms"]["slot-broken"] == "ALARM"

        response = call(stack, session, "DELETE", f"/pipelines/{RECREATED_ID}")
        assert response.status_code == 202, response.text
        assert wait_for_execution(sfn, response.json()["execution_arn"])["status"] == "SUCCEEDED"
