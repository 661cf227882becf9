"""Fuzz the local API from docs/openapi.yaml: no client input gets a 5xx, and answers match the document.

Schemathesis generates valid and invalid requests for every documented
operation and sends them to the API server (the real handler, with moto's
DynamoDB and Step Functions behind it), signed as the local admin.
"""

import json
from pathlib import Path

import boto3
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from moto import mock_aws

from cdcflow.api_server import api_url, serve_api
from cdcflow.local.connections import ensure_connections_table
from cdcflow.local.credentials import register_principals
from cdcflow.local.tables import ensure_principals_table, ensure_tables
from lambdas import api, aws, connections
from tests.unit.factories import CONNECTIONS, LOCAL_USERS, api_auth, credential_store

pytestmark = [pytest.mark.unit, pytest.mark.slow]

schema = schemathesis.openapi.from_path(Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml")


@pytest.fixture(scope="module")
def api_base_url():
    patch = pytest.MonkeyPatch()
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "REGISTRY_TABLE": "cdcflow-registry",
                        "PRINCIPALS_TABLE": "cdcflow-principals",
                        "POWERTOOLS_METRICS_DISABLED": "1", "POWERTOOLS_LOG_LEVEL": "WARNING"}.items():
        patch.setenv(name, value)
    aws.reset_clients()
    with mock_aws():
        ensure_tables(boto3.client("dynamodb"), "cdcflow-registry", "cdcflow-idempotency")
        ensure_principals_table(boto3.client("dynamodb"), "cdcflow-principals")
        register_principals(LOCAL_USERS)
        ensure_connections_table(boto3.client("dynamodb"), connections.table_name())
        for connection in CONNECTIONS:
            connections.put_connection(connection)
        sfn = boto3.client("stepfunctions")
        definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
        for variable, name in ((api.PROVISION_STATE_MACHINE_ARN, "ProvisionPipeline"),
                               (api.TEARDOWN_STATE_MACHINE_ARN, "TeardownPipeline"),
                               (api.PAUSE_STATE_MACHINE_ARN, "PausePipeline"),
                               (api.RESUME_STATE_MACHINE_ARN, "ResumePipeline"),
                               (api.UPDATE_STATE_MACHINE_ARN, "UpdatePipeline"),
                               (api.RESYNC_STATE_MACHINE_ARN, "ResyncPipeline"),
                               (api.REBUILD_STATE_MACHINE_ARN, "RebuildPipeline")):
            arn = sfn.create_state_machine(name=name, definition=definition,
                                           roleArn="arn:aws:iam::123456789012:role/workflows")["stateMachineArn"]
            patch.setenv(variable, arn)
        server = serve_api(0, credentials=credential_store())
        yield api_url(server)
        server.shutdown()
        server.server_close()
    aws.reset_clients()
    patch.undo()


@schema.parametrize()
# Derandomized: the same examples on every run, so a failure reproduces and CI does not
# depend on which rare corner of schemathesis' generator a random seed reaches.
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_client_input_gets_a_server_error(case, api_base_url):
    response = case.call(base_url=api_base_url, auth=api_auth())

    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
    if case.method.upper() not in api.RESOURCE_METHODS[case.operation.path]:
        assert response.status_code == 405  # probing a method the resource does not have
    else:
        assert response.status_code in {int(code) for code in case.operation.definition.raw["responses"]}, (
            f"{case.method} {case.formatted_path} answered an undocumented {response.status_code}: {response.text}")
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("message"), str) and body["message"]
