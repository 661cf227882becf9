"""The local API server: HTTP requests become API Gateway REST proxy events, proxy responses become HTTP."""

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from cdcflow.api_server import api_url, match_resource, serve_api

pytestmark = pytest.mark.unit


@pytest.fixture
def recorded_events():
    return []


@pytest.fixture
def echo_server(recorded_events):
    """A real server on an ephemeral port whose handler records each event and answers with it."""

    def handler(event, context):
        recorded_events.append((event, context))
        if event["path"] == "/binary":
            return {"statusCode": 200, "headers": {"Content-Type": "application/octet-stream"},
                    "body": base64.b64encode(b"\x00\xff").decode(), "isBase64Encoded": True}
        if event["path"] == "/crash":
            raise RuntimeError("database password is hunter2")
        return {"statusCode": 201, "headers": {"Content-Type": "application/json", "X-Request": "echo"},
                "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]}, "body": json.dumps({"path": event["path"]})}

    server = serve_api(0, handler=handler)
    yield api_url(server)
    server.shutdown()
    server.server_close()


def test_a_request_becomes_a_rest_proxy_event(echo_server, recorded_events):
    response = requests.post(f"{echo_server}/pipelines/orders/approval?verbose=1&tag=a&tag=b",
                             data=b'{"approved": true}', headers={"Content-Type": "application/json",
                                                                   "X-Trace": "t1"}, timeout=10)

    assert response.status_code == 201
    event, context = recorded_events[0]
    assert event["httpMethod"] == "POST"
    assert event["path"] == "/pipelines/orders/approval"
    assert event["resource"] == "/pipelines/{id}/approval"
    assert event["pathParameters"] == {"id": "orders"}
    assert event["queryStringParameters"] == {"verbose": "1", "tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"verbose": ["1"], "tag": ["a", "b"]}
    assert event["headers"]["X-Trace"] == "t1"
    assert event["multiValueHeaders"]["X-Trace"] == ["t1"]
    assert event["body"] == '{"approved": true}'
    assert event["isBase64Encoded"] is False
    request_context = event["requestContext"]
    assert request_context["stage"] == "local"
    assert request_context["resourcePath"] == "/pipelines/{id}/approval"
    assert request_context["httpMethod"] == "POST"
    assert request_context["requestId"] == context.aws_request_id
    assert context.function_name == "cdcflow-api"
    assert 0 < context.get_remaining_time_in_millis() <= 29_000


def test_each_request_gets_its_own_request_id(echo_server, recorded_events):
    for _ in range(2):
        requests.get(f"{echo_server}/pipelines", timeout=10)

    ids = {event["requestContext"]["requestId"] for event, _ in recorded_events}
    assert len(ids) == 2


def test_a_request_without_query_or_body_has_nulls_as_api_gateway_sends(echo_server, recorded_events):
    requests.get(f"{echo_server}/pipelines", timeout=10)

    event, _ = recorded_events[0]
    assert event["resource"] == "/pipelines"
    assert event["pathParameters"] is None
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["body"] is None


def test_the_path_and_parameters_are_decoded(echo_server, recorded_events):
    requests.delete(f"{echo_server}/pipelines/ord%20ers?keep_topics=tr%75e", timeout=10)

    event, _ = recorded_events[0]
    assert event["path"] == "/pipelines/ord ers"
    assert event["pathParameters"] == {"id": "ord ers"}
    assert event["queryStringParameters"] == {"keep_topics": "true"}


def test_a_binary_body_is_passed_base64_encoded(echo_server, recorded_events):
    requests.post(f"{echo_server}/pipelines", data=b"\xff\xfe\x00", timeout=10)

    event, _ = recorded_events[0]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe\x00"


def test_the_proxy_response_becomes_the_http_response(echo_server):
    response = requests.get(f"{echo_server}/anything/else", timeout=10)

    assert response.status_code == 201
    assert response.json() == {"path": "/anything/else"}
    assert response.headers["X-Request"] == "echo"
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]

    binary = requests.get(f"{echo_server}/binary", timeout=10)
    assert binary.content == b"\x00\xff"


def test_a_handler_that_raises_is_a_502_without_its_details(echo_server):
    response = requests.get(f"{echo_server}/crash", timeout=10)

    assert response.status_code == 502
    assert response.json()["message"] == "Internal server error"
    assert "hunter2" not in response.text
    assert response.json()["request_id"]


def test_concurrent_requests_are_answered_together_but_handled_one_at_a_time():
    # As in one Lambda execution environment: Powertools keeps the current
    # event, logger keys and metrics in module state that relies on it.
    lock = threading.Lock()
    running, most_at_once = 0, 0

    def handler(event, context):
        nonlocal running, most_at_once
        with lock:
            running += 1
            most_at_once = max(most_at_once, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return {"statusCode": 200, "body": event["requestContext"]["requestId"]}

    server = serve_api(0, handler=handler)
    try:
        with ThreadPoolExecutor(8) as clients:
            answers = list(clients.map(lambda _: requests.get(f"{api_url(server)}/pipelines", timeout=10), range(8)))
    finally:
        server.shutdown()
        server.server_close()

    assert [answer.status_code for answer in answers] == [200] * 8
    assert len({answer.text for answer in answers}) == 8
    assert most_at_once == 1


def test_paths_outside_the_routes_are_their_own_resource():
    assert match_resource("/pipelines/orders") == ("/pipelines/{id}", {"id": "orders"})
    assert match_resource("/pipelines/orders/extra") == ("/pipelines/orders/extra", None)
    assert match_resource("/") == ("/", None)
