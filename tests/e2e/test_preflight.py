"""Pre-flight on the real stack: each mistaken reference fails at Preflight with a named error naming the thing.

The provision goes through the stack's API and engine; after it failed,
nothing of the pipeline exists (`tests.footprint`, asked with the correct
references) and the registry records FAILED without "cleanup incomplete".
How long each mistake takes to fail is printed here and measured by
`bench/preflight` (BENCHMARKS.md); no test asserts a duration.
"""

from __future__ import annotations

import socket
import uuid
from typing import Any

import psycopg
import pytest
import requests
from psycopg import sql

from cdcflow.local.config import Endpoints
from lambdas.preflight import check_sink
from lambdas.spec import parse_spec
from tests.footprint import footprint
from tests.provision import api_auth, provision_and_wait

pytestmark = pytest.mark.slow

RUN = uuid.uuid4().hex[:6]


def port_nobody_listens_on() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mistakes(stack: Endpoints) -> dict[str, tuple[dict[str, Any], str, str]]:
    """case -> (the spec sections that are wrong, the error, what its cause must name)."""
    source_port, kafka_port, connect_port = (port_nobody_listens_on() for _ in range(3))
    host = stack.postgres.host
    return {
        "unreachable_source_port": ({"source": {"port": source_port}}, "SourceUnreachable", f"{host}:{source_port}"),
        "missing_sink_database": ({"sink": {"database": f"no_such_db_{RUN}"}}, "SinkDatabaseMissing",
                                  f"no_such_db_{RUN}"),
        "wrong_kafka_address": ({"kafka": {"bootstrap_servers": f"127.0.0.1:{kafka_port}"}}, "KafkaUnreachable",
                                f"127.0.0.1:{kafka_port}"),
        "wrong_connect_url": ({"connect": {"url": f"http://127.0.0.1:{connect_port}"}}, "ConnectUnreachable",
                              f"http://127.0.0.1:{connect_port}"),
    }


@pytest.mark.parametrize("case", ["unreachable_source_port", "missing_sink_database", "wrong_kafka_address",
                                  "wrong_connect_url"])
def test_a_mistake_fails_at_preflight_naming_it_and_leaves_nothing(workflow_env, spec_for, case):
    local_stack = workflow_env  # this process set up to read the stack (secrets, Kafka) as a step would
    sections, error, named = mistakes(local_stack)[case]
    pipeline_id = f"pf_{RUN}_{case.split('_')[1]}"
    spec = spec_for(pipeline_id, **sections)

    execution = provision_and_wait(local_stack, spec)

    seconds = (execution["stopDate"] - execution["startDate"]).total_seconds()
    print(f"{case}: failed with {execution.get('error')} after {seconds:.1f} s")
    assert execution["status"] == "FAILED"
    assert execution["error"] == error
    assert named in execution["cause"]
    entry = requests.get(f"{local_stack.api.url}/pipelines/{pipeline_id}", auth=api_auth(local_stack),
                         timeout=30).json()
    assert entry["status"] == "FAILED"
    assert entry["current_step"] == "Preflight"
    assert "cleanup incomplete" not in entry["last_error"]["cause"]
    assert footprint(parse_spec(spec_for(pipeline_id))).present() == {}


def test_a_missing_sink_schema_is_created(workflow_env, spec_for):
    schema = f"pf_schema_{RUN}"
    spec = parse_spec(spec_for(f"pf_{RUN}_schema", sink={"schema": schema}))
    try:
        assert check_sink(spec) == {"checked": True, "schema": schema, "schema_created": True}
        assert check_sink(spec) == {"checked": True, "schema": schema, "schema_created": False}
    finally:
        with psycopg.connect(workflow_env.postgres.sink_dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {}").format(sql.Identifier(schema)))
