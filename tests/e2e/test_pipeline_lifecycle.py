"""A pipeline's life through the local API and the local engine service, as a user lives it.

POST /pipelines starts ProvisionPipeline on the engine (its own process);
the pipeline becomes ACTIVE; rows inserted, updated and deleted at the source
arrive in Kafka as change events and in the sink database; DELETE tears it
all down. No password appears in the execution history or any log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import psycopg
import pytest
import requests
from kafka import KafkaConsumer

from cdcflow.local.config import Endpoints, config_from_env
from lambdas.secrets import read_credentials
from lambdas.spec import parse_spec
from tests.footprint import footprint
from tests.provision import api_auth
from tests.tenancy import team_request

pytestmark = pytest.mark.slow

PIPELINE_ID = "e2e_lifecycle"
EXECUTION_TIMEOUT_SECONDS = 600
CHANGE_TIMEOUT_SECONDS = 120


def wait_for_execution(sfn: Any, arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + EXECUTION_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        execution = sfn.describe_execution(executionArn=arn)
        if execution["status"] != "RUNNING":
            return execution
        time.sleep(1)
    raise AssertionError(f"{arn} still RUNNING after {EXECUTION_TIMEOUT_SECONDS} s")


def full_history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    events, token = [], None
    while True:
        page = sfn.get_execution_history(executionArn=arn, maxResults=1000, **({"nextToken": token} if token else {}))
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


@pytest.fixture(scope="module")
def stack(workflow_env: Endpoints) -> Endpoints:
    return workflow_env


@pytest.fixture(scope="module")
def sfn(stack: Endpoints) -> Any:
    return boto3.client("stepfunctions", endpoint_url=stack.engine.url)


@pytest.fixture(scope="module")
def api(stack: Endpoints) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.base_url = stack.api.url  # type: ignore[attr-defined]
        session.auth = api_auth(stack)
        yield session


def call(api: requests.Session, method: str, path: str, **kwargs: Any) -> requests.Response:
    return api.request(method, api.base_url + path, timeout=30, **kwargs)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def provisioned(stack: Endpoints, sfn: Any, api: requests.Session, spec_for: Any) -> dict[str, Any]:
    spec = team_request(stack, spec_for(PIPELINE_ID))
    response = call(api, "POST", "/pipelines", json=spec)
    assert response.status_code == 202, response.text
    execution = wait_for_execution(sfn, response.json()["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    return {"spec": spec, "accepted": response.json(), "execution": execution}


def test_a_retried_request_returns_the_same_execution_and_another_spec_is_refused(
    provisioned, api, spec_for, stack
) -> None:
    again = call(api, "POST", "/pipelines", json=provisioned["spec"])
    assert again.status_code == 202
    assert again.json()["execution_arn"] == provisioned["accepted"]["execution_arn"]

    other = call(api, "POST", "/pipelines", json=team_request(stack, spec_for(PIPELINE_ID, kafka={"partitions": 3})))
    assert other.status_code == 409
    assert "different spec" in other.json()["message"]


def test_the_pipeline_is_active_with_its_execution(provisioned, api) -> None:
    response = call(api, "GET", f"/pipelines/{PIPELINE_ID}")
    assert response.status_code == 200
    pipeline = response.json()
    assert pipeline["status"] == "ACTIVE"
    assert pipeline["execution_arn"] == provisioned["execution"]["executionArn"]


def _consume_changes(stack: Endpoints, topic: str, ids: set[int]) -> dict[int, list[str]]:
    """Debezium operations per row id for `ids`, read from `topic` until each has c, u and d (or the timeout)."""
    operations: dict[int, list[str]] = {row_id: [] for row_id in ids}
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=stack.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    deadline = time.monotonic() + CHANGE_TIMEOUT_SECONDS
    try:
        while time.monotonic() < deadline and any(ops[-1:] != ["d"] for ops in operations.values()):
            for message in consumer:
                if message.value is None:  # the tombstone after a delete
                    continue
                payload = json.loads(message.value)["payload"]
                row = payload["after"] or payload["before"]
                if row["id"] in operations and payload["op"] in ("c", "u", "d"):
                    operations[row["id"]].append(payload["op"])
    finally:
        consumer.close()
    return operations


def test_changes_at_the_source_arrive_in_kafka_and_at_the_sink(provisioned, stack) -> None:
    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as source:
        ids = [
            source.execute(
                "INSERT INTO public.e2e_orders (item, qty) VALUES (%s, %s) RETURNING id",
                [item, 1],
            ).fetchone()[0]
            for item in ("lamp", "desk", "chair")
        ]
        source.execute("UPDATE public.e2e_orders SET qty = qty + 41 WHERE id = ANY(%s)", [ids])
        # The first two rows are deleted; the third stays, and must reach the sink updated.
        source.execute("DELETE FROM public.e2e_orders WHERE id = ANY(%s)", [ids[:2]])

    operations = _consume_changes(stack, f"cdcflow.{PIPELINE_ID}.public.e2e_orders", set(ids))
    assert operations == {
        ids[0]: ["c", "u", "d"],
        ids[1]: ["c", "u", "d"],
        ids[2]: ["c", "u"],
    }

    deadline = time.monotonic() + CHANGE_TIMEOUT_SECONDS
    with psycopg.connect(stack.postgres.sink_dsn(), autocommit=True) as sink:
        while True:
            rows = sink.execute(
                "SELECT id, item, qty FROM public.public_e2e_orders WHERE id = ANY(%s) ORDER BY id",
                [ids],
            ).fetchall()
            if rows == [(ids[2], "chair", 42)] or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert rows == [(ids[2], "chair", 42)]


def test_no_password_appears_in_the_execution_history_or_the_service_logs(provisioned, stack, sfn) -> None:
    passwords = {
        read_credentials(f"cdcflow/{PIPELINE_ID}/replication").password,
        read_credentials(stack.aws.source_admin_secret).password,
        read_credentials(stack.aws.sink_admin_secret).password,
    }
    history = json.dumps(full_history(sfn, provisioned["execution"]["executionArn"]), default=str)
    logs = "".join(path.read_text(errors="replace") for path in config_from_env().logs_dir.glob("*.log"))
    assert "CreateReplicationUser" in history  # the history really holds the steps' inputs and outputs
    assert "step succeeded" in logs  # and the logs really hold the handlers' lines
    for password in passwords:
        assert password not in history
        assert password not in logs


def test_teardown_leaves_nothing_behind(provisioned, stack, sfn, api, spec_for) -> None:
    response = call(api, "DELETE", f"/pipelines/{PIPELINE_ID}")
    assert response.status_code == 202, response.text
    execution = wait_for_execution(sfn, response.json()["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")

    assert call(api, "GET", f"/pipelines/{PIPELINE_ID}").json()["status"] == "DELETED"
    assert footprint(parse_spec(spec_for(PIPELINE_ID))).present() == {}
    again = call(api, "DELETE", f"/pipelines/{PIPELINE_ID}")
    assert again.status_code == 409
