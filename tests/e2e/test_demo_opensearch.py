"""`cdcflow demo --sink opensearch` as a user runs it: the documents it prints are the index's and the source's rows.

The demo starts OpenSearch itself; the pipeline it provisions (`orders_search`)
is torn down at the end, its index with it, and OpenSearch is stopped again
if this module's demo run started it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import boto3
import pytest
import requests

from cdcflow.demo import OPENSEARCH_PIPELINE_ID
from cdcflow.local import stack as local_stack_module
from cdcflow.local.config import Endpoints, config_from_env
from tests.provision import api_client

pytestmark = pytest.mark.slow

DEMO_TIMEOUT_SECONDS = 900
INDEX = f"cdcflow.{OPENSEARCH_PIPELINE_ID}.public.orders"
WRITE = re.compile(r"^\s+(INSERT|UPDATE|DELETE)\s+id=(\d+)(?: (\{.*\}))?$")
DOCUMENT = re.compile(r"^\s+_id=(\d+) (\{.*\})$")


@pytest.fixture(scope="module")
def demo_output(local_stack: Endpoints) -> Iterator[str]:
    config = config_from_env()
    opensearch_was_running = any(s.name == "opensearch" and s.state == "up" for s in local_stack_module.status(config))
    api = api_client(local_stack)
    result = subprocess.run(
        [sys.executable, "-m", "cdcflow.cli", "demo", "--sink", "opensearch", "--fresh"],
        check=False, capture_output=True, text=True, timeout=DEMO_TIMEOUT_SECONDS,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        yield result.stdout
    finally:
        execution_arn = api.teardown(OPENSEARCH_PIPELINE_ID, keep_topics=False)["execution_arn"]
        sfn = boto3.client("stepfunctions", endpoint_url=local_stack.engine.url, region_name="us-east-1",
                           aws_access_key_id="local", aws_secret_access_key="local")
        deadline = time.monotonic() + DEMO_TIMEOUT_SECONDS
        while sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert api.describe(OPENSEARCH_PIPELINE_ID)["status"] == "DELETED"
        url = f"http://127.0.0.1:{config.ports.opensearch}"
        assert requests.head(f"{url}/{INDEX}", timeout=10).status_code == 404  # the teardown took the index
        if not opensearch_was_running:
            local_stack_module.down(config, only=("opensearch",))


def test_the_demo_shows_the_index_documents_after_insert_update_and_delete(demo_output: str) -> None:
    writes = [(m[1], int(m[2]), json.loads(m[3]) if m[3] else None)
              for line in demo_output.splitlines() if (m := WRITE.match(line))]
    assert [operation for operation, _, _ in writes] == ["INSERT", "INSERT", "INSERT", "UPDATE", "DELETE"]
    final: dict[int, dict | None] = {}
    for _, row_id, values in writes:
        final[row_id] = {"id": row_id, **values} if values is not None else None
    expected = [row for _, row in sorted(final.items()) if row is not None]

    printed = [json.loads(m[2]) for line in demo_output.splitlines() if (m := DOCUMENT.match(line))]
    assert printed == expected
    assert f"documents in the OpenSearch index {INDEX}" in demo_output

    url = f"http://127.0.0.1:{config_from_env().ports.opensearch}"
    ids = sorted(final)
    hits = requests.post(f"{url}/{INDEX}/_search", json={"query": {"ids": {"values": [str(i) for i in ids]}}},
                         timeout=10).json()["hits"]["hits"]
    assert sorted((hit["_source"] for hit in hits), key=lambda d: d["id"]) == expected
    assert sorted(int(hit["_id"]) for hit in hits) == [row["id"] for row in expected]
