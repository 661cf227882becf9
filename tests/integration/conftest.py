"""Every test in tests/integration is marked `integration`; fixtures for the source PostgreSQL steps."""

import json
import secrets
from collections.abc import Callable, Iterator

import boto3
import psycopg
import pytest
from moto import mock_aws
from psycopg import sql

from cdcflow.local.config import Endpoints
from lambdas import aws
from lambdas.common.redaction import forget_secrets
from lambdas.secrets import USE_TAG
from lambdas.source.heartbeat import drop_heartbeat_table
from lambdas.source.publication import drop_publication
from lambdas.source.replication_user import drop_replication_user
from lambdas.source.slot import drop_slot
from lambdas.spec import PipelineSpec, parse_spec


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    folder = config.rootpath / "tests" / "integration"
    for item in items:
        if item.path.is_relative_to(folder):
            item.add_marker(pytest.mark.integration)


# -- the source PostgreSQL steps ------------------------------------------------

SOURCE_ADMIN_SECRET = "tests/source-admin"


def _admin_connection(stack: Endpoints, database: str) -> psycopg.Connection:
    postgres = stack.postgres
    return psycopg.connect(
        host=postgres.host,
        port=postgres.port,
        dbname=database,
        user=postgres.admin_user,
        password=postgres.admin_password,
        autocommit=True,
    )


@pytest.fixture
def source_admin(local_stack: Endpoints) -> Iterator[psycopg.Connection]:
    """An autocommit admin connection to the local source database."""
    with _admin_connection(local_stack, local_stack.postgres.source_database) as conn:
        yield conn


@pytest.fixture
def sink_admin(local_stack: Endpoints) -> Iterator[psycopg.Connection]:
    """An autocommit admin connection to the local sink database."""
    with _admin_connection(local_stack, local_stack.postgres.sink_database) as conn:
        yield conn


@pytest.fixture
def source_tables(source_admin: psycopg.Connection) -> Iterator[list[str]]:
    """Two fresh tables with primary keys, `<schema>.orders` and `<schema>.customers`, in a schema of their own."""
    schema = f"src_{secrets.token_hex(4)}"
    source_admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    for table in ("orders", "customers"):
        source_admin.execute(
            sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, note text)").format(sql.Identifier(schema, table))
        )
    yield [f"{schema}.orders", f"{schema}.customers"]
    source_admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def make_source_spec(local_stack: Endpoints, source_admin: psycopg.Connection) -> Iterator[Callable[..., PipelineSpec]]:
    """Build specs of fresh pipelines on the local source; whatever they leave on the source is dropped afterwards."""
    made: list[PipelineSpec] = []

    def make(tables: list[str], sink_schema: str = "public") -> PipelineSpec:
        postgres = local_stack.postgres
        spec = parse_spec({
            "pipeline_id": f"t_{secrets.token_hex(5)}",
            "owner": "source-step-tests",
            "source": {
                "host": postgres.host,
                "port": postgres.port,
                "database": postgres.source_database,
                "admin_secret": SOURCE_ADMIN_SECRET,
                "tables": tables,
            },
            "kafka": {"bootstrap_servers": local_stack.kafka.bootstrap_servers},
            "connect": {"url": local_stack.connect.url},
            "sink": {
                "type": "jdbc",
                "host": postgres.host,
                "port": postgres.port,
                "database": postgres.sink_database,
                "secret": SOURCE_ADMIN_SECRET,
                "schema": sink_schema,
            },
        })
        made.append(spec)
        return spec

    yield make
    for spec in made:
        drop_slot(source_admin, spec)
        drop_publication(source_admin, spec)
        drop_heartbeat_table(source_admin, spec)
        drop_replication_user(source_admin, spec)


@pytest.fixture
def pipeline_spec(make_source_spec: Callable[..., PipelineSpec], source_tables: list[str]) -> PipelineSpec:
    """The spec of a fresh pipeline capturing `source_tables`."""
    return make_source_spec(source_tables)


@pytest.fixture
def secrets_manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An in-process Secrets Manager (moto), whatever endpoint the environment names."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    aws.reset_clients()
    with mock_aws():
        yield
    aws.reset_clients()
    forget_secrets()


@pytest.fixture
def store_login(secrets_manager: None) -> Callable[[str, str, str], str]:
    """Store `{"username", "password"}` under a secret name; returns the name."""

    def store(name: str, username: str, password: str) -> str:
        boto3.client("secretsmanager").create_secret(
            Name=name, SecretString=json.dumps({"username": username, "password": password}),
            Tags=[{"Key": USE_TAG, "Value": "true"}],  # as the platform tags a connection's secret
        )
        return name

    return store


@pytest.fixture
def source_admin_secret(local_stack: Endpoints, store_login: Callable[[str, str, str], str]) -> str:
    """The local admin login, stored under the secret name the specs of `make_source_spec` use."""
    postgres = local_stack.postgres
    return store_login(SOURCE_ADMIN_SECRET, postgres.admin_user, postgres.admin_password)
