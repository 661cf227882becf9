"""Every test in tests/e2e is marked `e2e`; fixtures that run the workflows against the local stack."""

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest

from cdcflow.engine_cli import load_workflows
from cdcflow.local.config import Endpoints, aws_environment
from cdcflow.local.tables import ensure_tables
from lambdas import aws
from localsfn import Engine
from statemachines.catalogue import resolve_local_function
from tests.provision import local_spec


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    folder = config.rootpath / "tests" / "e2e"
    for item in items:
        if item.path.is_relative_to(folder):
            item.add_marker(pytest.mark.e2e)


CAPTURED_TABLE = "public.e2e_orders"


@pytest.fixture(scope="module")
def workflow_env(local_stack: Endpoints) -> Iterator[Endpoints]:
    """This process set up as a Lambda function of the local stack sees it: endpoints, tables, credentials.

    The registry and idempotency tables are this module's own, so in-process
    workflows never meet the entries of the stack's engine service; the
    environment is restored when the module ends, so no later test talks to
    the stack by accident.
    """
    suffix = uuid.uuid4().hex[:8]
    registry_table, idempotency_table = (
        f"e2e-pipelines-{suffix}",
        f"e2e-idempotency-{suffix}",
    )
    with pytest.MonkeyPatch.context() as patch:
        for name, value in aws_environment(local_stack).items():
            patch.setenv(name, value)
        patch.setenv("REGISTRY_TABLE", registry_table)
        patch.setenv("IDEMPOTENCY_TABLE", idempotency_table)
        patch.setenv("POWERTOOLS_SERVICE_NAME", "cdcflow")
        patch.setenv("POWERTOOLS_METRICS_NAMESPACE", "cdcflow")
        aws.reset_clients()
        dynamodb = boto3.client("dynamodb")
        ensure_tables(dynamodb, registry_table, idempotency_table)
        yield local_stack
        for table in (registry_table, idempotency_table):
            dynamodb.delete_table(TableName=table)
    aws.reset_clients()


@pytest.fixture(scope="session")
def captured_table(local_stack: Endpoints) -> str:
    """A source table with a primary key for the e2e pipelines to capture."""
    with psycopg.connect(local_stack.postgres.source_dsn(), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS public.e2e_orders (id serial PRIMARY KEY, item text NOT NULL, qty int NOT NULL)"
        )
    return CAPTURED_TABLE


@pytest.fixture(scope="session")
def spec_for(local_stack: Endpoints, captured_table: str) -> Callable[..., dict[str, Any]]:
    """`spec_for(pipeline_id, **sections)`: a spec for a pipeline on the local stack."""

    def make(pipeline_id: str, **sections: Any) -> dict[str, Any]:
        spec = local_spec(local_stack, pipeline_id, [captured_table], "team-e2e")
        for section, values in sections.items():
            spec[section] = {**spec.get(section, {}), **values} if isinstance(values, dict) else values
        return spec

    return make


@contextmanager
def in_process_engine(
    journal: Path, functions: Callable[[str], Any] = resolve_local_function
) -> Iterator[tuple[Engine, dict[str, str]]]:
    """The local engine in this process with cdcflow's workflows loaded; yields it and {name: ARN}."""
    engine = Engine(journal, functions)
    try:
        yield engine, load_workflows(engine)
    finally:
        engine.close()


@pytest.fixture
def engine_with(workflow_env: Endpoints, tmp_path: Path) -> Callable[..., Any]:
    """`with engine_with(functions) as (engine, machines):` runs an in-process engine on a fresh journal."""
    return lambda functions=resolve_local_function: in_process_engine(tmp_path / "journal.sqlite", functions)
