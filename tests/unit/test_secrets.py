"""Secrets Manager credentials against moto: reading, generating, deleting, listing, never leaking."""

from __future__ import annotations

import io
import json
import logging
import string

import boto3
import pytest

from lambdas import secrets
from lambdas.common import step_handler
from lambdas.common.observability import logger
from lambdas.secrets import SecretAccessDenied
from lambdas.common.redaction import forget_secrets
from lambdas.errors import SecretNotFound
from lambdas.secrets import Credentials, SecretMalformed
from tests.unit.factories import raw_spec

pytestmark = pytest.mark.unit

SPEC = raw_spec()
ADMIN_PASSWORD = "admin-Pa55word-do-not-log"
REPLICATION_SECRET = "cdcflow/orders/replication"
ORDERS_TAGS = secrets.managed_tags("orders", "team-orders")
PAYMENTS_TAGS = secrets.managed_tags("payments", "team-payments")


@pytest.fixture
def secretsmanager(moto):
    forget_secrets()
    yield boto3.client("secretsmanager")
    forget_secrets()


@pytest.fixture
def log_output():
    buffer = io.StringIO()
    previous = logger.registered_handler.setStream(buffer)
    yield buffer
    logger.registered_handler.setStream(previous)


def put(client, name: str, value: str, tags: dict[str, str] | None = None) -> None:
    tags = {secrets.USE_TAG: "true"} if tags is None else tags  # as the platform tags a connection's secret
    client.create_secret(Name=name, SecretString=value, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


def test_read_credentials(secretsmanager):
    put(secretsmanager, "shop/admin", json.dumps({"username": "postgres", "password": ADMIN_PASSWORD, "host": "db"}))
    assert secrets.read_credentials("shop/admin") == Credentials("postgres", ADMIN_PASSWORD)


# A managed tag on a name outside cdcflow/ is not one of cdcflow's replication secrets.
@pytest.mark.parametrize("tags", [{}, {secrets.USE_TAG: "false"}, {secrets.MANAGED_TAG: "true"}])
def test_a_secret_the_platform_did_not_tag_for_use_is_refused_naming_the_tag(secretsmanager, tags):
    put(secretsmanager, "shop/admin", json.dumps({"username": "postgres", "password": ADMIN_PASSWORD}), tags)
    with pytest.raises(SecretAccessDenied, match="secret 'shop/admin' is not tagged cdcflow:use=true") as raised:
        secrets.read_credentials("shop/admin")
    assert ADMIN_PASSWORD not in str(raised.value)


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
    arn, first = secrets.ensure_generated_secret(REPLICATION_SECRET, "cdcflow_orders", ORDERS_TAGS)
    arn_again, second = secrets.ensure_generated_secret(REPLICATION_SECRET, "cdcflow_orders", ORDERS_TAGS)
    assert arn == arn_again
    assert first == second
    assert first.username == "cdcflow_orders"
    assert len(first.password) >= 40
    assert set(first.password) <= set(string.ascii_letters + string.digits + "-_")
    assert secrets.read_credentials(arn) == first

    described = secretsmanager.describe_secret(SecretId=REPLICATION_SECRET)
    assert {t["Key"]: t["Value"] for t in described["Tags"]} == {
        "cdcflow:pipeline": "orders",
        "cdcflow:team": "team-orders",
        "cdcflow:managed": "true",
    }


def test_generated_passwords_differ_between_secrets(secretsmanager):
    _, orders = secrets.ensure_generated_secret(REPLICATION_SECRET, "cdcflow_orders", ORDERS_TAGS)
    _, payments = secrets.ensure_generated_secret("cdcflow/payments/replication", "cdcflow_payments", PAYMENTS_TAGS)
    assert orders.password != payments.password


def test_generating_over_another_users_secret_is_refused(secretsmanager):
    put(secretsmanager, REPLICATION_SECRET, json.dumps({"username": "someone_else", "password": ADMIN_PASSWORD}))
    with pytest.raises(SecretMalformed, match="holds the login of 'someone_else', not 'cdcflow_orders'"):
        secrets.ensure_generated_secret(REPLICATION_SECRET, "cdcflow_orders", ORDERS_TAGS)


def test_generating_restores_a_secret_scheduled_for_deletion_with_a_new_password(secretsmanager):
    arn, first = secrets.ensure_generated_secret(REPLICATION_SECRET, "cdcflow_orders", ORDERS_TAGS)
    secrets.delete_secret(REPLICATION_SECRET)

    arn_again, restored = secrets.ensure_generated_secret(REPLICATION_SECRET, "cdcflow_orders", ORDERS_TAGS)

    assert arn_again == arn
    assert restored.username == "cdcflow_orders"
    assert restored.password != first.password
    assert "DeletedDate" not in secretsmanager.describe_secret(SecretId=REPLICATION_SECRET)
    assert secrets.read_credentials(REPLICATION_SECRET) == restored
    # Once restored, a retry of the step keeps the new password.
    assert secrets.ensure_generated_secret(REPLICATION_SECRET, "cdcflow_orders", ORDERS_TAGS)[1] == restored


def test_delete_keeps_a_recovery_window(secretsmanager):
    secrets.ensure_generated_secret(REPLICATION_SECRET, "cdcflow_orders", ORDERS_TAGS)

    assert secrets.delete_secret(REPLICATION_SECRET) is True

    described = secretsmanager.describe_secret(SecretId=REPLICATION_SECRET)
    assert "DeletedDate" in described
    window = described["DeletedDate"] - described["LastChangedDate"]
    assert secrets.RECOVERY_WINDOW_DAYS == 7
    assert abs(window.total_seconds() - 7 * 86400) < 3600
    secretsmanager.restore_secret(SecretId=REPLICATION_SECRET)
    assert secrets.read_credentials(REPLICATION_SECRET).username == "cdcflow_orders"


def test_delete_twice(secretsmanager):
    secrets.ensure_generated_secret(REPLICATION_SECRET, "cdcflow_orders", ORDERS_TAGS)
    assert secrets.delete_secret(REPLICATION_SECRET) is True
    assert secrets.delete_secret(REPLICATION_SECRET) is False
    with pytest.raises(SecretNotFound, match="scheduled for deletion"):
        secrets.read_credentials(REPLICATION_SECRET)


def test_delete_leaves_a_secret_already_scheduled_for_deletion_recoverable(secretsmanager):
    put(secretsmanager, REPLICATION_SECRET, json.dumps({"username": "cdcflow_orders", "password": ADMIN_PASSWORD}))
    secretsmanager.delete_secret(SecretId=REPLICATION_SECRET, RecoveryWindowInDays=30)
    scheduled_for = secretsmanager.describe_secret(SecretId=REPLICATION_SECRET)["DeletedDate"]

    assert secrets.delete_secret(REPLICATION_SECRET) is False

    assert secretsmanager.describe_secret(SecretId=REPLICATION_SECRET)["DeletedDate"] == scheduled_for


def test_delete_of_an_absent_secret_is_a_no_op(secretsmanager):
    assert secrets.delete_secret(REPLICATION_SECRET) is False


def test_list_cdcflow_secrets_lists_only_the_platform_prefix(secretsmanager):
    secrets.ensure_generated_secret(REPLICATION_SECRET, "cdcflow_orders", ORDERS_TAGS)
    secrets.ensure_generated_secret("cdcflow/payments/replication", "cdcflow_payments", PAYMENTS_TAGS)
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
            spec.names.replication_secret, spec.names.replication_role,
            secrets.managed_tags(spec.pipeline_id, spec.owner),
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
