"""Secrets Manager credentials against moto: reading, generating, deleting, listing, never leaking."""

from __future__ import annotations

import io
import json
import logging
import string

import boto3
import pytest
from moto import mock_aws

from lambdas import aws, secrets
from lambdas.common import step_handler
from lambdas.common.observability import logger
from lambdas.common.redaction import forget_secrets
from lambdas.errors import SecretNotFound
from lambdas.secrets import Credentials, SecretMalformed

pytestmark = pytest.mark.unit

SPEC = {
    "pipeline_id": "orders",
    "owner": "team-x",
    "source": {"host": "db", "port": 5432, "database": "shop", "admin_secret": "shop/admin", "tables": ["public.orders"]},
    "kafka": {"bootstrap_servers": "kafka:9092"},
    "connect": {"url": "http://connect:8083"},
    "sink": {"type": "jdbc", "host": "sink", "port": 5432, "database": "dw", "secret": "dw/writer"},
}
ADMIN_PASSWORD = "admin-Pa55word-do-not-log"
REPLICATION_SECRET = "cdcflow/orders/replication"


@pytest.fixture
def secretsmanager(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    aws.reset_clients()
    forget_secrets()
    with mock_aws():
        yield boto3.client("secretsmanager")
    aws.reset_clients()
    forget_secrets()


@pytest.fixture
def log_output():
    buffer = io.StringIO()
    previous = logger.registered_handler.setStream(buffer)
    yield buffer
    logger.registered_handler.setStream(previous)


def put(client, name: str, value: str) -> None:
    client.create_secret(Name=name, SecretString=value)


def test_read_credentials(secretsmanager):
    put(secretsmanager, "shop/admin", json.dumps({"username": "postgres", "password": ADMIN_PASSWORD, "host": "db"}))
    assert secrets.read_credentials("shop/admin") == Credentials("postgres", ADMIN_PASSWORD)


def test_a_missing_secret_is_named(secretsmanager):
    with pytest.raises(SecretNotFound, match="secret 'shop/missing' does not exist"):
        secrets.read_credentials("shop/missing")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("not json " + ADMIN_PASSWORD, "is not a JSON object"),
        (json.dumps([ADMIN_PASSWORD]), "is not a JSON object"),
        (json.dumps({"username": "postgres", "pass": ADMIN_PASSWORD}), "has no 'password' key"),
        (json.dumps({"password": ADMIN_PASSWORD}), "has no 'username' key"),
        (json.dumps({"username": "postgres", "password": ""}), "empty or non-string 'password'"),
    ],
)
def test_a_malformed_secret_says_what_is_wrong_without_echoing_it(secretsmanager, value, problem):
    put(secretsmanager, "shop/admin", value)
    with pytest.raises(SecretMalformed, match=problem) as raised:
        secrets.read_credentials("shop/admin")
    assert "shop/admin" in str(raised.value)
    assert ADMIN_PASSWORD not in str(raised.value)
    # The decoder's error holds the secret's text: it must not be chained to what we raise.
    assert raised.value.__context__ is None or raised.value.__suppress_context__


def test_a_secret_scheduled_for_deletion_is_not_found(secretsmanager):
    put(secretsmanager, "shop/admin", json.dumps({"username": "postgres", "password": ADMIN_PASSWORD}))
    secretsmanager.delete_secret(SecretId="shop/admin", RecoveryWindowInDays=7)
    with pytest.raises(SecretNotFound, match="scheduled for deletion"):
        secrets.read_credentials("shop/admin")


def test_the_password_is_not_in_repr_or_str():
    credentials = Credentials("cdcflow_orders", ADMIN_PASSWORD)
    assert ADMIN_PASSWORD not in repr(credentials)
    assert ADMIN_PASSWORD not in str(credentials)
    assert "cdcflow_orders" in repr(credentials)


def test_generating_twice_keeps_the_same_secret_and_password(secretsmanager):
    tags = secrets.managed_tags("orders")
    arn, first = secrets.ensure_generated_secret(REPLICATION_SECRET, "cdcflow_orders", tags)
    arn_again, second = secrets.ensure_generated_secret(REPLICATION_SECRET, "cdcflow_orders", tags)
    assert arn == arn_again
    assert first == second
    assert first.username == "cdcflow_orders"
    assert len(first.password) >= 40
    assert set(first.password) <= set(string.ascii_letters + string.digits + "-_")
    assert secrets.read_credentials(arn) == first

    described = secretsmanager.describe_secret(SecretId=REPLICATION_SECRET)
    assert {t["Key"]: t["Value"] for t in described["Tags"]} == {
        "cdcflow:pipeline": "orders",
        "cdcflow:managed": "true",
    }


def test_generated_passwords_differ_between_secrets(secretsmanager):
    _, orders = secrets.ensure_generated_secret(REPLICATION_SECRET, "cdcflow_orders", secrets.managed_tags("orders"))
    _, payments = secrets.ensure_generated_secret(
        "cdcflow/payments/replication", "cdcflow_payments", secrets.managed_tags("payments")
    )
    assert orders.password != payments.password


def test_generating_over_another_users_secret_is_refused(secretsmanager):
    put(secretsmanager, REPLICATION_SECRET, json.dumps({"username": "someone_else", "password": ADMIN_PASSWORD}))
    with pytest.raises(SecretMalformed, match="holds the login of 'someone_else', not 'cdcflow_orders'"):
        secrets.ensure_generated_secret(REPLICATION_SECRET, "cdcflow_orders", secrets.managed_tags("orders"))


def test_generating_restores_a_secret_scheduled_for_deletion(secretsmanager):
    _, first = secrets.ensure_generated_secret(REPLICATION_SECRET, "cdcflow_orders", secrets.managed_tags("orders"))
    secretsmanager.delete_secret(SecretId=REPLICATION_SECRET, RecoveryWindowInDays=7)
    _, restored = secrets.ensure_generated_secret(REPLICATION_SECRET, "cdcflow_orders", secrets.managed_tags("orders"))
    assert restored == first


def test_delete_twice(secretsmanager):
    secrets.ensure_generated_secret(REPLICATION_SECRET, "cdcflow_orders", secrets.managed_tags("orders"))
    assert secrets.delete_secret(REPLICATION_SECRET) is True
    assert secrets.delete_secret(REPLICATION_SECRET) is False
    with pytest.raises(SecretNotFound):
        secrets.read_credentials(REPLICATION_SECRET)


def test_delete_purges_a_secret_scheduled_for_deletion(secretsmanager):
    put(secretsmanager, REPLICATION_SECRET, json.dumps({"username": "cdcflow_orders", "password": ADMIN_PASSWORD}))
    secretsmanager.delete_secret(SecretId=REPLICATION_SECRET, RecoveryWindowInDays=7)
    assert secrets.delete_secret(REPLICATION_SECRET) is False
    with pytest.raises(secretsmanager.exceptions.ResourceNotFoundException):
        secretsmanager.describe_secret(SecretId=REPLICATION_SECRET)
    _, fresh = secrets.ensure_generated_secret(REPLICATION_SECRET, "cdcflow_orders", secrets.managed_tags("orders"))
    assert fresh.password != ADMIN_PASSWORD


def test_list_cdcflow_secrets_lists_only_the_platform_prefix(secretsmanager):
    secrets.ensure_generated_secret(REPLICATION_SECRET, "cdcflow_orders", secrets.managed_tags("orders"))
    secrets.ensure_generated_secret("cdcflow/payments/replication", "cdcflow_payments", secrets.managed_tags("payments"))
    put(secretsmanager, "shop/admin", json.dumps({"username": "postgres", "password": ADMIN_PASSWORD}))
    put(secretsmanager, "other/cdcflow/thing", json.dumps({"username": "x", "password": ADMIN_PASSWORD}))
    assert secrets.list_cdcflow_secrets() == ["cdcflow/orders/replication", "cdcflow/payments/replication"]
    secrets.delete_secret("cdcflow/payments/replication")
    assert secrets.list_cdcflow_secrets() == ["cdcflow/orders/replication"]


def test_passwords_never_reach_the_log_or_the_error(secretsmanager, log_output, caplog):
    put(secretsmanager, "shop/admin", json.dumps({"username": "postgres", "password": ADMIN_PASSWORD}))
    generated: dict = {}

    @step_handler(idempotent=False)
    def create_user(spec, event):
        admin = secrets.read_credentials(spec.source.admin_secret)
        _, replication = secrets.ensure_generated_secret(
            spec.names.replication_secret, spec.names.replication_role, secrets.managed_tags(spec.pipeline_id)
        )
        generated["password"] = replication.password
        logger.info("logging in", extra={"admin": admin, "dsn": f"user=postgres password={admin.password}"})
        logging.getLogger("psycopg").warning("connection failed for password %s", replication.password)
        raise RuntimeError(f"CREATE ROLE failed: PASSWORD '{replication.password}' rejected")

    with caplog.at_level(logging.WARNING, logger="psycopg"), pytest.raises(RuntimeError) as raised:
        create_user({"spec": SPEC}, None)

    output = log_output.getvalue() + caplog.text
    assert "logging in" in output and "connection failed for password ****" in caplog.text
    for password in (ADMIN_PASSWORD, generated["password"]):
        assert password not in output
        assert password not in str(raised.value)
    assert "PASSWORD '****' rejected" in str(raised.value)
