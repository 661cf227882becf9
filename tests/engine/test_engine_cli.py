"""`cdcflow engine serve`: the project's workflows loaded with local function ARNs."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from statemachines.catalogue import local_definition_substitutions
from cdcflow.engine_cli import (
    STATEMACHINES_DIR,
    load_workflows,
    state_machine_name,
    substitute,
)
from localsfn import Engine


def test_state_machine_names_are_the_file_stems_in_camel_case():
    assert state_machine_name(Path("provision_pipeline.asl.json")) == "ProvisionPipeline"
    assert state_machine_name(Path("reconcile.asl.json")) == "Reconcile"


def test_a_substitution_without_a_value_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"flow.asl.json: no value for \$\{MissingFunctionArn\}"):
        substitute('{"Resource": "${MissingFunctionArn}"}', {}, Path("flow.asl.json"))
    assert substitute('"${A}-${A}"', {"A": "x"}, Path("f")) == '"x-x"'


def test_every_workflow_loads_with_local_function_arns_and_loading_is_idempotent(tmp_path: Path):
    files = sorted(STATEMACHINES_DIR.glob("*.asl.json"))
    assert files, "no workflows in statemachines/"
    local_arns = set(local_definition_substitutions().values())
    with Engine(tmp_path / "journal.sqlite", lambda arn: None) as engine:
        machines = load_workflows(engine)
        assert set(machines) == {state_machine_name(file) for file in files}
        for arn in machines.values():
            definition = engine.describe_state_machine(arn)["definition"]
            assert "${" not in definition
            resources = {state.get("Resource") for state in _states(json.loads(definition))}
            function_arns = {resource for resource in resources if resource and resource.startswith("arn:aws:lambda:")}
            assert function_arns <= local_arns
        assert load_workflows(engine) == machines


def _states(machine: dict):
    for state in machine["States"].values():
        yield state
        for branch in state.get("Branches", ()):
            yield from _states(branch)
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from _states(processor)


@pytest.mark.slow
def test_serve_prints_the_endpoint_serves_the_workflows_and_stops_on_sigterm(tmp_path: Path):
    process = subprocess.Popen(
        [sys.executable, "-m", "cdcflow.cli", "engine", "serve", "--port", "0", "--db", str(tmp_path / "engine.sqlite")],
        stdout=subprocess.PIPE, text=True, env={**os.environ},
    )
    try:
        endpoint = None
        while endpoint is None:
            ready, _, _ = select.select([process.stdout], [], [], 60)
            assert ready, "no endpoint printed"
            line = process.stdout.readline()
            assert line, "the engine exited before serving"
            if "http://" in line:
                endpoint = line[line.index("http://") :].strip()
        client = boto3.client("stepfunctions", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local")
        names = {machine["name"] for machine in client.list_state_machines()["stateMachines"]}
        assert names == {state_machine_name(file) for file in STATEMACHINES_DIR.glob("*.asl.json")}
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
