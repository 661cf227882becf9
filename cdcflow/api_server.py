"""The pipelines API on one machine: a local HTTP server in front of the API Lambda handler.

Each HTTP request becomes the event API Gateway's REST proxy integration
would send (`httpMethod`, `path`, `resource`, `pathParameters`, query string
and header maps, `body`, `isBase64Encoded`, `requestContext`), the handler
runs in-process, and its proxy response becomes the HTTP response. The local
API and the deployed one therefore run the same code.

Every method is IAM-authorized, as on API Gateway: a request must be signed
with SigV4 by a local user (`cdcflow.local.credentials`); `cdcflow.iam_auth`
checks the signature before the handler runs and refuses the others with API
Gateway's 403s. The handler gets the caller in `requestContext.identity`, as
API Gateway fills it for IAM authorization.

Requests are read and answered concurrently, but the handler runs for one at
a time, as in one Lambda execution environment: its module state (the
Powertools resolver's current event, the logger's keys, the metrics buffer)
is built on that guarantee, and concurrent calls would mix them up.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from cdcflow import console
from cdcflow.iam_auth import Authorized, authorize
from cdcflow.local.credentials import CredentialStore
from statemachines.catalogue import LOCAL_ACCOUNT, by_key, import_handler, local_function_arn
from lambdas.api import RESOURCE_METHODS

DEFAULT_PORT = 8700
STAGE = "local"
RESOURCES = tuple(RESOURCE_METHODS)
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalLambdaContext:
    """The attributes of Lambda's context object that Powertools reads."""

    aws_request_id: str
    function_name: str = by_key("Api").function_name
    function_version: str = "$LATEST"
    invoked_function_arn: str = local_function_arn(by_key("Api"))
    memory_limit_in_mb: int = by_key("Api").memory_mb
    log_group_name: str = f"/aws/lambda/{by_key('Api').function_name}"
    log_stream_name: str = "local"
    deadline_ms: int = field(default_factory=lambda: int(time.time() * 1000) + by_key("Api").timeout_seconds * 1000)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


def _resource_patterns(resources: tuple[str, ...]) -> list[tuple[str, re.Pattern[str]]]:
    patterns = []
    for resource in resources:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(resource))
        patterns.append((resource, re.compile(f"^{regex}$")))
    return patterns


_PATTERNS = _resource_patterns(RESOURCES)


def match_resource(path: str) -> tuple[str, dict[str, str] | None]:
    """The API Gateway resource template for `path` and its path parameters.

    A path matching no resource is passed through as its own resource, so the
    handler answers it (with a 404).
    """
    for resource, pattern in _PATTERNS:
        match = pattern.match(path)
        if match:
            return resource, match.groupdict() or None
    return path, None


def _multi_value_map(pairs: list[tuple[str, str]]) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    """API Gateway's two views of repeated keys: the last value, and all values."""
    if not pairs:
        return None, None
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        single[key] = value
        multi.setdefault(key, []).append(value)
    return single, multi


def to_proxy_event(
    method: str,
    raw_target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    source_ip: str = "127.0.0.1",
    request_id: str | None = None,
    identity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the REST API proxy event API Gateway would send for one HTTP request.

    `raw_target` is the request line's target (path and query, still
    percent-encoded); the event's `path` and parameters are decoded, as API
    Gateway's are. A body that is not UTF-8 text is passed base64-encoded.
    `identity` is the verified caller's `requestContext.identity`
    (`cdcflow.iam_auth.Authorized.identity`); without it the event carries
    only the source IP and user agent, as for a method without authorization.
    """
    target = urlsplit(raw_target)
    path = unquote(target.path) or "/"
    resource, path_parameters = match_resource(path)
    query, multi_query = _multi_value_map(parse_qsl(target.query, keep_blank_values=True))
    header_map, multi_headers = _multi_value_map(headers)
    try:
        body_text: str | None = body.decode("utf-8") if body else None
        is_base64 = False
    except UnicodeDecodeError:
        body_text, is_base64 = base64.b64encode(body).decode("ascii"), True
    request_id = request_id or str(uuid.uuid4())
    now = time.time()
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": header_map,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "body": body_text,
        "isBase64Encoded": is_base64,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT,
            "apiId": "local",
            "resourceId": resource,
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "stage": STAGE,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "protocol": "HTTP/1.1",
            "domainName": "127.0.0.1",
            "identity": {
                **(identity or {}),
                "sourceIp": source_ip,
                "userAgent": _user_agent(header_map),
            },
        },
    }


def _user_agent(header_map: Mapping[str, str] | None) -> str | None:
    for name, value in (header_map or {}).items():
        if name.lower() == "user-agent":
            return value
    return None


@dataclass(frozen=True)
class BodyRefused:
    """Why a request's body is not read: the HTTP status and the message answered."""

    status: HTTPStatus
    message: str


def refuse_body(
    content_lengths: list[str], transfer_encodings: list[str], content_type: str | None
) -> int | BodyRefused:
    """The body's length in bytes, or why the request is refused before its body is read.

    A Content-Length must be one non-negative decimal number (400), at most
    `MAX_BODY_BYTES` (413); chunked bodies are not read (411). A non-empty
    body must be sent as `application/json` (415): a web page can send
    `text/plain` or form bodies to 127.0.0.1 without a CORS preflight, and
    must not be able to provision or approve that way.
    """
    if transfer_encodings:
        return BodyRefused(HTTPStatus.LENGTH_REQUIRED, "Transfer-Encoding is not supported: send a Content-Length")
    if not content_lengths:
        return 0
    values = {value.strip() for value in content_lengths}
    if len(values) != 1 or not (value := values.pop()).isdigit() or not value.isascii():
        return BodyRefused(HTTPStatus.BAD_REQUEST,
                           f"Content-Length must be one non-negative integer, got {', '.join(content_lengths)!r}")
    length = int(value)
    if length > MAX_BODY_BYTES:
        return BodyRefused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"Request Too Long: the body is {length} bytes, the limit is {MAX_BODY_BYTES}")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if length and media_type != "application/json":
        return BodyRefused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                           f"Content-Type must be application/json, got {content_type or 'none'!r}")
    return length


def _response_parts(response: Mapping[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body bytes of a Lambda proxy response."""
    status = int(response.get("statusCode", 200))
    headers = [(name, str(value)) for name, value in (response.get("headers") or {}).items()]
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers += [(name, str(value)) for value in values if (name, str(value)) not in headers]
    body = response.get("body") or ""
    payload = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode("utf-8")
    return status, headers, payload


def _request_handler_class(handler: LambdaHandler, credentials: CredentialStore) -> type[BaseHTTPRequestHandler]:
    one_invocation_at_a_time = threading.Lock()

    class ProxyRequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # One send per response and no Nagle: headers and body written apart, the body
        # waited for the client's delayed ACK of the headers (about 40 ms per request).
        wbufsize = -1
        disable_nagle_algorithm = True

        def _proxy(self) -> None:
            if console.serves(self.path):
                # The console's pages, and its calls to this API signed as the local user it was told to be.
                self._send_raw(*console.respond(self, credentials))
                return
            refusal = refuse_body(self.headers.get_all("Content-Length") or [],
                                  self.headers.get_all("Transfer-Encoding") or [], self.headers.get("Content-Type"))
            if isinstance(refusal, BodyRefused):
                # The body is left unread, so the connection cannot carry another request.
                self.close_connection = True
                self._send(refusal.status, [], {"message": refusal.message})
                return
            length = refusal
            body = self.rfile.read(length) if length else b""
            headers = list(self.headers.items())
            verdict = authorize(self.command, self.path, headers, body, credentials)
            if not isinstance(verdict, Authorized):
                self._send(verdict.status, [("x-amzn-ErrorType", verdict.error_type)], {"message": verdict.message})
                return
            source_ip = self.client_address[0]
            identity = verdict.identity(source_ip=source_ip, user_agent=self.headers.get("User-Agent"))
            event = to_proxy_event(self.command, self.path, headers, body, source_ip=source_ip, identity=identity)
            request_id = event["requestContext"]["requestId"]
            try:
                with one_invocation_at_a_time:
                    response = handler(event, LocalLambdaContext(aws_request_id=request_id))
                status, headers, payload = _response_parts(response)
            except Exception:
                # What API Gateway answers when the integration fails; the details stay in the log.
                log.exception("API handler failed (request %s)", request_id)
                self._send(HTTPStatus.BAD_GATEWAY, [], {"message": "Internal server error", "request_id": request_id})
                return
            self._send_raw(status, headers, payload)

        def _send(self, status: int, headers: list[tuple[str, str]], document: dict[str, Any]) -> None:
            self._send_raw(status, [*headers, ("Content-Type", "application/json")], json.dumps(document).encode())

        def _send_raw(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def __getattr__(self, name: str) -> Any:
            # Every HTTP method reaches the handler (which answers 405 where a resource lacks it),
            # not http.server's 501 for methods it has no do_<METHOD> for.
            if name.startswith("do_"):
                return self._proxy
            raise AttributeError(name)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            log.info("%s %s", self.address_string(), format % args)

    return ProxyRequestHandler


class _ApiHttpServer(ThreadingHTTPServer):
    # socketserver's default backlog of 5 resets connections when a burst of clients arrives at once.
    request_queue_size = 128


def serve_api(
    port: int = DEFAULT_PORT,
    env: Mapping[str, str] | None = None,
    *,
    credentials: CredentialStore,
    handler: LambdaHandler | None = None,
    host: str = "127.0.0.1",
) -> ThreadingHTTPServer:
    """Serve the API handler on `host:port` from a background thread and return the server.

    Only requests signed (SigV4, service `execute-api`) with a key of
    `credentials` reach the handler; the others get API Gateway's 403.

    `env` is applied to this process's environment first: it is how the
    handler finds the registry table, the state machine ARNs and the local
    endpoints (`AWS_ENDPOINT_URL_SFN`, `AWS_ENDPOINT_URL_DYNAMODB`), exactly as
    the Lambda function's environment does on AWS. Port 0 picks a free port
    (`server.server_address[1]`). Stop with `server.shutdown()`; does not block.
    """
    if env:
        os.environ.update(env)
    server = _ApiHttpServer(
        (host, port), _request_handler_class(handler or import_handler(by_key("Api").handler), credentials),
    )
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"cdcflow-api-{server.server_address[1]}", daemon=True).start()
    return server


def api_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"
