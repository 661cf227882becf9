"""Calling the local API as one of its local users, and provisioning through it, for the e2e tests.

The local API takes only SigV4-signed requests (`cdcflow.iam_auth`), as API
Gateway does. `api_client` and `api_auth` sign with a profile of the local
stack's credentials file (`cdcflow.local.credentials`): the admin unless a
test asks for a team's requester or approver.
"""

from __future__ import annotations

import time
from typing import Any

import boto3
import requests

from cdcflow.api_client import ExecuteApiAuth, PipelinesApi, profile_session
from cdcflow.local.config import AWS_REGION, Endpoints
from cdcflow.local.credentials import ADMIN_PROFILE
from tests.tenancy import team_request


def local_spec(stack: Endpoints, pipeline_id: str, tables: list[str], owner: str) -> dict[str, Any]:
    """A resolved spec for a pipeline on the local stack: its PostgreSQL's source and sink databases, its Kafka and
    Connect, the admin secrets the stack made."""
    postgres = stack.postgres
    return {
        "pipeline_id": pipeline_id,
        "owner": owner,
        "source": {"host": postgres.host, "port": postgres.port, "database": "source",
                   "admin_secret": stack.aws.source_admin_secret, "tables": list(tables)},
        "kafka": {"bootstrap_servers": stack.kafka.bootstrap_servers},
        "connect": {"url": stack.connect.url},
        "sink": {"type": "jdbc", "host": postgres.host, "port": postgres.port, "database": "sink",
                 "secret": stack.aws.sink_admin_secret},
    }


def api_session(stack: Endpoints, profile: str = ADMIN_PROFILE) -> boto3.Session:
    """A boto3 session holding the local user `profile`'s credentials."""
    assert stack.api.credentials_file is not None, "the local stack's endpoints name its credentials file"
    return profile_session(profile, credentials_file=stack.api.credentials_file, region=AWS_REGION)


def api_auth(stack: Endpoints, profile: str = ADMIN_PROFILE) -> ExecuteApiAuth:
    """SigV4 signing for `requests` calls to the local API (`auth=api_auth(stack)`) as `profile`."""
    return ExecuteApiAuth(api_session(stack, profile))


def api_client(stack: Endpoints, profile: str = ADMIN_PROFILE) -> PipelinesApi:
    """The pipelines API client of the local stack, signing as `profile`."""
    return PipelinesApi(stack.api.url, session=api_session(stack, profile))


def provision_and_wait(stack: Endpoints, spec: dict[str, Any], profile: str = ADMIN_PROFILE) -> dict[str, Any]:
    """POST the spec as `profile` (asserting 202) and return the execution once it is no longer RUNNING."""
    response = requests.post(f"{stack.api.url}/pipelines", json=team_request(stack, spec), auth=api_auth(stack, profile), timeout=30)
    assert response.status_code == 202, response.text
    sfn = boto3.client("stepfunctions", endpoint_url=stack.engine.url)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        execution = sfn.describe_execution(executionArn=response.json()["execution_arn"])
        if execution["status"] != "RUNNING":
            return execution
        time.sleep(0.25)
    raise AssertionError("the provision did not end")


def engine_client(stack: Endpoints) -> Any:
    """A Step Functions client of the stack's engine."""
    return boto3.client("stepfunctions", endpoint_url=stack.engine.url, region_name=AWS_REGION,
                        aws_access_key_id="local", aws_secret_access_key="local")


def wait_for_execution(sfn: Any, arn: str, timeout_seconds: float = 600) -> dict[str, Any]:
    """The execution once it is no longer RUNNING; fails the test after `timeout_seconds`."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        execution = sfn.describe_execution(executionArn=arn)
        if execution["status"] != "RUNNING":
            return execution
        time.sleep(0.5)
    raise AssertionError(f"{arn} still RUNNING after {timeout_seconds} s")


def signed_session(stack: Endpoints, profile: str = ADMIN_PROFILE) -> requests.Session:
    """A requests session whose calls are signed as `profile`; close it (or use it as a context manager)."""
    session = requests.Session()
    session.auth = api_auth(stack, profile)
    return session
