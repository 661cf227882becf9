"""Versions, aliases, tags, ValidateStateMachineDefinition and idempotent CreateStateMachine, through boto3."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from localsfn import Engine, serve

ROLE = "arn:aws:iam::000000000000:role/versions-test"
PASS_ONE = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1, "End": True}}})
PASS_TWO = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 2, "End": True}}})


@pytest.fixture
def engine_and_client(tmp_path: Path) -> Iterator[tuple[Engine, object]]:
    engine = Engine(tmp_path / "journal.sqlite", {})
    with serve(engine) as server:
        client = boto3.client(
            "stepfunctions", endpoint_url=server.endpoint_url, region_name="us-east-1",
            aws_access_key_id="local", aws_secret_access_key="local",
            config=Config(retries={"max_attempts": 0}, inject_host_prefix=False),
        )
        yield engine, client
    engine.close()


@pytest.fixture
def client(engine_and_client):
    return engine_and_client[1]


def _run(client, arn: str, name: str | None = None) -> dict:
    execution = client.start_execution(stateMachineArn=arn, **({"name": name} if name else {}))["executionArn"]
    while (description := client.describe_execution(executionArn=execution))["status"] == "RUNNING":
        pass
    return description


def test_create_with_publish_returns_version_1_and_executions_of_it_name_the_version(client):
    created = client.create_state_machine(name="Flow", definition=PASS_ONE, roleArn=ROLE, publish=True, versionDescription="first")
    arn = created["stateMachineArn"]
    assert created["stateMachineVersionArn"] == f"{arn}:1"
    updated = client.update_state_machine(stateMachineArn=arn, definition=PASS_TWO, publish=True)
    assert updated["stateMachineVersionArn"] == f"{arn}:2"
    assert updated["revisionId"]

    on_version_1 = _run(client, f"{arn}:1")
    assert on_version_1["output"] == "1"
    assert on_version_1["stateMachineVersionArn"] == f"{arn}:1"
    assert on_version_1["stateMachineArn"] == arn
    assert "stateMachineAliasArn" not in on_version_1
    assert _run(client, arn)["output"] == "2"  # the unqualified ARN runs the latest revision
    for_execution = client.describe_state_machine_for_execution(executionArn=on_version_1["executionArn"])
    assert json.loads(for_execution["definition"]) == json.loads(PASS_ONE) and for_execution["stateMachineArn"] == f"{arn}:1"

    versions = client.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
    assert [version["stateMachineVersionArn"] for version in versions] == [f"{arn}:2", f"{arn}:1"]
    described = client.describe_state_machine(stateMachineArn=f"{arn}:1")
    assert json.loads(described["definition"]) == json.loads(PASS_ONE)
    assert described["description"] == "first"


def test_publishing_an_unchanged_revision_is_idempotent_and_a_stale_revision_id_conflicts(client):
    arn = client.create_state_machine(name="Flow", definition=PASS_ONE, roleArn=ROLE)["stateMachineArn"]
    first = client.publish_state_machine_version(stateMachineArn=arn)["stateMachineVersionArn"]
    assert client.publish_state_machine_version(stateMachineArn=arn)["stateMachineVersionArn"] == first == f"{arn}:1"
    revision = client.describe_state_machine(stateMachineArn=arn)["revisionId"]
    client.update_state_machine(stateMachineArn=arn, definition=PASS_TWO)
    with pytest.raises(client.exceptions.ConflictException, match=revision):
        client.publish_state_machine_version(stateMachineArn=arn, revisionId=revision)


def test_a_deleted_version_number_is_not_reused_and_a_version_behind_an_alias_cannot_be_deleted(client):
    arn = client.create_state_machine(name="Flow", definition=PASS_ONE, roleArn=ROLE, publish=True)["stateMachineArn"]
    client.delete_state_machine_version(stateMachineVersionArn=f"{arn}:1")
    assert client.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"] == []
    client.update_state_machine(stateMachineArn=arn, definition=PASS_TWO)
    assert client.publish_state_machine_version(stateMachineArn=arn)["stateMachineVersionArn"] == f"{arn}:2"
    client.create_state_machine_alias(name="live", routingConfiguration=[{"stateMachineVersionArn": f"{arn}:2", "weight": 100}])
    with pytest.raises(client.exceptions.ConflictException, match="referenced by an alias"):
        client.delete_state_machine_version(stateMachineVersionArn=f"{arn}:2")
    with pytest.raises(client.exceptions.StateMachineDoesNotExist):
        client.start_execution(stateMachineArn=f"{arn}:1")


def test_an_alias_routes_executions_by_weight_and_names_itself_and_the_version(client):
    arn = client.create_state_machine(name="Flow", definition=PASS_ONE, roleArn=ROLE, publish=True)["stateMachineArn"]
    client.update_state_machine(stateMachineArn=arn, definition=PASS_TWO, publish=True)
    routing = [{"stateMachineVersionArn": f"{arn}:1", "weight": 80}, {"stateMachineVersionArn": f"{arn}:2", "weight": 20}]
    alias = client.create_state_machine_alias(name="prod", routingConfiguration=routing, description="canary")["stateMachineAliasArn"]
    assert alias == f"{arn}:prod"
    # The same request again is the same alias; another routing under the name conflicts.
    assert client.create_state_machine_alias(name="prod", routingConfiguration=routing, description="canary")["stateMachineAliasArn"] == alias
    with pytest.raises(client.exceptions.ConflictException):
        client.create_state_machine_alias(name="prod", routingConfiguration=[{"stateMachineVersionArn": f"{arn}:1", "weight": 100}])

    outputs = Counter()
    for _ in range(200):
        description = _run(client, alias)
        assert description["stateMachineAliasArn"] == alias
        assert description["stateMachineVersionArn"] == f"{arn}:{description['output']}"
        outputs[description["output"]] += 1
    assert 120 <= outputs["1"] <= 190 and outputs["2"] >= 10, outputs

    client.update_state_machine_alias(stateMachineAliasArn=alias, routingConfiguration=[{"stateMachineVersionArn": f"{arn}:2", "weight": 100}])
    assert {_run(client, alias)["output"] for _ in range(10)} == {"2"}
    described = client.describe_state_machine_alias(stateMachineAliasArn=alias)
    assert described["name"] == "prod" and described["description"] == "canary" and "updateDate" in described
    assert described["routingConfiguration"] == [{"stateMachineVersionArn": f"{arn}:2", "weight": 100}]
    assert [item["stateMachineAliasArn"] for item in client.list_state_machine_aliases(stateMachineArn=arn)["stateMachineAliases"]] == [alias]
    client.delete_state_machine_alias(stateMachineAliasArn=alias)
    with pytest.raises(client.exceptions.ResourceNotFound):
        client.describe_state_machine_alias(stateMachineAliasArn=alias)


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        ([{"weight": 60}, {"weight": 60}], "add up to 100"),
        ([{"weight": 100}, {"weight": 0}, {"weight": 0}], "one or two"),
    ],
)
def test_an_alias_with_bad_weights_is_refused(client, routing, message):
    arn = client.create_state_machine(name="Flow", definition=PASS_ONE, roleArn=ROLE, publish=True)["stateMachineArn"]
    client.update_state_machine(stateMachineArn=arn, definition=PASS_TWO, publish=True)
    for index, route in enumerate(routing):
        route["stateMachineVersionArn"] = f"{arn}:{index % 2 + 1}"
    with pytest.raises(client.exceptions.ValidationException, match=message):
        client.create_state_machine_alias(name="bad", routingConfiguration=routing)


def test_create_is_idempotent_for_the_same_definition_whatever_the_role_and_refuses_another(client):
    first = client.create_state_machine(name="Flow", definition=PASS_ONE, roleArn=ROLE)
    again = client.create_state_machine(name="Flow", definition=PASS_ONE, roleArn="arn:aws:iam::000000000000:role/other")
    assert again["stateMachineArn"] == first["stateMachineArn"] and again["creationDate"] == first["creationDate"]
    assert client.describe_state_machine(stateMachineArn=first["stateMachineArn"])["roleArn"] == ROLE  # not updated, as on AWS
    with pytest.raises(client.exceptions.StateMachineAlreadyExists):
        client.create_state_machine(name="Flow", definition=PASS_TWO, roleArn=ROLE)
    with pytest.raises(client.exceptions.StateMachineAlreadyExists):
        client.create_state_machine(name="Flow", definition=PASS_ONE, roleArn=ROLE, type="EXPRESS")


def test_tags_are_set_listed_and_removed(client):
    arn = client.create_state_machine(name="Flow", definition=PASS_ONE, roleArn=ROLE, tags=[{"key": "team", "value": "payments"}])["stateMachineArn"]
    client.tag_resource(resourceArn=arn, tags=[{"key": "env", "value": "dev"}, {"key": "team", "value": "orders"}])
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "env", "value": "dev"}, {"key": "team", "value": "orders"}]
    client.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "env", "value": "dev"}]
    with pytest.raises(client.exceptions.TooManyTags):
        client.tag_resource(resourceArn=arn, tags=[{"key": f"k{index}", "value": ""} for index in range(50)])
    with pytest.raises(client.exceptions.ResourceNotFound):
        client.list_tags_for_resource(resourceArn=arn.replace("Flow", "Missing"))


def test_validate_answers_ok_or_fail_with_codes_and_locations(client):
    assert client.validate_state_machine_definition(definition=PASS_ONE) | {"ResponseMetadata": None} == {"result": "OK", "diagnostics": [], "ResponseMetadata": None}
    broken = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}, "B": {"Type": "Pass", "Bogus": 1, "End": True}}})
    answer = client.validate_state_machine_definition(definition=broken)
    assert answer["result"] == "FAIL"
    found = {(item["code"], item.get("location")) for item in answer["diagnostics"]}
    assert ("MISSING_TRANSITION_TARGET", "/States/A/Next") in found
    assert ("MISSING_TRANSITION_TARGET", "/States/B") in found  # unreachable
    assert ("SCHEMA_VALIDATION_FAILED", "/States/B/Bogus") in found
    assert all(item["severity"] == "ERROR" and item["message"] for item in answer["diagnostics"])
    assert client.validate_state_machine_definition(definition="{")["diagnostics"][0]["code"] == "INVALID_JSON_DESCRIPTION"


def test_versions_aliases_and_tags_outlive_a_restart(tmp_path: Path):
    journal = tmp_path / "journal.sqlite"
    with Engine(journal, {}) as engine:
        arn, version = engine.create_state_machine_published("Flow", PASS_ONE, ROLE, tags={"team": "a"}, publish=True)
        alias, _ = engine.create_state_machine_alias("live", [{"stateMachineVersionArn": version, "weight": 100}])
    with Engine(journal, {}) as engine:
        assert engine.list_state_machine_versions(arn)[0]["stateMachineVersionArn"] == version
        assert engine.describe_state_machine_alias(alias)["routingConfiguration"][0]["stateMachineVersionArn"] == version
        assert engine.list_tags_for_resource(arn) == [{"key": "team", "value": "a"}]
        execution = engine.start_execution(alias)
        assert engine.wait_for_execution(execution, 10)["stateMachineVersionArn"] == version
