"""The OpenSearch canary lookup, against a small HTTP server that answers as OpenSearch's count API does."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from lambdas.connect.credentials import DatabaseLogin
from lambdas.opensearch import SinkUnavailable, document_with_id_exists


class CountApi:
    """Answers POST /<index>/_count with `status` and {"count": count}; keeps what it was asked."""

    def __init__(self) -> None:
        self.status, self.count = 200, 0
        self.requests: list[dict[str, Any]] = []


@pytest.fixture
def count_api() -> Iterator[tuple[str, CountApi]]:
    api = CountApi()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            api.requests.append({"path": self.path, "body": body, "authorization": self.headers["Authorization"]})
            payload = json.dumps({"count": api.count} if api.status == 200 else {"error": "no"}).encode()
            self.send_response(api.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", api
    finally:
        server.shutdown()
        server.server_close()


def test_a_counted_document_means_the_canary_arrived(count_api) -> None:
    url, api = count_api
    api.count = 1

    assert document_with_id_exists(url, "cdcflow.orders.public.heartbeat", "canary-abc") is True
    (request,) = api.requests
    assert request["path"] == "/cdcflow.orders.public.heartbeat/_count"
    terms = [clause["term"] for clause in request["body"]["query"]["bool"]["should"]]
    assert terms == [{"id": "canary-abc"}, {"id.keyword": "canary-abc"}]
    assert request["authorization"] is None


def test_no_document_yet_and_no_index_yet_both_mean_not_yet(count_api) -> None:
    url, api = count_api
    assert document_with_id_exists(url, "heartbeats", "canary-abc") is False
    api.status = 404
    assert document_with_id_exists(url, "heartbeats", "canary-abc") is False


def test_the_login_goes_as_basic_auth(count_api) -> None:
    url, api = count_api
    document_with_id_exists(url, "heartbeats", "canary-abc", DatabaseLogin("sink_user", "s3cret-pw"))

    scheme, encoded = api.requests[0]["authorization"].split()
    assert (scheme, base64.b64decode(encoded).decode()) == ("Basic", "sink_user:s3cret-pw")


def test_an_error_answer_is_named_without_the_password(count_api) -> None:
    url, api = count_api
    api.status = 401

    with pytest.raises(SinkUnavailable, match="answered 401 to a count on index heartbeats") as raised:
        document_with_id_exists(url, "heartbeats", "canary-abc", DatabaseLogin("sink_user", "s3cret-pw"))
    assert "s3cret-pw" not in str(raised.value)


def test_an_unreachable_sink_is_named() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the call: nothing listens there

    with pytest.raises(SinkUnavailable, match=f"OpenSearch at http://127.0.0.1:{port} did not answer"):
        document_with_id_exists(f"http://127.0.0.1:{port}", "heartbeats", "canary-abc")
