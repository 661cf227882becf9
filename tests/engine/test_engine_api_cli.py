"""The AWS CLI against the engine for versions, aliases, tags, validation, Express, TestState and redrive."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localsfn import Engine, serve

ROLE = "arn:aws:iam::000000000000:role/cli-test"
PASS = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": True}, "End": True}}})
FAILS = json.dumps({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Broken", "Cause": "on purpose"}}})


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[str]:
    engine = Engine(tmp_path / "journal.sqlite", {})
    with serve(engine) as server:
        yield server.endpoint_url
    engine.close()


def aws(endpoint: str, *arguments: str) -> dict:
    environment = {
        **os.environ, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1", "AWS_PAGER": "",
        # StartSyncExecution and TestState would otherwise go to a sync- host.
        "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
    }
    completed = subprocess.run(
        ["aws", "stepfunctions", *arguments, "--endpoint-url", endpoint, "--output", "json"],
        check=False, env=environment, capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout) if completed.stdout.strip() else {}


@pytest.mark.slow
def test_the_aws_cli_drives_the_newer_apis(endpoint):
    created = aws(endpoint, "create-state-machine", "--name", "Cli", "--definition", PASS, "--role-arn", ROLE, "--publish", "--tags", "key=team,value=a")
    machine, version = created["stateMachineArn"], created["stateMachineVersionArn"]
    assert version == f"{machine}:1"
    alias = aws(endpoint, "create-state-machine-alias", "--name", "live", "--routing-configuration", f"stateMachineVersionArn={version},weight=100")["stateMachineAliasArn"]
    execution = aws(endpoint, "start-execution", "--state-machine-arn", alias)["executionArn"]
    while (described := aws(endpoint, "describe-execution", "--execution-arn", execution))["status"] == "RUNNING":
        time.sleep(0.05)
    assert described["stateMachineAliasArn"] == alias and described["stateMachineVersionArn"] == version
    assert aws(endpoint, "list-state-machine-versions", "--state-machine-arn", machine)["stateMachineVersions"][0]["stateMachineVersionArn"] == version
    assert aws(endpoint, "list-tags-for-resource", "--resource-arn", machine)["tags"] == [{"key": "team", "value": "a"}]
    assert aws(endpoint, "validate-state-machine-definition", "--definition", '{"StartAt": "X", "States": {}}')["result"] == "FAIL"

    express = aws(endpoint, "create-state-machine", "--name", "Quick", "--definition", PASS, "--role-arn", ROLE, "--type", "EXPRESS")["stateMachineArn"]
    synced = aws(endpoint, "start-sync-execution", "--state-machine-arn", express, "--input", "{}")
    assert synced["status"] == "SUCCEEDED" and json.loads(synced["output"]) == {"ok": True}
    tested = aws(endpoint, "test-state", "--definition", '{"Type": "Pass", "Result": 1, "Next": "N"}', "--role-arn", ROLE, "--input", "{}")
    assert (tested["status"], tested["nextState"], tested["output"]) == ("SUCCEEDED", "N", "1")

    failing = aws(endpoint, "create-state-machine", "--name", "Fails", "--definition", FAILS, "--role-arn", ROLE)["stateMachineArn"]
    failed = aws(endpoint, "start-execution", "--state-machine-arn", failing)["executionArn"]
    while aws(endpoint, "describe-execution", "--execution-arn", failed)["status"] == "RUNNING":
        time.sleep(0.05)
    assert "redriveDate" in aws(endpoint, "redrive-execution", "--execution-arn", failed)
    while (again := aws(endpoint, "describe-execution", "--execution-arn", failed))["status"] == "RUNNING":
        time.sleep(0.05)
    assert again["status"] == "FAILED" and again["redriveCount"] == 1


FAN = json.dumps({"StartAt": "Fan", "States": {"Fan": {"Type": "Map", "Label": "Fan", "End": True, "ItemProcessor": {
    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}}}})


@pytest.mark.slow
def test_the_aws_cli_lists_and_describes_map_runs_and_their_children(endpoint):
    machine = aws(endpoint, "create-state-machine", "--name", "CliFan", "--definition", FAN, "--role-arn", ROLE)["stateMachineArn"]
    execution = aws(endpoint, "start-execution", "--state-machine-arn", machine, "--input", "[1, 2]")["executionArn"]
    while aws(endpoint, "describe-execution", "--execution-arn", execution)["status"] == "RUNNING":
        time.sleep(0.05)
    (run,) = aws(endpoint, "list-map-runs", "--execution-arn", execution)["mapRuns"]
    described = aws(endpoint, "describe-map-run", "--map-run-arn", run["mapRunArn"])
    assert described["status"] == "SUCCEEDED" and described["executionCounts"]["succeeded"] == 2
    children = aws(endpoint, "list-executions", "--map-run-arn", run["mapRunArn"])["executions"]
    assert sorted(json.loads(aws(endpoint, "describe-execution", "--execution-arn", child["executionArn"])["output"]) for child in children) == [1, 2]
