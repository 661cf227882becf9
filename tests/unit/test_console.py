"""The console's server side: who may use its signing proxy, what it forwards, and how it reads an execution.

The API server runs with a stand-in handler that answers with the identity
API Gateway would pass it, so these tests see exactly what the console signed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests

from cdcflow.api_server import api_url, serve_api
from cdcflow.console.executions import CAUGHT, FAILED, IN_PROGRESS, NOT_REACHED, SUCCEEDED, edges, execution_view
from cdcflow.console.server import CONSOLE_HEADER, PROFILE_COOKIE
from cdcflow.local.credentials import CredentialStore, new_credential

pytestmark = pytest.mark.unit

REQUESTER = "cdcflow-orders-requester"
APPROVER = "cdcflow-orders-approver"


def _echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    seen = {"path": event["path"], "method": event["httpMethod"], "query": event["queryStringParameters"],
            "body": event["body"], "user": event["requestContext"]["identity"]["userArn"]}
    return {"statusCode": 403 if event["path"] == "/refused" else 200,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"message": "refused by the API"} if event["path"] == "/refused" else seen)}


@pytest.fixture
def console():
    users = [new_credential(REQUESTER), new_credential(APPROVER)]
    server = serve_api(0, credentials=CredentialStore(users), handler=_echo)
    try:
        yield api_url(server)
    finally:
        server.shutdown()


def _as(profile: str | None = REQUESTER, **headers: str) -> dict[str, str]:
    chosen = {"Cookie": f"{PROFILE_COOKIE}={profile}"} if profile else {}
    return {CONSOLE_HEADER: "1", **chosen, **headers}


def test_a_page_offers_the_local_users_and_loads_nothing_from_elsewhere(console):
    page = requests.get(f"{console}/console/pipelines", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert f'<option value="{REQUESTER}">{REQUESTER} (team-orders, requester)</option>' in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert "http://" not in page.text and "https://" not in page.text


def test_the_console_root_leads_to_the_pipelines(console):
    answer = requests.get(f"{console}/console", allow_redirects=False, timeout=10)
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/pipelines"


def test_choosing_a_user_sets_a_strict_cookie_and_only_for_known_users(console):
    chosen = requests.post(f"{console}/console/session", json={"profile": APPROVER}, headers=_as(None), timeout=10)
    assert chosen.status_code == 200
    cookie = chosen.headers["Set-Cookie"]
    assert cookie.startswith(f"{PROFILE_COOKIE}={APPROVER};")
    assert "SameSite=Strict" in cookie and "HttpOnly" in cookie and "Path=/console" in cookie
    unknown = requests.post(f"{console}/console/session", json={"profile": "cdcflow-admin"}, headers=_as(None),
                            timeout=10)
    assert unknown.status_code == 400
    assert "cdcflow-admin" in unknown.json()["message"]


def test_an_api_call_is_forwarded_signed_as_the_chosen_user(console):
    answer = requests.get(f"{console}/console/api/pipelines?status=ACTIVE&owner=team-orders", headers=_as(),
                          timeout=10)
    assert answer.status_code == 200, answer.text
    seen = answer.json()
    assert seen["user"] == f"arn:aws:iam::000000000000:user/{REQUESTER}"
    assert seen["path"] == "/pipelines" and seen["query"] == {"status": "ACTIVE", "owner": "team-orders"}

    approved = requests.post(f"{console}/console/api/pipelines/p1/approval", json={"approved": True},
                             headers=_as(APPROVER), timeout=10)
    assert approved.json()["user"].endswith(f"user/{APPROVER}")
    assert approved.json()["method"] == "POST" and json.loads(approved.json()["body"]) == {"approved": True}


def test_the_api_refusal_reaches_the_page_unchanged(console):
    answer = requests.get(f"{console}/console/api/refused", headers=_as(), timeout=10)
    assert answer.status_code == 403
    assert answer.json() == {"message": "refused by the API"}


def test_without_the_console_header_nothing_is_signed(console):
    # What a form or a simple fetch from another web page can send: the cookie, but not the header.
    answer = requests.post(f"{console}/console/api/pipelines/p1/approval", data='{"approved": true}',
                           headers={"Cookie": f"{PROFILE_COOKIE}={REQUESTER}", "Content-Type": "text/plain"},
                           timeout=10)
    assert answer.status_code == 403
    assert CONSOLE_HEADER in answer.json()["message"]


@pytest.mark.parametrize("profile", [None, "someone-else"])
def test_without_a_known_user_nothing_is_signed(console, profile):
    answer = requests.get(f"{console}/console/api/pipelines", headers=_as(profile), timeout=10)
    assert answer.status_code == 401
    assert "choose which local user" in answer.json()["message"]


def test_a_request_for_another_host_name_is_refused(console):
    # A DNS-rebound name reaches 127.0.0.1 with its own Host header.
    answer = requests.get(f"{console}/console/api/pipelines", headers=_as(Host="attacker.example:80"), timeout=10)
    assert answer.status_code == 421


def test_static_files_stay_in_their_folder(console):
    assert requests.get(f"{console}/console/static/console.js", timeout=10).status_code == 200
    assert requests.get(f"{console}/console/static/%2e%2e/server.py", timeout=10).status_code == 404
    dagre = requests.get(f"{console}/console/static/vendor/dagre.min.js", timeout=10)
    assert dagre.status_code == 200 and "dagre" in dagre.text[:200]


def test_the_api_itself_still_refuses_unsigned_requests(console):
    assert requests.get(f"{console}/pipelines", timeout=10).status_code == 403


# Reading an execution.

DEFINITION = {
    "StartAt": "CreateSlot",
    "States": {
        "CreateSlot": {"Type": "Task", "Resource": "arn", "Next": "Ready?",
                       "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "DropSlot"}]},
        "Ready?": {"Type": "Choice", "Choices": [{"Variable": "$.ok", "BooleanEquals": True, "Next": "Done"}],
                   "Default": "CreateSlot"},
        "Done": {"Type": "Succeed"},
        "DropSlot": {"Type": "Task", "Resource": "arn", "Next": "Failed",
                     "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}]},
        "Failed": {"Type": "Fail"},
    },
}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _events(*specs: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    events = []
    for index, (kind, details) in enumerate(specs, start=1):
        event: dict[str, Any] = {"id": index, "type": kind, "timestamp": T0 + timedelta(seconds=index)}
        if kind.endswith("StateEntered"):
            event["stateEnteredEventDetails"] = details
        elif kind.endswith("StateExited"):
            event["stateExitedEventDetails"] = details
        elif details:
            event[f"{kind[0].lower()}{kind[1:]}EventDetails"] = details
        events.append(event)
    return events


def test_edges_follow_next_choices_default_and_catch_once_each():
    found = {(edge["from"], edge["to"], edge["kind"]) for edge in edges(DEFINITION)}
    assert found == {("CreateSlot", "Ready?", "next"), ("CreateSlot", "DropSlot", "catch"),
                     ("Ready?", "Done", "choice"), ("Ready?", "CreateSlot", "default"),
                     ("DropSlot", "Failed", "next")}


def test_a_caught_failure_the_compensation_and_the_fail_state_are_told_apart():
    events = _events(
        ("ExecutionStarted", {}),
        ("TaskStateEntered", {"name": "CreateSlot", "input": '{"spec": {"pipeline_id": "p"}}'}),
        ("TaskScheduled", {}),
        ("TaskFailed", {"error": "SlotBlocked", "cause": '{"errorMessage": "a long transaction holds it"}'}),
        ("TaskStateExited", {"name": "CreateSlot", "output": '{"errors": {"CreateSlot": {}}}'}),
        ("TaskStateEntered", {"name": "DropSlot", "input": "{}"}),
        ("TaskScheduled", {}),
        ("TaskSucceeded", {}),
        ("TaskStateExited", {"name": "DropSlot", "output": '{"dropped": true}'}),
        ("FailStateEntered", {"name": "Failed", "input": "{}"}),
        ("ExecutionFailed", {"error": "SlotBlocked", "cause": "a long transaction holds it"}),
    )
    view = execution_view({"executionArn": "arn:x", "status": "FAILED"}, DEFINITION, events)
    states = view["states"]
    assert states["CreateSlot"]["status"] == CAUGHT
    assert states["CreateSlot"]["error"] == "SlotBlocked"
    assert states["CreateSlot"]["cause"] == "a long transaction holds it"
    assert states["CreateSlot"]["input"] == {"spec": {"pipeline_id": "p"}}
    assert states["DropSlot"]["status"] == SUCCEEDED and states["DropSlot"]["output"] == {"dropped": True}
    assert states["Failed"]["status"] == FAILED
    assert states["Ready?"]["status"] == NOT_REACHED and states["Done"]["status"] == NOT_REACHED
    assert view["path"] == [{"from": "CreateSlot", "to": "DropSlot"}, {"from": "DropSlot", "to": "Failed"}]
    assert view["execution"]["error"] == "SlotBlocked"
    # The table keeps errors and drops bulky input and output.
    failed = next(row for row in view["events"] if row["type"] == "TaskFailed")
    assert failed["state"] == "CreateSlot" and failed["details"]["cause"] == "a long transaction holds it"
    assert all("input" not in row["details"] and "output" not in row["details"] for row in view["events"])


def test_a_retried_task_that_succeeded_is_green_and_a_running_one_blue():
    events = _events(
        ("ExecutionStarted", {}),
        ("TaskStateEntered", {"name": "CreateSlot", "input": "{}"}),
        ("TaskScheduled", {}),
        ("TaskFailed", {"error": "DatabaseUnavailable"}),
        ("TaskScheduled", {}),
        ("TaskSucceeded", {}),
        ("TaskStateExited", {"name": "CreateSlot", "output": "{}"}),
        ("ChoiceStateEntered", {"name": "Ready?", "input": "{}"}),
        ("ChoiceStateExited", {"name": "Ready?", "output": "{}"}),
        ("TaskStateEntered", {"name": "CreateSlot", "input": '{"again": true}'}),
        ("TaskScheduled", {}),
    )
    view = execution_view({"executionArn": "arn:x", "status": "RUNNING"}, DEFINITION, events)
    slot = view["states"]["CreateSlot"]
    assert slot["status"] == IN_PROGRESS and slot["visits"] == 2 and slot["input"] == {"again": True}
    assert view["states"]["Ready?"]["status"] == SUCCEEDED
    assert {"from": "Ready?", "to": "CreateSlot"} in view["path"]


def test_the_execution_page_reads_only_the_executions_of_a_pipeline_the_user_may_describe(moto, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_SFN", raising=False)
    stepfunctions = boto3.client("stepfunctions")
    machine = stepfunctions.create_state_machine(
        name="ProvisionPipeline", definition=json.dumps(DEFINITION),
        roleArn="arn:aws:iam::123456789012:role/states")["stateMachineArn"]

    def start(name: str, pipeline_id: str) -> str:
        return stepfunctions.start_execution(stateMachineArn=machine, name=name,
                                             input=json.dumps({"spec": {"pipeline_id": pipeline_id}}))["executionArn"]

    provision, pause, other = start("p1-a", "p1"), start("p1-pause-b", "p1"), start("p2-a", "p2")

    def api(event: dict[str, Any], context: Any) -> dict[str, Any]:
        # The API as the console's user sees it: pipeline p1, provisioned by `provision`.
        assert event["path"] == "/pipelines/p1"
        return {"statusCode": 200, "body": json.dumps({"pipeline_id": "p1", "execution_arn": provision})}

    server = serve_api(0, credentials=CredentialStore([new_credential(REQUESTER)]), handler=api)
    try:
        def execution(arn: str) -> requests.Response:
            return requests.get(f"{api_url(server)}/console/data/execution",
                                params={"pipeline": "p1", "arn": arn}, headers=_as(), timeout=30)

        shown = execution(provision)
        assert shown.status_code == 200, shown.text
        assert shown.json()["execution"]["arn"] == provision
        assert set(DEFINITION["States"]) <= set(shown.json()["states"])
        assert execution(pause).status_code == 200  # its input is p1's spec
        refused = execution(other)
        assert refused.status_code == 403
        assert other in refused.json()["message"] and "'p1'" in refused.json()["message"]
    finally:
        server.shutdown()
