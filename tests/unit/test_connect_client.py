"""Kafka Connect REST client: requests it sends and how it maps Connect's answers onto named errors."""

import json
import socket
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lambdas.connect.client import ConnectClient
from lambdas.connect.errors import ConnectorConfigInvalid, ConnectorNotFound, ConnectRequestRejected
from lambdas.errors import ConnectUnavailable


PASSWORD = "Sup3r-secret"


class FakeConnect(BaseHTTPRequestHandler):
    """Answers every request with the server's next canned (status, body) and records the request."""

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append((self.command, self.path, json.loads(body) if body else None))
        status, payload = self.server.answers.pop(0)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def connect():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeConnect)
    server.answers, server.requests = [], []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(connect):
    with ConnectClient(f"http://127.0.0.1:{connect.server_address[1]}/") as client:
        yield client


def test_put_config_sends_the_config_to_the_connector_path(connect, client):
    connect.answers.append((201, {"name": "cdcflow-x-source", "config": {}, "tasks": [], "type": "source"}))

    info = client.put_config("cdcflow-x-source", {"tasks.max": "1"})

    assert info["name"] == "cdcflow-x-source"
    assert connect.requests == [("PUT", "/connectors/cdcflow-x-source/config", {"tasks.max": "1"})]


def test_connector_names_are_quoted_as_one_path_segment(connect, client):
    connect.answers.append((200, {"connector": {"state": "RUNNING"}, "tasks": []}))
    client.get_status("a/b c")
    assert connect.requests[0][1] == "/connectors/a%2Fb%20c/status"


def test_restart_asks_for_failed_tasks_by_default(connect, client):
    connect.answers.append((202, {}))
    client.restart("c")
    assert connect.requests[0][:2] == ("POST", "/connectors/c/restart?includeTasks=true&onlyFailed=true")


@pytest.mark.parametrize("status", [409, 500, 503])
def test_rebalance_and_server_errors_are_transient(connect, client, status):
    connect.answers.append((status, {"error_code": status, "message": "Request cannot be completed because a rebalance is expected"}))
    with pytest.raises(ConnectUnavailable, match=str(status)):
        client.list_connectors()


def test_validation_error_carries_connects_message_without_the_password(connect, client):
    message = (
        "Connector configuration is invalid and contains the following 1 error(s):\n"
        f"Invalid value {PASSWORD} for configuration database.password: must not echo\n"
        f"Unable to connect using database.password={PASSWORD}"
    )
    connect.answers.append((400, {"error_code": 400, "message": message}))

    with pytest.raises(ConnectorConfigInvalid) as caught:
        client.put_config("c", {"database.password": PASSWORD, "database.user": "u"})

    assert "Connector configuration is invalid" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(caught.value)


def test_validation_error_masks_password_shaped_settings_it_was_not_told_about(connect, client):
    connect.answers.append((400, {"error_code": 400, "message": 'bad "connection.password": "other-secret" here'}))
    with pytest.raises(ConnectorConfigInvalid) as caught:
        client.put_config("c", {"tasks.max": "1"})
    assert "other-secret" not in str(caught.value)


def test_a_secret_reference_the_worker_cannot_resolve_is_a_config_error_not_an_outage(connect, client):
    unresolvable = "secret dw/writer does not exist in Secrets Manager: the secret reference cannot be resolved"
    connect.answers.append((500, {"error_code": 500, "message": unresolvable}))
    with pytest.raises(ConnectorConfigInvalid, match="secret dw/writer does not exist"):
        client.put_config("c", {"connection.password": "${secretsmanager:dw/writer:password}"})

    # Throttled or a server error: the provider leaves the marker out, and the put is retried as an outage.
    connect.answers.append((500, {"error_code": 500, "message": "secret dw/writer could not be read (HTTP 503)"}))
    with pytest.raises(ConnectUnavailable):
        client.put_config("c", {"connection.password": "${secretsmanager:dw/writer:password}"})


def test_missing_connector_status_is_not_found(connect, client):
    connect.answers.append((404, {"error_code": 404, "message": "No status found for connector c"}))
    with pytest.raises(ConnectorNotFound, match="No status found"):
        client.get_status("c")


def test_missing_connector_is_an_answer_for_get_config_and_delete(connect, client):
    connect.answers += [(404, {"error_code": 404, "message": "Connector c not found"})] * 2
    assert client.get_config("c") is None
    assert client.delete("c") is False


def test_other_client_errors_are_rejections(connect, client):
    connect.answers.append((405, {"error_code": 405, "message": "HTTP 405 Method Not Allowed"}))
    with pytest.raises(ConnectRequestRejected, match="405"):
        client.pause("c")


def test_a_non_json_error_body_is_reported_as_text(connect, client):
    connect.answers.append((502, b"<html>Bad Gateway</html>"))
    with pytest.raises(ConnectUnavailable, match="Bad Gateway"):
        client.plugins()


def test_unreachable_connect_is_unavailable_quickly():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectUnavailable, match=f"127.0.0.1:{port}"):
        ConnectClient(f"http://127.0.0.1:{port}").list_connectors()


def test_a_failed_put_prints_no_password_in_its_traceback():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectUnavailable) as caught:
        ConnectClient(f"http://127.0.0.1:{port}").put_config("c", {"database.password": PASSWORD})
    printed = "".join(traceback.format_exception(caught.value))
    assert "did not answer PUT /connectors/c/config" in printed
    assert PASSWORD not in printed
