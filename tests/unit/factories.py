"""Test data for tests/unit: one pipeline spec, with keyword overrides for what a test varies.

`raw_spec` is the JSON a tenant sends (what the API and ValidateSpec
read); `pipeline_spec` is the same spec parsed. Every value a test does not
name is the default below, so a test shows only what it depends on. When the
spec's shape changes, this is the one place to change.

Import as `from tests.unit.factories import pipeline_spec, raw_spec`.

The callers: `LOCAL_USERS` are the local stack's users (`cdcflow.local.credentials.PROFILES`)
with fixed test keys; `credential_store()` is what the local API server verifies them with,
`api_auth(profile)` signs `requests` calls as one of them, and `proxy_event(...)` is an API
Gateway proxy event whose `requestContext.identity` is a caller (the admin unless told
otherwise), as API Gateway's IAM authorization fills it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import boto3

from cdcflow.api_client import ExecuteApiAuth
from cdcflow.api_server import to_proxy_event
from cdcflow.iam_auth import Authorized
from cdcflow.local.credentials import ADMIN_PROFILE, PROFILES, CredentialStore, LocalCredential
from lambdas.spec import PipelineSpec, parse_spec

JDBC_SINK = {"type": "jdbc", "host": "sink", "port": 5432, "database": "dw", "secret": "dw/writer"}


def raw_spec(
    pipeline_id: str = "orders",
    *,
    owner: str = "team-x",
    tables: Iterable[str] = ("public.orders",),
    source_host: str = "db",
    source_port: int = 5432,
    database: str = "shop",
    admin_secret: str = "shop/admin",
    bootstrap_servers: str = "kafka:9092",
    topic_prefix: str | None = None,
    retention_ms: int | None = None,
    connect_url: str = "http://connect:8083",
    sink: Mapping[str, Any] = JDBC_SINK,
    debezium: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A pipeline spec as the API receives it: a new dict on every call, safe to change."""
    kafka: dict[str, Any] = {"bootstrap_servers": bootstrap_servers}
    if topic_prefix is not None:
        kafka["topic_prefix"] = topic_prefix
    if retention_ms is not None:
        kafka["retention_ms"] = retention_ms
    document: dict[str, Any] = {
        "pipeline_id": pipeline_id,
        "owner": owner,
        "source": {
            "host": source_host,
            "port": source_port,
            "database": database,
            "admin_secret": admin_secret,
            "tables": list(tables),
        },
        "kafka": kafka,
        "connect": {"url": connect_url},
        "sink": dict(sink),
    }
    if debezium is not None:
        document["debezium"] = dict(debezium)
    return document


def pipeline_spec(pipeline_id: str = "orders", **overrides: Any) -> PipelineSpec:
    """`raw_spec(pipeline_id, **overrides)`, parsed and validated as the steps receive it."""
    return parse_spec(raw_spec(pipeline_id, **overrides))


SUCCEEDING_DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})


def create_state_machine(stepfunctions: Any, name: str) -> str:
    """A one-state machine that succeeds, under `name` (in moto, which records executions without running them); its ARN."""
    return stepfunctions.create_state_machine(
        name=name, definition=SUCCEEDING_DEFINITION, roleArn="arn:aws:iam::123456789012:role/cdcflow-workflows"
    )["stateMachineArn"]


# Tenancy: what a platform registers (connections, principals) and what a team then asks for.

ACCOUNT = "123456789012"
CONNECTIONS = (
    {"name": "shop-db", "kind": "source", "host": "db", "port": 5432, "database": "shop",
     "admin_secret": "shop/admin", "teams": ["*"]},
    {"name": "main", "kind": "cluster", "bootstrap_servers": "kafka:9092", "connect_url": "http://connect:8083",
     "teams": ["*"]},
    {"name": "dw", "kind": "sink", "type": "jdbc", "host": "sink", "port": 5432, "database": "dw",
     "secret": "dw/writer", "teams": ["*"]},
    {"name": "payments-db", "kind": "source", "host": "payments-db", "port": 5432, "database": "payments",
     "admin_secret": "payments/admin", "teams": ["payments"]},
    {"name": "search", "kind": "sink", "type": "opensearch", "url": "https://search.internal:9200", "teams": ["*"]},
)


def principal_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


# name -> (teams, roles); the requester/approver pairs of two teams, and an admin.
PRINCIPALS = {
    "payments-requester": (("payments",), ("requester",)),
    "payments-approver": (("payments",), ("approver",)),
    "analytics-requester": (("analytics",), ("requester",)),
    "analytics-approver": (("analytics",), ("approver",)),
    "platform-admin": ((), ("admin",)),
}


def request_spec(
    pipeline_id: str = "orders",
    *,
    owner: str | None = "payments",
    tables: Iterable[str] = ("public.orders",),
    source: str = "shop-db",
    cluster: str = "main",
    sink: str = "dw",
    schema: str | None = None,
    kafka: Mapping[str, Any] | None = None,
    debezium: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A pipeline spec as a team sends it to the API: connections by name; a new dict on every call."""
    document: dict[str, Any] = {
        "pipeline_id": pipeline_id,
        "source": {"connection": source, "tables": list(tables)},
        "cluster": cluster,
        "sink": {"connection": sink, **({"schema": schema} if schema else {})},
    }
    if owner is not None:
        document["owner"] = owner
    if kafka is not None:
        document["kafka"] = dict(kafka)
    if debezium is not None:
        document["debezium"] = dict(debezium)
    return document


def resolved_spec(document: Mapping[str, Any]) -> PipelineSpec:
    """What the API resolves a request into, with the connections above."""
    from lambdas.connections import parse_connection
    from lambdas.pipeline_request import resolve

    registered = {connection["name"]: parse_connection(connection) for connection in CONNECTIONS}
    return resolve(dict(document), registered.get)


# The local users with fixed keys: AKIA + 16 characters, as IAM issues them.
LOCAL_USERS = {
    profile: LocalCredential(profile, f"AKIATEST{index:012d}", f"test-secret-of-{profile}")
    for index, profile in enumerate(PROFILES)
}
ADMIN = LOCAL_USERS[ADMIN_PROFILE]


def credential_store(*extra: LocalCredential) -> CredentialStore:
    """The store the local API server checks signatures against: `LOCAL_USERS` and `extra`."""
    return CredentialStore([*LOCAL_USERS.values(), *extra])


def api_auth(profile: str = ADMIN_PROFILE, *, region: str = "us-east-1") -> ExecuteApiAuth:
    """SigV4 signing for `requests` (`auth=api_auth()`) as the local user `profile` of `LOCAL_USERS`."""
    user = LOCAL_USERS[profile]
    session = boto3.Session(aws_access_key_id=user.access_key_id, aws_secret_access_key=user.secret_access_key,
                            region_name=region)
    return ExecuteApiAuth(session)


def iam_identity(caller: LocalCredential | str = ADMIN, *, source_ip: str = "127.0.0.1") -> dict[str, Any]:
    """`requestContext.identity` for `caller`: a local user, or any principal ARN (an assumed role's...)."""
    if isinstance(caller, LocalCredential):
        return Authorized(caller).identity(source_ip=source_ip, user_agent="tests")
    return {"accountId": caller.split(":")[4] if caller.count(":") >= 5 else None, "accessKey": "ASIATESTSESSION00001",
            "caller": "AROATESTROLE0000001:session", "user": "AROATESTROLE0000001:session", "userArn": caller,
            "sourceIp": source_ip, "userAgent": "tests"}


def proxy_event(
    method: str,
    target: str,
    body: bytes = b"",
    *,
    caller: LocalCredential | str | None = ADMIN,
    headers: Iterable[tuple[str, str]] = (("Content-Type", "application/json"),),
) -> dict[str, Any]:
    """The proxy event API Gateway sends for a request `caller` signed (None: an event without identity)."""
    identity = iam_identity(caller) if caller is not None else None
    return to_proxy_event(method, target, list(headers), body, identity=identity)
