"""The OpenSearch sink client, against a small HTTP server that answers as OpenSearch's document and index APIs do."""

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
from lambdas.opensearch import SinkUnavailable, delete_indices, document_with_id_exists, existing_indices, shown_url


class FakeOpenSearch:
    """Holds indices -> document ids; `status`, when set, is the answer to everything. Keeps what it was asked."""

    def __init__(self) -> None:
        self.indices: dict[str, set[str]] = {}
        self.status: int | None = None
        self.requests: list[dict[str, Any]] = []


@pytest.fixture
def opensearch() -> Iterator[tuple[str, FakeOpenSearch]]:
    fake = FakeOpenSearch()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, payload: dict[str, Any] | None = None) -> None:
            body = json.dumps(payload or {}).encode() if self.command != "HEAD" else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            fake.requests.append({"method": self.command, "path": self.path, "authorization": self.headers["Authorization"]})
            if fake.status is not None:
                return self._answer(fake.status, {"error": "no"})
            parts = self.path.split("?")[0].strip("/").split("/")
            index = parts[0]
            if self.command == "GET" and len(parts) == 3 and parts[1] == "_doc":
                if index not in fake.indices:
                    return self._answer(404, {"error": {"type": "index_not_found_exception"}})
                found = parts[2] in fake.indices[index]
                return self._answer(200 if found else 404, {"_id": parts[2], "found": found})
            if self.command == "HEAD":
                return self._answer(200 if index in fake.indices else 404)
            if self.command == "DELETE":
                if fake.indices.pop(index, None) is None:
                    return self._answer(404, {"error": {"type": "index_not_found_exception"}})
                return self._answer(200, {"acknowledged": True})
            return self._answer(400)

        do_GET = do_HEAD = do_DELETE = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", fake
    finally:
        server.shutdown()
        server.server_close()


def test_the_canary_is_found_by_its_document_id(opensearch) -> None:
    url, fake = opensearch
    fake.indices["cdcflow.orders.public.heartbeat"] = {"canary-abc"}

    assert document_with_id_exists(url, "cdcflow.orders.public.heartbeat", "canary-abc") is True
    (request,) = fake.requests
    assert request["path"] == "/cdcflow.orders.public.heartbeat/_doc/canary-abc?_source=false"
    assert request["authorization"] is None


def test_no_document_yet_and_no_index_yet_both_mean_not_yet(opensearch) -> None:
    url, fake = opensearch
    assert document_with_id_exists(url, "heartbeats", "canary-abc") is False
    fake.indices["heartbeats"] = {"canary-other"}
    assert document_with_id_exists(url, "heartbeats", "canary-abc") is False


def test_the_login_goes_as_basic_auth(opensearch) -> None:
    url, fake = opensearch
    document_with_id_exists(url, "heartbeats", "canary-abc", DatabaseLogin("sink_user", "s3cret-pw"))

    scheme, encoded = fake.requests[0]["authorization"].split()
    assert (scheme, base64.b64decode(encoded).decode()) == ("Basic", "sink_user:s3cret-pw")


def test_an_error_answer_is_named_without_the_password(opensearch) -> None:
    url, fake = opensearch
    fake.status = 401

    with pytest.raises(SinkUnavailable, match="answered 401 to a lookup of document canary-abc in index heartbeats") as raised:
        document_with_id_exists(url, "heartbeats", "canary-abc", DatabaseLogin("sink_user", "s3cret-pw"))
    assert "s3cret-pw" not in str(raised.value)


def test_an_unreachable_sink_is_named_without_credentials_in_its_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the call: nothing listens there

    with pytest.raises(SinkUnavailable, match=f"OpenSearch at http://127.0.0.1:{port} did not answer") as raised:
        document_with_id_exists(f"http://admin:hunter2@127.0.0.1:{port}", "heartbeats", "canary-abc")
    assert "hunter2" not in str(raised.value)
    assert shown_url("https://u:p@search.internal:9200/") == "https://search.internal:9200"


def test_indices_are_listed_and_deleted_idempotently(opensearch) -> None:
    url, fake = opensearch
    fake.indices = {"a": set(), "b": set()}

    assert existing_indices(url, ["a", "b", "c"]) == {"a", "b"}
    assert delete_indices(url, ["a", "c"]) == ["a"]
    assert delete_indices(url, ["a", "c"]) == []
    assert existing_indices(url, ["a", "b"]) == {"b"}


def test_a_refused_delete_is_an_error(opensearch) -> None:
    url, fake = opensearch
    fake.status = 403
    with pytest.raises(SinkUnavailable, match="answered 403 when asked to delete index a"):
        delete_indices(url, ["a"])
