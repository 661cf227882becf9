"""The console's request form, rendered from the pipeline request's JSON Schema, and what a team sees of an execution."""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import pytest
import requests

from cdcflow.api_server import api_url, serve_api
from cdcflow.console.executions import HIDDEN, redacted_for
from cdcflow.console.forms import CONNECTION_KINDS, field_paths, request_form
from cdcflow.console.server import CONSOLE_HEADER, PROFILE_COOKIE
from cdcflow.local.credentials import ADMIN_PROFILE, CredentialStore, new_credential
from lambdas.pipeline_request import schema
from lambdas.spec import spec_document
from tests.unit.factories import CONNECTIONS, request_spec, resolved_spec

pytestmark = pytest.mark.unit

REQUESTER = "cdcflow-orders-requester"


def test_every_property_of_the_schema_is_a_field_named_as_the_api_names_it():
    form = request_form(schema(), ["team-orders"])
    paths = field_paths(schema())
    assert {"pipeline_id", "owner", "source.connection", "source.tables", "cluster", "kafka.partitions",
            "sink.connection", "sink.schema", "debezium.snapshot_mode"} <= set(paths)
    for path in paths:
        assert f'data-field="{path}"' in form, path
        assert f'data-error-for="{path}"' in form, path
    assert set(re.findall(r'data-field="([^"]+)"', form)) == set(paths)


def test_a_field_is_the_control_its_schema_asks_for():
    form = request_form(schema(), ["team-orders", "team-shared"])
    for path, kind in CONNECTION_KINDS.items():
        assert re.search(rf'<select [^>]*data-field="{re.escape(path)}"[^>]*data-kind="{kind}"', form), path
    assert re.search(r'<textarea [^>]*data-field="source.tables"[^>]*data-type="list"', form)
    partitions = re.search(r'<input [^>]*data-field="kafka.partitions"[^>]*>', form).group(0)
    assert 'type="number"' in partitions and 'min="1"' in partitions and 'max="1000"' in partitions
    snapshot = re.search(r'<select [^>]*data-field="debezium.snapshot_mode".*?</select>', form).group(0)
    assert snapshot.count("<option") == 1 + len(schema()["properties"]["debezium"]["properties"]["snapshot_mode"]["enum"])
    assert "(default: backfill)" in snapshot
    owner = re.search(r'<input [^>]*data-field="owner"[^>]*>', form).group(0)
    assert 'value="team-orders"' in owner and '<option value="team-shared">' in form
    # The required fields are marked, the optional sections folded; nothing is checked before the API does.
    assert re.search(r'<label for="field-pipeline_id">Pipeline id <span class="required">', form)
    assert '<details class="optional" data-for="kafka">' in form
    assert " pattern=" not in form and " required" not in form.replace('class="required"', "")


@pytest.fixture
def stand_in_api():
    """A console whose API answers as it would a team's caller and an admin."""
    def api(event: dict[str, Any], context: Any) -> dict[str, Any]:
        admin = event["requestContext"]["identity"]["userArn"].endswith(ADMIN_PROFILE)
        source = next(connection for connection in CONNECTIONS if connection["kind"] == "source")
        if event["path"].startswith("/connections/"):
            body = source if admin else {key: source[key] for key in ("name", "kind") if key in source}
        else:
            body = {"pipeline_id": "orders", "execution_arn": EXECUTION["arn"],
                    "spec": {"source": {"connection": source["name"]}}}
        return {"statusCode": 200, "body": json.dumps(body)}

    server = serve_api(0, credentials=CredentialStore([new_credential(REQUESTER), new_credential(ADMIN_PROFILE)]),
                       handler=api)
    try:
        yield api_url(server)
    finally:
        server.shutdown()


EXECUTION: dict[str, str] = {}


def test_the_request_page_renders_the_form_on_the_server(stand_in_api):
    page = requests.get(f"{stand_in_api}/console/request", headers={"Cookie": f"{PROFILE_COOKIE}={REQUESTER}"},
                        timeout=10)
    assert page.status_code == 200
    assert 'data-field="source.tables"' in page.text and 'value="team-orders"' in page.text
    assert '<form id="request-form" class="panel schema-form" novalidate>' in page.text
    assert '/console/static/request.js' in page.text


def test_a_teams_caller_sees_no_host_or_secret_name_of_the_execution_and_an_admin_does(moto, monkeypatch,
                                                                                       stand_in_api):
    monkeypatch.delenv("AWS_ENDPOINT_URL_SFN", raising=False)
    spec = spec_document(resolved_spec(request_spec()))
    host, secret, brokers = spec["source"]["host"], spec["source"]["admin_secret"], spec["kafka"]["bootstrap_servers"]
    stepfunctions = boto3.client("stepfunctions")
    machine = stepfunctions.create_state_machine(
        name="ProvisionPipeline", roleArn="arn:aws:iam::123456789012:role/states",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}))["stateMachineArn"]
    EXECUTION["arn"] = stepfunctions.start_execution(stateMachineArn=machine, name="orders-a",
                                                     input=json.dumps({"spec": spec}))["executionArn"]

    def shown(profile: str) -> str:
        answer = requests.get(f"{stand_in_api}/console/data/execution", params={"pipeline": "orders",
                              "arn": EXECUTION["arn"]}, headers={CONSOLE_HEADER: "1",
                              "Cookie": f"{PROFILE_COOKIE}={profile}"}, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.text

    view = {"execution": {"arn": EXECUTION["arn"], "cause": f"could not connect to {host}:5432"},
            "states": {"CreateSlot": {"input": {"spec": spec}, "output": {"spec": spec, "slot": "cdcflow_orders"}},
                       "PutSourceConnector": {"output": {"config": {"database.hostname": host,
                                                                    "bootstrap.servers": brokers}}}},
            "events": [{"details": {"cause": f"secret {secret} not found"}}]}
    # moto records an execution without running it: the page's view is given the states a run would have.
    monkeypatch.setattr("cdcflow.console.server.execution_view", lambda *args: view)
    assert secret not in shown(REQUESTER) and f"{host}:5432" not in shown(REQUESTER)
    assert json.loads(shown(ADMIN_PROFILE)) == view

    team = redacted_for(view, json.dumps({"spec": spec}), sees_connections=False)
    text = json.dumps(team)
    for value in (f"{host}:5432", secret, brokers, spec["connect"]["url"]):
        assert value not in text, value
    assert f'"{host}"' not in text
    assert team["states"]["CreateSlot"]["input"]["spec"]["source"] == {"connection": spec["source"]["connection"],
                                                                       "tables": spec["source"]["tables"]}
    assert team["states"]["CreateSlot"]["output"]["slot"] == "cdcflow_orders"
    assert team["states"]["PutSourceConnector"]["output"]["config"]["database.hostname"] == HIDDEN
    assert team["execution"]["cause"] == f"could not connect to {HIDDEN}"
    assert redacted_for(view, json.dumps({"spec": spec}), sees_connections=True) == view


def test_update_and_resync_are_offered_only_where_the_api_routes_them():
    from cdcflow.console.server import offered_actions

    assert offered_actions({"/pipelines/{id}": ("GET", "DELETE")}) == []
    assert offered_actions({"/pipelines/{id}": ("GET", "PATCH", "DELETE")}) == ["update"]
    assert offered_actions({"/pipelines/{id}": ("GET", "PATCH"), "/pipelines/{id}/resync": ("POST",)}) == \
        ["update", "resync"]


def test_the_pipeline_page_names_the_actions_the_api_routes(stand_in_api):
    from cdcflow.console.server import offered_actions

    page = requests.get(f"{stand_in_api}/console/pipelines/orders", timeout=10)
    context = json.loads(re.search(r'data-context="([^"]*)"', page.text).group(1).replace("&quot;", '"'))
    assert context["actions"] == ",".join(offered_actions())
