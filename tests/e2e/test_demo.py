"""`cdcflow demo` as a user runs it: a subprocess against the local stack, its printout checked against the databases.

The first run provisions the demo pipeline from scratch (`--fresh`) and must
show the steps; the second finds it ACTIVE and goes straight to the changes;
a third finds it left PROVISIONING by a stopped execution and starts over.
Each run's printed writes must be what the source holds, its printed change
events must be those writes in order, and its printed sink rows must be what
the sink holds. A demo pipeline this module created is torn down at the end.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import psycopg
import pytest
from psycopg import sql

from cdcflow.demo import DEMO_COLUMNS
from cdcflow.local.config import Endpoints
from cdcflow.local.workflows import REGISTRY_TABLE
from cdcflow.api_client import ApiRefused, PipelinesApi
from tests.provision import api_client

pytestmark = pytest.mark.slow

PIPELINE_ID = "orders"
DEMO_TIMEOUT_SECONDS = 900
WRITE = re.compile(r"^\s+(INSERT|UPDATE|DELETE)\s+id=(\d+)(?: (\{.*\}))?$")
EVENT = re.compile(r"^\s+([cud])  id=(\d+)  before=(.*)  after=(.*)$")
SINK_ROW = re.compile(r"^\s+id=(\d+) item=(\S+) qty=(\d+)$")


@dataclass
class DemoRun:
    output: str
    writes: list[tuple[str, int, dict[str, Any] | None]]
    events: list[tuple[str, int, dict[str, Any] | None, dict[str, Any] | None]]
    sink_rows: list[dict[str, Any]]


def run_demo(*arguments: str) -> DemoRun:
    result = subprocess.run(
        [sys.executable, "-m", "cdcflow.cli", "demo", *arguments],
        check=False,  # the exit code is asserted with the output, which says why
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_SECONDS,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    writes, events, sink_rows = [], [], []
    for line in result.stdout.splitlines():
        if match := WRITE.match(line):
            writes.append((match[1], int(match[2]), json.loads(match[3]) if match[3] else None))
        elif match := EVENT.match(line):
            events.append((match[1], int(match[2]), json.loads(match[3]), json.loads(match[4])))
        elif match := SINK_ROW.match(line):
            sink_rows.append({"id": int(match[1]), "item": match[2], "qty": int(match[3])})
    return DemoRun(result.stdout, writes, events, sink_rows)


def rows_by_id(dsn: str, table: str, ids: list[int]) -> list[dict[str, Any]]:
    schema, name = table.split(".")
    with psycopg.connect(dsn, autocommit=True) as conn:
        query = sql.SQL("SELECT {} FROM {} WHERE id = ANY(%s) ORDER BY id").format(
            sql.SQL(", ").join(map(sql.Identifier, DEMO_COLUMNS)), sql.Identifier(schema, name)
        )
        return [dict(zip(DEMO_COLUMNS, row, strict=True)) for row in conn.execute(query, [ids])]


def check_run(run: DemoRun, stack: Endpoints) -> None:
    """The run's printed writes, events and sink rows agree with each other and with both databases."""
    operations = [operation for operation, _, _ in run.writes]
    assert operations == ["INSERT", "INSERT", "INSERT", "UPDATE", "DELETE"], run.output
    ids = sorted({row_id for _, row_id, _ in run.writes})
    final: dict[int, dict[str, Any] | None] = {}
    for _, row_id, values in run.writes:
        final[row_id] = {"id": row_id, **values} if values is not None else None
    expected_rows = [row for _, row in sorted(final.items()) if row is not None]

    # What it printed as written is what the source holds.
    assert rows_by_id(stack.postgres.source_dsn(), "public.orders", ids) == expected_rows

    # One event per write, in order, each carrying the row as the write left it.
    ops = {"INSERT": "c", "UPDATE": "u", "DELETE": "d"}
    assert [(op, row_id) for op, row_id, _, _ in run.events] == [(ops[o], i) for o, i, _ in run.writes], run.output
    rows_after = {}
    for (operation, row_id, values), (_, _, before, after) in zip(run.writes, run.events, strict=True):
        if operation == "DELETE":
            assert after is None
            assert before == rows_after[row_id]
        else:
            assert after == {"id": row_id, **values}
            if operation == "UPDATE":
                assert before == rows_after[row_id]
            rows_after[row_id] = after

    # What it printed from the sink is what the sink holds: the rows left at the source.
    assert run.sink_rows == expected_rows
    assert rows_by_id(stack.postgres.sink_dsn(), "public.public_orders", ids) == expected_rows


@pytest.fixture(scope="module")
def api(local_stack: Endpoints) -> Iterator[PipelinesApi]:
    """The local API; at the end, the demo pipeline is torn down if this module created it."""
    client = api_client(local_stack)
    try:
        existed = client.describe(PIPELINE_ID)["status"] in ("ACTIVE", "DEGRADED")
    except ApiRefused:
        existed = False
    yield client
    if not existed:
        execution_arn = client.teardown(PIPELINE_ID, keep_topics=False)["execution_arn"]
        wait_until_closed(stepfunctions_client(local_stack), execution_arn)
        assert client.describe(PIPELINE_ID)["status"] == "DELETED"


def stepfunctions_client(stack: Endpoints) -> Any:
    return boto3.client("stepfunctions", endpoint_url=stack.engine.url, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local")


def wait_until_closed(sfn: Any, execution_arn: str) -> str:
    deadline = time.monotonic() + DEMO_TIMEOUT_SECONDS
    while (status := sfn.describe_execution(executionArn=execution_arn)["status"]) == "RUNNING":
        assert time.monotonic() < deadline, f"{execution_arn} still running"
        time.sleep(0.5)
    return status


@pytest.fixture(scope="module")
def first_run(api: PipelinesApi) -> DemoRun:
    return run_demo("--fresh")


def test_a_fresh_demo_provisions_the_pipeline_step_by_step(first_run, api) -> None:
    for step in (
        "ValidateSpec",
        "RegisterPipeline",
        "CreateSlot",
        "PutSourceConnector",
        "PutSinkConnector",
        "MarkActive",
    ):
        assert re.search(rf"✓ {step}\b", first_run.output), f"no finished {step} in:\n{first_run.output}"
    assert "pipeline orders is ACTIVE" in first_run.output
    assert api.describe(PIPELINE_ID)["status"] == "ACTIVE"


def test_the_changes_it_shows_are_the_changes_it_made(first_run, local_stack) -> None:
    check_run(first_run, local_stack)


def test_running_it_again_reuses_the_pipeline_and_shows_new_changes(first_run, local_stack, api) -> None:
    execution_arn = api.describe(PIPELINE_ID)["execution_arn"]
    second = run_demo()
    assert "pipeline orders is already ACTIVE" in second.output
    assert "✓ CreateSlot" not in second.output
    assert api.describe(PIPELINE_ID)["execution_arn"] == execution_arn
    check_run(second, local_stack)
    assert {row_id for _, row_id, _ in second.writes}.isdisjoint({row_id for _, row_id, _ in first_run.writes})


def test_a_pipeline_left_provisioning_by_a_stopped_execution_is_torn_down_and_provisioned_again(
    first_run, local_stack, api
) -> None:
    sfn = stepfunctions_client(local_stack)
    provision = next(machine["stateMachineArn"] for machine in sfn.list_state_machines()["stateMachines"]
                     if machine["name"] == "ProvisionPipeline")
    stopped = sfn.start_execution(stateMachineArn=provision, name=f"stopped-{uuid.uuid4().hex[:8]}",
                                  input=json.dumps({"spec": {}}))["executionArn"]
    sfn.stop_execution(executionArn=stopped)
    wait_until_closed(sfn, stopped)
    # What a ProvisionPipeline stopped mid-flight leaves in the registry.
    boto3.client("dynamodb", endpoint_url=local_stack.dynamodb.url, region_name=local_stack.aws.region,
                 aws_access_key_id="local", aws_secret_access_key="local").update_item(
        TableName=REGISTRY_TABLE, Key={"pipeline_id": {"S": PIPELINE_ID}},
        UpdateExpression="SET #status = :provisioning, execution_arn = :stopped",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":provisioning": {"S": "PROVISIONING"}, ":stopped": {"S": stopped}},
    )

    third = run_demo()

    assert "its provisioning execution ended" in third.output and "pipeline orders is DELETED" in third.output
    assert "✓ CreateSlot" in third.output and "pipeline orders is ACTIVE" in third.output
    entry = api.describe(PIPELINE_ID)
    assert entry["status"] == "ACTIVE" and entry["execution_arn"] != stopped
    check_run(third, local_stack)
