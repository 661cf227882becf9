"""The local API server: HTTP requests become API Gateway REST proxy events, proxy responses become HTTP.

Requests are signed as the local admin (`factories.api_auth`); what an unsigned or wrongly
signed request gets is in test_api_server_auth.py.
"""

import base64
import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from cdcflow.api_server import MAX_BODY_BYTES, api_url, match_resource, serve_api
from tests.unit.factories import api_auth, credential_store

pytestmark = pytest.mark.unit

AUTH = api_auth()


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

    server = serve_api(0, handler=handler, credentials=credential_store())
    yield api_url(server)
    server.shutdown()
    server.server_close()


def test_a_request_becomes_a_rest_proxy_event(echo_server, recorded_events):
    response = requests.post(f"{echo_server}/pipelines/orders/approval?verbose=1&tag=a&tag=b",
                             data=b'{"approved": true}', headers={"Content-Type": "application/json",
                                                                   "X-Trace": "t1"}, auth=AUTH, timeout=10)

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
        requests.get(f"{echo_server}/pipelines", auth=AUTH, timeout=10)

    ids = {event["requestContext"]["requestId"] for event, _ in recorded_events}
    assert len(ids) == 2


def test_a_request_without_query_or_body_has_nulls_as_api_gateway_sends(echo_server, recorded_events):
    requests.get(f"{echo_server}/pipelines", auth=AUTH, timeout=10)

    event, _ = recorded_events[0]
    assert event["resource"] == "/pipelines"
    assert event["pathParameters"] is None
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["body"] is None


def test_the_path_and_parameters_are_decoded(echo_server, recorded_events):
    requests.delete(f"{echo_server}/pipelines/ord%20ers?keep_topics=tr%75e", auth=AUTH, timeout=10)

    event, _ = recorded_events[0]
    assert event["path"] == "/pipelines/ord ers"
    assert event["pathParameters"] == {"id": "ord ers"}
    assert event["queryStringParameters"] == {"keep_topics": "true"}


def test_a_binary_body_is_passed_base64_encoded(echo_server, recorded_events):
    requests.post(f"{echo_server}/pipelines", data=b"\xff\xfe\x00", headers={"Content-Type": "application/json"},
                  auth=AUTH, timeout=10)

    event, _ = recorded_events[0]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe\x00"


def test_the_proxy_response_becomes_the_http_response(echo_server):
    response = requests.get(f"{echo_server}/anything/else", auth=AUTH, timeout=10)

    assert response.status_code == 201
    assert response.json() == {"path": "/anything/else"}
    assert response.headers["X-Request"] == "echo"
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]

    binary = requests.get(f"{echo_server}/binary", auth=AUTH, timeout=10)
    assert binary.content == b"\x00\xff"


def test_a_handler_that_raises_is_a_502_without_its_details(echo_server):
    response = requests.get(f"{echo_server}/crash", auth=AUTH, timeout=10)

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

    server = serve_api(0, handler=handler, credentials=credential_store())
    try:
        with ThreadPoolExecutor(8) as clients:
            answers = list(clients.map(lambda _: requests.get(f"{api_url(server)}/pipelines", auth=AUTH, timeout=10),
                                       range(8)))
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


def _raw_request(url: str, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"") -> tuple[int, dict, str]:
    """One request with exactly these headers (requests would fix up a bad Content-Length)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders(body or None)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


@pytest.mark.parametrize("content_length", ["-1", "abc", "1.5", "+2", " ", "0x10"])
def test_an_invalid_content_length_is_a_400_and_the_handler_never_runs(echo_server, recorded_events, content_length):
    status, headers, text = _raw_request(echo_server, "POST", "/pipelines/orders/approval", [
        ("Content-Type", "application/json"), ("Content-Length", content_length),
    ], b'{"approved": true}')

    assert status == 400
    assert "Content-Length" in json.loads(text)["message"]
    assert headers["Connection"] == "close"
    assert recorded_events == []


def test_two_different_content_lengths_are_a_400(echo_server, recorded_events):
    status, _, _ = _raw_request(echo_server, "POST", "/pipelines", [
        ("Content-Type", "application/json"), ("Content-Length", "2"), ("Content-Length", "3"),
    ], b"{}")

    assert status == 400
    assert recorded_events == []


def test_a_body_over_the_limit_is_a_413_without_reading_it(echo_server, recorded_events):
    status, headers, text = _raw_request(echo_server, "POST", "/pipelines", [
        ("Content-Type", "application/json"), ("Content-Length", str(MAX_BODY_BYTES + 1)),
    ])

    assert status == 413
    assert str(MAX_BODY_BYTES) in json.loads(text)["message"]
    assert headers["Connection"] == "close"
    assert recorded_events == []


def test_a_body_at_the_limit_is_read(echo_server, recorded_events):
    body = b'{"pad": "' + b"x" * (MAX_BODY_BYTES - 11) + b'"}'
    assert len(body) == MAX_BODY_BYTES
    response = requests.post(f"{echo_server}/pipelines", data=body, headers={"Content-Type": "application/json"},
                             auth=AUTH, timeout=30)

    assert response.status_code == 201
    assert len(recorded_events[0][0]["body"]) == MAX_BODY_BYTES


def test_a_chunked_body_is_refused(echo_server, recorded_events):
    response = requests.post(f"{echo_server}/pipelines", data=iter([b'{"approved": ', b"true}"]),
                             headers={"Content-Type": "application/json"}, timeout=10)

    assert response.status_code == 411
    assert recorded_events == []


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/jsonp"])
def test_a_body_not_sent_as_json_is_a_415(echo_server, recorded_events, content_type):
    # What a web page can send cross-origin without a CORS preflight ("simple" requests).
    headers = [("Content-Length", "18")] + ([("Content-Type", content_type)] if content_type else [])
    status, _, text = _raw_request(echo_server, "POST", "/pipelines/orders/approval", headers, b'{"approved": true}')

    assert status == 415
    assert "application/json" in json.loads(text)["message"]
    assert recorded_events == []


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_a_json_body_is_passed_on(echo_server, recorded_events, content_type):
    response = requests.post(f"{echo_server}/pipelines/orders/approval", data=b'{"approved": true}',
                             headers={"Content-Type": content_type}, auth=AUTH, timeout=10)

    assert response.status_code == 201
    assert recorded_events[0][0]["body"] == '{"approved": true}'


def test_requests_without_a_body_need_no_content_type(echo_server, recorded_events):
    assert requests.delete(f"{echo_server}/pipelines/orders", auth=AUTH, timeout=10).status_code == 201
    empty_post = requests.Request("POST", f"{echo_server}/pipelines", headers={"Content-Length": "0"}).prepare()
    signature = AUTH(empty_post).headers
    status, _, _ = _raw_request(echo_server, "POST", "/pipelines", [
        ("Content-Length", "0"), ("Authorization", signature["Authorization"]), ("X-Amz-Date", signature["X-Amz-Date"]),
    ])

    assert status == 201
    assert len(recorded_events) == 2
