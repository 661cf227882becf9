"""Every test in tests/unit is marked `unit`, and none of them reaches a real service.

AWS is moto's, through the `moto` fixture (and `registry_table` on it); the
pipeline specs come from `tests/unit/factories.py`.
"""

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdcflow.local.tables import ensure_principals_table, ensure_tables
from lambdas import aws

REGISTRY_TABLE = "cdcflow-registry"
PRINCIPALS_TABLE = "cdcflow-principals"
IDEMPOTENCY_TABLE = "cdcflow-idempotency"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    folder = config.rootpath / "tests" / "unit"
    for item in items:
        if item.path.is_relative_to(folder):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def no_local_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests run against moto's in-process mocks: an endpoint left in the environment would bypass them."""
    for name in [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)
    aws.reset_clients()


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's in-process AWS for one test: test credentials in us-east-1, no profile, fresh clients before and after.

    Build what a test needs on it in the test's own fixture (`def dynamodb(moto): ...`).
    """
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # moto's Step Functions then answers with its succeeding recorded history.
    monkeypatch.delenv("SF_EXECUTION_HISTORY_TYPE", raising=False)
    aws.reset_clients()
    with mock_aws():
        yield
    aws.reset_clients()


@pytest.fixture
def registry_table(moto: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The registry and idempotency tables, created in moto as the stack creates them; a DynamoDB client."""
    monkeypatch.setenv("REGISTRY_TABLE", REGISTRY_TABLE)
    client = boto3.client("dynamodb")
    ensure_tables(client, REGISTRY_TABLE, IDEMPOTENCY_TABLE)
    return client


@pytest.fixture
def tenancy(registry_table: Any) -> Any:
    """The principals and connections tables in moto, holding `factories.PRINCIPALS` and `factories.CONNECTIONS`."""
    from cdcflow.local.connections import ensure_connections_table
    from cdcflow.local.tables import ensure_principals_table
    from lambdas import connections, principals
    from tests.unit.factories import CONNECTIONS, PRINCIPALS, principal_arn

    ensure_principals_table(registry_table, principals.table_name())
    ensure_connections_table(registry_table, connections.table_name())
    for name, (teams, roles) in PRINCIPALS.items():
        principals.put_principal(principal_arn(name), teams=teams, roles=roles)
    for document in CONNECTIONS:
        connections.put_connection(document)
    return registry_table


@pytest.fixture
def lifecycle_sfn(tenancy: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """moto's Step Functions with every workflow's state machine, each named by its `*_STATE_MACHINE_ARN`."""
    from lambdas import api
    from tests.unit.factories import create_state_machine

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "1")
    client = boto3.client("stepfunctions")
    for variable, name in ((api.PROVISION_STATE_MACHINE_ARN, "ProvisionPipeline"),
                           (api.TEARDOWN_STATE_MACHINE_ARN, "TeardownPipeline"),
                           (api.PAUSE_STATE_MACHINE_ARN, "PausePipeline"),
                           (api.RESUME_STATE_MACHINE_ARN, "ResumePipeline"),
                           (api.UPDATE_STATE_MACHINE_ARN, "UpdatePipeline"),
                           (api.RESYNC_STATE_MACHINE_ARN, "ResyncPipeline"),
                           (api.REBUILD_STATE_MACHINE_ARN, "RebuildPipeline")):
        monkeypatch.setenv(variable, create_state_machine(client, name))
    return client


@pytest.fixture
def principals_table(moto: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The principals table in moto, empty, and `PRINCIPALS_TABLE` naming it; a DynamoDB client."""
    monkeypatch.setenv("PRINCIPALS_TABLE", PRINCIPALS_TABLE)
    client = boto3.client("dynamodb")
    ensure_principals_table(client, PRINCIPALS_TABLE)
    return client
