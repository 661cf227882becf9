"""An RDS source: the parameter group is changed, a person approves the reboot, the workflow waits for the instance.

RDS is moto's (the only AWS part without a local server); the database
behind the spec is still the local PostgreSQL, so every step after the
reboot is real. The approval is answered through the pipelines API, as a
user answers it, and the engine serves the Step Functions API it calls.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import requests
from psycopg import sql

from cdcflow.api_server import api_url, serve_api
from cdcflow.engine_cli import load_workflows
from cdcflow.local.config import Endpoints
from cdcflow.local.credentials import CredentialStore
from lambdas import aws, registry
from lambdas.registry import PipelineStatus
from lambdas.spec import parse_spec
from localsfn import Engine, serve
from localsfn.clock import VirtualClock
from statemachines.catalogue import resolve_local_function
from tests.footprint import footprint
from tests.provision import api_auth
from tests.tenancy import team_request

pytestmark = pytest.mark.slow

EXECUTION_TIMEOUT_SECONDS = 600
REQUESTER, APPROVER = "cdcflow-orders-requester", "cdcflow-orders-approver"


@pytest.fixture
def rds_instance(workflow_env: Any) -> str:
    """A PostgreSQL instance in moto on its default parameter group, as most instances start, tagged for cdcflow."""
    instance_id = f"e2e-{uuid.uuid4().hex[:8]}"
    aws.client("rds").create_db_instance(
        DBInstanceIdentifier=instance_id,
        Engine="postgres",
        EngineVersion="15.4",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        MasterUsername="postgres",
        MasterUserPassword="not-used-by-cdcflow",
        Tags=[{"Key": "cdcflow:managed", "Value": "true"}],  # the platform lets cdcflow manage it
    )
    return instance_id


def rds_replication_emulated(local_stack: Endpoints) -> Callable[[str], Any]:
    """The real handlers, with what RDS's `rds_replication` role gives its members added after CreateReplicationUser.

    On RDS, membership in `rds_replication` lets a role start a walsender;
    on a self-managed server only the REPLICATION attribute does, so the role
    gets it here to let Debezium stream from the local PostgreSQL.
    """
    with psycopg.connect(local_stack.postgres.source_dsn(), autocommit=True) as conn:
        conn.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_replication') "
            "THEN CREATE ROLE rds_replication; END IF; END $$"
        )

    def functions(arn: str) -> Any:
        handler = resolve_local_function(arn)
        if not arn.endswith(":cdcflow-create-replication-user"):
            return handler

        def create_replication_user(event: dict[str, Any], context: Any) -> Any:
            result = handler(event, context)
            with psycopg.connect(local_stack.postgres.source_dsn(), autocommit=True) as conn:
                conn.execute(sql.SQL("ALTER ROLE {} REPLICATION").format(sql.Identifier(result["role"])))
            return result

        return create_replication_user

    return functions


@pytest.fixture
def services(
    engine_with: Callable[..., Any], local_stack: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """The in-process engine behind a Step Functions endpoint, and the API in front of it."""
    with engine_with(rds_replication_emulated(local_stack)) as (engine, machines), serve(engine) as sfn_server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SFN", sfn_server.endpoint_url)
        monkeypatch.setenv("PROVISION_STATE_MACHINE_ARN", machines["ProvisionPipeline"])
        monkeypatch.setenv("TEARDOWN_STATE_MACHINE_ARN", machines["TeardownPipeline"])
        assert local_stack.api.credentials_file is not None
        api = serve_api(0, credentials=CredentialStore.from_file(local_stack.api.credentials_file))
        try:
            # The team's requester asks; the team's approver answers (a requester never approves its own reboot).
            yield {"engine": engine, "api": api_url(api), "stack": local_stack,
                   "auth": api_auth(local_stack, REQUESTER), "approver_auth": api_auth(local_stack, APPROVER)}
        finally:
            api.shutdown()
            api.server_close()


def wait_for_step(pipeline_id: str, step: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        entry = registry.get(pipeline_id)
        if entry is not None and entry.current_step == step:
            return
        time.sleep(0.5)
    raise AssertionError(f"pipeline {pipeline_id} never reached {step}")


def provision(services: dict[str, Any], spec: dict[str, Any]) -> str:
    response = requests.post(f"{services['api']}/pipelines", json=team_request(services["stack"], spec),
                             auth=services["auth"], timeout=30)
    assert response.status_code == 202, response.text
    return response.json()["execution_arn"]


def answer(services: dict[str, Any], pipeline_id: str, approved: bool) -> requests.Response:
    return requests.post(
        f"{services['api']}/pipelines/{pipeline_id}/approval",
        json={"approved": approved, "comment": "e2e"},
        auth=services["approver_auth"],
        timeout=30,
    )


def assert_parameter_group_restored(instance_id: str) -> None:
    """The rollback attached the instance's original group again and deleted cdcflow's copy."""
    client = aws.client("rds")
    attached = client.describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"][0]["DBParameterGroups"]
    assert [group["DBParameterGroupName"] for group in attached] == ["default.postgres15"]
    names = {group["DBParameterGroupName"] for group in client.describe_db_parameter_groups()["DBParameterGroups"]}
    assert f"cdcflow-{instance_id}" not in names


def test_an_approved_reboot_goes_on_to_an_active_pipeline(services, spec_for, rds_instance) -> None:
    spec = spec_for(
        "e2e_rds_approved",
        owner="team-orders",
        source={"rds_instance_id": rds_instance, "approval_required": True},
    )
    arn = provision(services, spec)
    wait_for_step(spec["pipeline_id"], "RequestApproval")
    own = requests.post(f"{services['api']}/pipelines/{spec['pipeline_id']}/approval", json={"approved": True},
                        auth=services["auth"], timeout=30)
    assert own.status_code == 403 and "may not approve its own reboot" in own.json()["message"]
    assert registry.get(spec["pipeline_id"]).current_step == "RequestApproval"

    assert answer(services, spec["pipeline_id"], approved=True).status_code == 202
    execution = services["engine"].wait_for_execution(arn, EXECUTION_TIMEOUT_SECONDS)

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    output = json.loads(execution["output"])
    assert output["EnsureLogicalReplication"]["reboot_required"] is True
    assert output["EnsureLogicalReplication"]["parameter_group"].startswith(f"cdcflow-{rds_instance}")
    assert output["RebootSourceInstance"] == {
        "rds_instance_id": rds_instance,
        "reboot_started": True,
    }
    group = aws.client("rds").describe_db_instances(DBInstanceIdentifier=rds_instance)["DBInstances"][0][
        "DBParameterGroups"
    ][0]["DBParameterGroupName"]
    parameters = aws.client("rds").describe_db_parameters(DBParameterGroupName=group)["Parameters"]
    assert {p["ParameterName"]: p.get("ParameterValue") for p in parameters}["rds.logical_replication"] == "1"
    # A second answer finds nothing waiting.
    assert answer(services, spec["pipeline_id"], approved=True).status_code == 409

    teardown = requests.delete(f"{services['api']}/pipelines/{spec['pipeline_id']}", auth=services["auth"],
                               timeout=30)
    assert teardown.status_code == 202
    assert (
        services["engine"].wait_for_execution(teardown.json()["execution_arn"], EXECUTION_TIMEOUT_SECONDS)["status"]
        == "SUCCEEDED"
    )
    assert footprint(parse_spec(spec)).present() == {}


def test_a_rejected_reboot_fails_the_pipeline_cleanly(services, spec_for, rds_instance) -> None:
    spec = spec_for(
        "e2e_rds_rejected",
        owner="team-orders",
        source={"rds_instance_id": rds_instance, "approval_required": True},
    )
    arn = provision(services, spec)
    wait_for_step(spec["pipeline_id"], "RequestApproval")

    assert answer(services, spec["pipeline_id"], approved=False).status_code == 202
    execution = services["engine"].wait_for_execution(arn, EXECUTION_TIMEOUT_SECONDS)

    assert execution["status"] == "FAILED"
    assert execution["error"] == "ApprovalRejected"
    entry = registry.get(spec["pipeline_id"])
    assert entry.status is PipelineStatus.FAILED
    assert entry.current_step == "RequestApproval"
    assert footprint(parse_spec(spec)).present() == {}
    assert_parameter_group_restored(rds_instance)


def test_an_unanswered_approval_times_out_and_fails_cleanly(workflow_env, tmp_path, spec_for, rds_instance) -> None:
    spec = spec_for(
        "e2e_rds_unanswered",
        owner="team-orders",
        source={"rds_instance_id": rds_instance, "approval_required": True},
    )
    # Virtual time: the day-long approval timeout passes as soon as the engine has nothing else to do.
    functions = rds_replication_emulated(workflow_env)
    with Engine(tmp_path / "journal.sqlite", functions, clock=VirtualClock()) as engine:
        machines = load_workflows(engine)
        arn = engine.start_execution(machines["ProvisionPipeline"], json.dumps({"spec": spec}), name="unanswered")
        execution = engine.wait_for_execution(arn, EXECUTION_TIMEOUT_SECONDS)

    assert execution["status"] == "FAILED"
    assert execution["error"] == "States.Timeout"
    entry = registry.get(spec["pipeline_id"])
    assert entry.status is PipelineStatus.FAILED
    assert entry.current_step == "RequestApproval"
    assert footprint(parse_spec(spec)).present() == {}
    assert_parameter_group_restored(rds_instance)
