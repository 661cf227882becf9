"""Hostile and wrong input: refused before anything is created, or rolled back completely, with a named reason."""

from __future__ import annotations

import json
import socket
import uuid
from typing import Any

import psycopg
import pytest
import requests

from cdcflow.local.config import Endpoints
from lambdas import aws
from lambdas.secrets import USE_TAG
from lambdas.source.inventory import list_cdcflow_resources
from lambdas.spec import parse_spec
from tests.footprint import footprint
from tests.provision import api_auth, provision_and_wait
from tests.tenancy import team_request

pytestmark = pytest.mark.slow

RUN = uuid.uuid4().hex[:6]


def server_resources(stack: Endpoints) -> dict[str, list[str]]:
    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        return list_cdcflow_resources(conn)


HOSTILE_FIELDS = [
    ("pipeline_id", "orders'; DROP TABLE x; --"),
    ("pipeline_id", "Orders"),
    ("pipeline_id", "órders"),
    ("pipeline_id", "a" * 41),
    ("source.tables", ['public."orders"']),
    ("source.tables", ["public.orders; DROP TABLE orders"]),
    ("source.tables", ["public.ordérs"]),
    ("source.tables", ["select"]),
    ("source.tables", ["public." + "t" * 64]),
    ("kafka.topic_prefix", "cdc flow"),
    ("kafka.topic_prefix", "../../etc"),
]
# Fields a team's spec cannot carry: only registered connections hold addresses and secrets.
FIELDS_ONLY_CONNECTIONS_HOLD = [
    ("source.host", "evil.example.com"),
    ("source.port", 70000),
    ("source.admin_secret", "payments/warehouse-admin"),
    ("sink.secret", "payments/warehouse-admin"),
    ("sink.url", "http://collector.example.com"),
    ("connect", {"url": "http://collector.example.com:8083"}),
]


def with_field(spec: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    document = json.loads(json.dumps(spec))
    *parents, leaf = dotted.split(".")
    target = document
    for parent in parents:
        target = target.setdefault(parent, {})
    target[leaf] = value
    return document


@pytest.mark.parametrize(("field", "value"), HOSTILE_FIELDS)
def test_a_hostile_value_is_refused_naming_the_field_and_nothing_is_created(workflow_env, spec_for, field, value):
    before = server_resources(workflow_env)

    request = team_request(workflow_env, spec_for(f"hostile_{RUN}"))
    response = requests.post(f"{workflow_env.api.url}/pipelines", json=with_field(request, field, value),
                             auth=api_auth(workflow_env), timeout=30)

    assert response.status_code == 422, response.text
    assert response.json()["field"].startswith(field), response.json()
    assert server_resources(workflow_env) == before


@pytest.mark.parametrize(("field", "value"), FIELDS_ONLY_CONNECTIONS_HOLD)
def test_a_spec_naming_a_host_url_or_secret_is_refused_and_nothing_is_created(workflow_env, spec_for, field, value):
    before = server_resources(workflow_env)
    request = team_request(workflow_env, spec_for(f"hostile_{RUN}_reach"))

    response = requests.post(f"{workflow_env.api.url}/pipelines", json=with_field(request, field, value),
                             auth=api_auth(workflow_env), timeout=30)

    assert response.status_code == 422, response.text
    *parents, leaf = field.split(".")
    assert response.json()["field"] == (".".join(parents) or "(spec)")
    assert f"{leaf!r} was unexpected" in response.json()["message"]
    assert server_resources(workflow_env) == before


def test_an_oversized_spec_is_refused(workflow_env, spec_for) -> None:
    spec = spec_for(f"hostile_{RUN}_big", owner="x" * 100_000)

    response = requests.post(f"{workflow_env.api.url}/pipelines", json=team_request(workflow_env, spec),
                             auth=api_auth(workflow_env), timeout=30)

    assert 400 <= response.status_code < 500
    assert response.json()["message"]


def port_nobody_listens_on() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again on return: a connection there is refused


@pytest.fixture(scope="module")
def wrong_password_secret(workflow_env: Endpoints) -> str:
    name = f"cdcflow-e2e/wrong-{RUN}"
    aws.client("secretsmanager").create_secret(
        Name=name, SecretString=json.dumps({"username": workflow_env.postgres.admin_user, "password": "wrong"}),
        Tags=[{"Key": USE_TAG, "Value": "true"}],
    )
    return name


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("missing_secret", "SecretNotFound"),
        ("wrong_password", "AuthenticationFailed"),
        ("missing_table", "TablesNotFound"),
        ("unreachable_source", "SourceUnreachable"),  # found by Preflight, before anything is created
    ],
)
def test_a_wrong_reference_fails_at_its_step_with_a_named_error_and_leaves_nothing(
    workflow_env, spec_for, wrong_password_secret, case, error
) -> None:
    closed_port = port_nobody_listens_on()
    sections = {
        "missing_secret": {"source": {"admin_secret": f"cdcflow-e2e/no-such-secret-{RUN}"}},
        "wrong_password": {"source": {"admin_secret": wrong_password_secret}},
        "missing_table": {"source": {"tables": ["public.no_such_table"]}},
        "unreachable_source": {"source": {"port": closed_port}},
    }[case]
    spec = spec_for(f"hostile_{RUN}_{case}", **sections)

    execution = provision_and_wait(workflow_env, spec)

    assert execution["status"] == "FAILED"
    assert execution["error"] == error
    if case == "unreachable_source":
        assert f"127.0.0.1:{closed_port}" in execution["cause"]  # the cause names where it could not reach
    # Looked up with the real admin login: the spec's own may be the wrong one.
    assert footprint(parse_spec(spec_for(spec["pipeline_id"]))).present() == {}
