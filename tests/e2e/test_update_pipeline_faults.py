"""An update that fails at any of its steps leaves the pipeline ACTIVE on its previous spec, with nothing leaked.

On the in-process engine against the local stack: a pipeline capturing two
tables is updated to drop one and add another, with a failure injected at
each forward task state of UpdatePipeline in turn (the task raises before
doing its own work, after every earlier step really ran). After each, the
registry holds the previous spec (ACTIVE, released, the error naming the
step), and the systems themselves say the same: the publication's members,
the source connector's include list, the sink connector's topics, the
topics on the cluster and the replication role's grants are those of the
previous spec. A last update without a fault succeeds, and the teardown
leaves nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from lambdas import registry
from lambdas.connect.client import ConnectClient
from lambdas.errors import StepError
from lambdas.executions import execution_arn, lifecycle_execution_name
from lambdas.kafka_topics import list_topics_with_prefix, pipeline_topics
from lambdas.registry import PipelineStatus
from lambdas.source.connection import connect_admin
from lambdas.source.publication import expected_tables, publication_tables
from lambdas.spec import parse_spec
from statemachines.catalogue import resolve_local_function
from statemachines.update_pipeline import UPDATE
from tests.footprint import footprint

pytestmark = pytest.mark.slow

PIPELINE_ID = "e2e_update_faults"
KEPT = "public.e2e_upd_fault_kept"
ADDED = "public.e2e_upd_fault_added"
EXECUTION_TIMEOUT_SECONDS = 900
# Every forward task state, in the order the workflow runs them.
FORWARD_STATES = [state for state in (task.name for task in UPDATE.tasks_of(UPDATE.steps))]


class InjectedFault(StepError):
    """A failure the test injects at one step."""


def failing_at(state: str) -> Callable[[str], Any]:
    def resolve(arn: str) -> Any:
        handler = resolve_local_function(arn)
        if handler is None:
            return None

        def invoke(event: dict[str, Any], context: Any) -> Any:
            if event.get("state_name") == state:
                raise InjectedFault(f"injected at {state}")
            return handler(event, context)

        return invoke

    return resolve


def update(engine_with: Callable[..., Any], previous: dict[str, Any], new: dict[str, Any],
           functions: Callable[[str], Any] = resolve_local_function) -> dict[str, Any]:
    """Claim the pipeline as the API does and run UpdatePipeline to its end."""
    with engine_with(functions) as (engine, machines):
        entry = registry.get(PIPELINE_ID)
        name = lifecycle_execution_name(entry, "update")
        registry.claim_lifecycle(entry, "update", execution_arn(machines["UpdatePipeline"], name))
        execution_input = {"spec": new, "previous_spec": previous, "keep_topics": False,
                           "requested_by": "arn:aws:iam::000000000000:user/e2e"}
        arn = engine.start_execution(machines["UpdatePipeline"], json.dumps(execution_input), name=name)
        return engine.wait_for_execution(arn, EXECUTION_TIMEOUT_SECONDS)


def provision(engine_with: Callable[..., Any], spec: dict[str, Any]) -> dict[str, Any]:
    with engine_with() as (engine, machines):
        arn = engine.start_execution(machines["ProvisionPipeline"], json.dumps({"spec": spec}), name=PIPELINE_ID)
        return engine.wait_for_execution(arn, EXECUTION_TIMEOUT_SECONDS)


def observed(spec_document: dict[str, Any]) -> dict[str, Any]:
    """What the source, Connect and Kafka hold for the pipeline, asked of each."""
    spec = parse_spec(spec_document)
    names = spec.names
    with connect_admin(spec.source) as conn:
        members = sorted(publication_tables(conn, names.publication))
        granted = sorted(row[0] for row in conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.role_table_grants "
            "WHERE grantee = %s AND privilege_type = 'SELECT' AND table_schema = 'public'",
            [names.replication_role]).fetchall())
    with ConnectClient(spec.connect.url) as client:
        source = client.get_config(names.source_connector)
        sink = client.get_config(names.sink_connector)
    topics = list_topics_with_prefix(spec.kafka.bootstrap_servers, names.debezium_topic_prefix)
    return {"publication": members, "select": granted, "include": source["table.include.list"],
            "sink_topics": sink["topics"], "topics": sorted(topics)}


def expected(spec_document: dict[str, Any]) -> dict[str, Any]:
    """What `observed` finds for a pipeline whose spec is `spec_document`."""
    from lambdas.connect.secret_refs import SecretLogin
    from lambdas.connect.sink_config import sink_topics
    from lambdas.connect.source_config import debezium_source_config

    spec = parse_spec(spec_document)
    source = debezium_source_config(spec, SecretLogin("x", spec.names.replication_secret), "")
    return {"publication": expected_tables(spec), "select": sorted(spec.source.tables),
            "include": source["table.include.list"], "sink_topics": ",".join(sink_topics(spec)),
            "topics": sorted(topic for topic in pipeline_topics(spec)
                             if topic.startswith(spec.names.debezium_topic_prefix))}


@pytest.fixture(scope="module")
def tables(workflow_env) -> None:
    with psycopg.connect(workflow_env.postgres.source_dsn(), autocommit=True) as conn:
        for table in (KEPT, ADDED):
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (id serial PRIMARY KEY, item text NOT NULL)")
            conn.execute(f"INSERT INTO {table} (item) SELECT 'row-' || n FROM generate_series(1, 200) n")


def test_a_failure_at_each_step_leaves_the_previous_spec_in_force(engine_with, spec_for, tables,
                                                                   captured_table) -> None:
    previous = spec_for(PIPELINE_ID, source={"tables": [captured_table, KEPT]})
    new = spec_for(PIPELINE_ID, source={"tables": [captured_table, ADDED]})
    provisioned = provision(engine_with, previous)
    assert provisioned["status"] == "SUCCEEDED", provisioned
    before = observed(previous)
    assert before == expected(previous)
    fingerprint = registry.get(PIPELINE_ID).spec_fingerprint

    for state in FORWARD_STATES:
        failed = update(engine_with, previous, new, functions=failing_at(state))
        assert failed["status"] == "FAILED" and failed["error"] == "InjectedFault", (state, failed)
        entry = registry.get(PIPELINE_ID)
        assert entry.status is PipelineStatus.ACTIVE and entry.lifecycle_execution_arn is None, state
        assert entry.spec_fingerprint == fingerprint and entry.spec_history == (), state
        assert entry.last_error["error"] == "InjectedFault" and state in entry.last_error["cause"], state
        assert "failed too" not in entry.last_error["cause"], (state, entry.last_error)
        assert observed(previous) == before, state

    updated = update(engine_with, previous, new)
    assert updated["status"] == "SUCCEEDED", updated
    entry = registry.get(PIPELINE_ID)
    assert entry.status is PipelineStatus.ACTIVE and entry.spec_fingerprint == parse_spec(new).fingerprint()
    assert [item["spec"]["source"]["tables"] for item in entry.spec_history] == [[captured_table, KEPT]]
    assert observed(new) == expected(new)

    with engine_with() as (engine, machines):
        arn = engine.start_execution(machines["TeardownPipeline"],
                                     json.dumps({"spec": new, "keep_topics": False, "keep_index": False}),
                                     name=f"teardown-{PIPELINE_ID}")
        assert engine.wait_for_execution(arn, EXECUTION_TIMEOUT_SECONDS)["status"] == "SUCCEEDED"
    assert footprint(parse_spec(new)).present() == {}
