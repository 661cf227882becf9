"""The console's routes: HTML pages, static files, and the signing proxy to the pipelines and Step Functions APIs.

`respond(handler, credentials)` answers one request for a path under
`/console` and returns `(status, headers, body)`; the API server sends it.
It never runs the API handler itself: API calls go over HTTP to the API
(this same server unless `CDCFLOW_CONSOLE_API_URL` names another), signed as
the chosen local user, so they are authorized exactly as the CLI's are.
"""

from __future__ import annotations

import html
import json
import logging
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import boto3
import requests
from botocore.exceptions import BotoCoreError, ClientError

from cdcflow.api_client import ExecuteApiAuth
from cdcflow.console.executions import execution_view, redacted_for
from cdcflow.console.forms import request_form
from cdcflow.history import full_history, stepfunctions_client
from cdcflow.local.credentials import PROFILES, CredentialStore, LocalCredential
from lambdas.pipeline_request import schema as pipeline_request_schema

PREFIX = "/console"
PROFILE_COOKIE = "cdcflow_console_profile"
# Sent by the console's own scripts; a cross-origin page cannot send it without a CORS preflight, never allowed here.
CONSOLE_HEADER = "X-Cdcflow-Console"
MAX_BODY_BYTES = 1024 * 1024
REGION = "us-east-1"
HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
STATIC_DIR = HERE / "static"
TEMPLATES_DIR = HERE / "templates"
# JavaScript libraries installed from npm by the project's package.json (scripts/bootstrap runs npm ci).
VENDOR_FILES = {"dagre.min.js": REPO_ROOT / "node_modules" / "@dagrejs" / "dagre" / "dist" / "dagre.min.js"}
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".png": "image/png", ".svg": "image/svg+xml"}
PAGES = {
    "pipelines": "Pipelines",
    "pipeline": "Pipeline",
    "execution": "Execution",
    "approvals": "Approvals",
    "request": "Request a pipeline",
}
APPROVAL_STATE = "RequestApproval"

Response = tuple[int, list[tuple[str, str]], bytes]
log = logging.getLogger(__name__)


def serves(target: str) -> bool:
    """Whether a request target (path and query) is the console's."""
    path = urlsplit(target).path
    return path == PREFIX or path.startswith(PREFIX + "/")


def _json(status: int, document: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps(document, default=_json_default).encode()
    return status, [*(headers or []), ("Content-Type", "application/json"), ("Cache-Control", "no-store")], body


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _message(status: int, message: str) -> Response:
    return _json(status, {"message": message})


class _Sessions:
    """One boto3 session per local user's key, built once: a session is slow to build and safe to share."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[boto3.Session, Any]] = {}

    def get(self, credential: LocalCredential) -> tuple[boto3.Session, Any]:
        """The session signing as `credential`, and its Step Functions client (`AWS_ENDPOINT_URL_SFN` or AWS)."""
        key = f"{credential.access_key_id}:{hash(credential.secret_access_key)}"
        with self._lock:
            if key not in self._sessions:
                session = boto3.Session(aws_access_key_id=credential.access_key_id,
                                        aws_secret_access_key=credential.secret_access_key,
                                        region_name=os.environ.get("AWS_DEFAULT_REGION", REGION))
                self._sessions[key] = (session, stepfunctions_client(os.environ.get("AWS_ENDPOINT_URL_SFN"), session))
            return self._sessions[key]


_SESSIONS = _Sessions()
_HTTP = threading.local()


def _http() -> requests.Session:
    if not hasattr(_HTTP, "session"):
        _HTTP.session = requests.Session()
    return _HTTP.session


class _Request:
    """What the console needs of one HTTP request."""

    def __init__(self, handler: Any, credentials: CredentialStore) -> None:
        self.method: str = handler.command
        target = urlsplit(handler.path)
        self.path = unquote(target.path)
        self.raw_query = target.query
        self.query = {name: values[-1] for name, values in parse_qs(target.query).items()}
        self.headers = handler.headers
        self.handler = handler
        host, port = handler.server.server_address[:2]
        self.server_port = port
        self.server_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.users = _local_users(credentials)
        self.profile = self._profile_from_cookie()

    def _profile_from_cookie(self) -> str | None:
        cookie = SimpleCookie()
        try:
            cookie.load(self.headers.get("Cookie") or "")
        except CookieError:
            return None
        morsel = cookie.get(PROFILE_COOKIE)
        return morsel.value if morsel is not None and morsel.value in self.users else None

    @property
    def credential(self) -> LocalCredential | None:
        return self.users.get(self.profile) if self.profile else None

    def host_is_ours(self) -> bool:
        """The Host header names this server by a loopback name or its own address (no DNS rebinding)."""
        host = (self.headers.get("Host") or "").strip().lower()
        allowed = {f"{name}:{self.server_port}" for name in ("127.0.0.1", "localhost", "[::1]", self.server_host)}
        return host in allowed

    def from_console(self) -> bool:
        return self.headers.get(CONSOLE_HEADER) == "1"

    def body(self) -> bytes | None:
        """The request's body, or None when its length is missing, malformed or over the limit."""
        length = self.headers.get("Content-Length") or "0"
        if not length.isdigit() or int(length) > MAX_BODY_BYTES or self.headers.get("Transfer-Encoding"):
            return None
        return self.handler.rfile.read(int(length)) if int(length) else b""

    @property
    def api_url(self) -> str:
        return os.environ.get("CDCFLOW_CONSOLE_API_URL") or f"http://{self.server_host}:{self.server_port}"


def _local_users(credentials: CredentialStore) -> dict[str, LocalCredential]:
    return credentials.by_profile()


def respond(handler: Any, credentials: CredentialStore) -> Response:
    """Answer one console request (`handler` is the API server's `BaseHTTPRequestHandler`)."""
    request = _Request(handler, credentials)
    if not request.host_is_ours():
        handler.close_connection = True
        return _message(HTTPStatus.MISDIRECTED_REQUEST, f"the console answers only requests addressed to "
                                                        f"127.0.0.1:{request.server_port} or localhost")
    try:
        return _route(request)
    except Exception:
        log.exception("console request %s %s failed", request.method, request.path)
        return _message(HTTPStatus.BAD_GATEWAY, "the console failed to answer; the API server's log has the details")


def _route(request: _Request) -> Response:
    path, method = request.path, request.method
    if path in (PREFIX, PREFIX + "/"):
        return HTTPStatus.FOUND, [("Location", f"{PREFIX}/pipelines")], b""
    if path.startswith(PREFIX + "/static/") and method in ("GET", "HEAD"):
        return _static(path.removeprefix(PREFIX + "/static/"))
    parts = path.removeprefix(PREFIX + "/").split("/")
    if method in ("GET", "HEAD") and parts[0] in ("pipelines", "executions", "approvals", "request") \
            and not path.endswith("/"):
        if parts == ["pipelines"]:
            return _page(request, "pipelines")
        if parts[0] == "pipelines" and len(parts) == 2:
            return _page(request, "pipeline", pipeline_id=parts[1], actions=",".join(offered_actions()))
        if parts == ["executions"]:
            return _page(request, "execution", pipeline_id=request.query.get("pipeline", ""),
                         execution_arn=request.query.get("arn", ""))
        if parts == ["approvals"]:
            return _page(request, "approvals")
        if parts == ["request"]:
            teams = list(PROFILES.get(request.profile or "", ((), ()))[0])
            return _page(request, "request", raw={"form": request_form(pipeline_request_schema(), teams)})
    if parts[0] in ("api", "data", "session"):
        if not request.from_console():
            return _message(HTTPStatus.FORBIDDEN, f"console calls must carry the {CONSOLE_HEADER} header")
        if parts == ["session"]:
            return _session(request)
        if request.credential is None:
            return _message(HTTPStatus.UNAUTHORIZED, "choose which local user you are first (the menu at the top)")
        if parts[0] == "api":
            return _forward(request, "/" + "/".join(parts[1:]))
        if parts == ["data", "execution"] and method == "GET":
            return _execution(request)
        if parts == ["data", "approvals"] and method == "GET":
            return _approvals(request)
    return _message(HTTPStatus.NOT_FOUND, f"the console has no {method} {path}")


# Pages and files.

def _static(name: str) -> Response:
    if name.startswith("vendor/"):
        file = VENDOR_FILES.get(name.removeprefix("vendor/"))
        if file is None or not file.is_file():
            return _message(HTTPStatus.NOT_FOUND,
                            f"no vendored file {name!r}: run scripts/bootstrap (npm ci installs it)")
    else:
        file = (STATIC_DIR / name).resolve()
        if not file.is_relative_to(STATIC_DIR) or not file.is_file():
            return _message(HTTPStatus.NOT_FOUND, f"no console file {name!r}")
    content_type = CONTENT_TYPES.get(file.suffix, "application/octet-stream")
    return HTTPStatus.OK, [("Content-Type", content_type), ("Cache-Control", "no-cache")], file.read_bytes()


def _template(name: str) -> Template:
    return Template((TEMPLATES_DIR / name).read_text(encoding="utf-8"))


def profile_options(users: Mapping[str, LocalCredential], chosen: str | None) -> str:
    """The `<option>`s of the user menu: each local user with its teams and roles."""
    options = [f'<option value=""{" selected" if chosen is None else ""}>choose a local user</option>']
    for profile in users:
        teams, roles = PROFILES.get(profile, ((), ()))
        label = profile + (f" ({', '.join([*teams, *roles])})" if teams or roles else "")
        selected = " selected" if profile == chosen else ""
        options.append(f'<option value="{html.escape(profile)}"{selected}>{html.escape(label)}</option>')
    return "".join(options)


def offered_actions(routes: Mapping[str, tuple[str, ...]] | None = None) -> list[str]:
    """The pipeline actions beyond pause, resume and teardown that the API routes: `update` (PATCH
    /pipelines/{id}) and `resync` (POST /pipelines/{id}/resync); the page offers only these."""
    if routes is None:
        from lambdas.api import RESOURCE_METHODS as routes  # the API this server runs
    offered = []
    if "PATCH" in routes.get("/pipelines/{id}", ()):
        offered.append("update")
    if "POST" in routes.get("/pipelines/{id}/resync", ()):
        offered.append("resync")
    return offered


def _page(request: _Request, page: str, raw: Mapping[str, str] | None = None, **context: str) -> Response:
    """A page of the console; `context` is escaped into the page and its scripts, `raw` is HTML built here."""
    body = _template(f"{page}.html").safe_substitute(
        {**{key: html.escape(value) for key, value in context.items()}, **(raw or {})})
    navigation = "".join(
        f'<a href="{PREFIX}/{target}"{" aria-current=page" if target == page + "s" or target == page else ""}>'
        f"{label}</a>"
        for target, label in (("pipelines", "Pipelines"), ("request", "Request"), ("approvals", "Approvals"))
    )
    title = PAGES[page] + (f" {context['pipeline_id']}" if context.get("pipeline_id") else "")
    document = _template("layout.html").substitute(
        title=html.escape(title),
        page=page,
        navigation=navigation,
        profile_options=profile_options(request.users, request.profile),
        context=html.escape(json.dumps(context)),
        body=body,
        scripts="".join(f'<script src="{PREFIX}/static/{script}"></script>' for script in _scripts(page)),
    )
    return HTTPStatus.OK, [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"),
                           ("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'"),
                           ("X-Frame-Options", "DENY")], document.encode()


def _scripts(page: str) -> list[str]:
    return ["vendor/dagre.min.js", "console.js", "graph.js", "execution.js"] if page == "execution" \
        else ["console.js", f"{page}.js"]


# The chosen local user.

def _session(request: _Request) -> Response:
    if request.method == "GET":
        users = [{"profile": profile, "teams": list(PROFILES.get(profile, ((), ()))[0]),
                  "roles": list(PROFILES.get(profile, ((), ()))[1])} for profile in request.users]
        return _json(HTTPStatus.OK, {"profile": request.profile, "users": users})
    if request.method != "POST":
        return _message(HTTPStatus.METHOD_NOT_ALLOWED, "GET or POST /console/session")
    body = request.body()
    try:
        profile = json.loads(body or b"{}").get("profile")
    except (ValueError, AttributeError):
        return _message(HTTPStatus.BAD_REQUEST, 'send {"profile": "<a local user>"}')
    if profile not in request.users:
        return _message(HTTPStatus.BAD_REQUEST, f"{profile!r} is not a profile of the local credentials file")
    cookie = f"{PROFILE_COOKIE}={profile}; Path={PREFIX}; SameSite=Strict; HttpOnly"
    return _json(HTTPStatus.OK, {"profile": profile}, [("Set-Cookie", cookie)])


# Calls to the pipelines API, signed as the chosen local user.

def _call_api(request: _Request, method: str, path: str, *, query: str = "",
              body: bytes | None = None) -> requests.Response:
    assert request.credential is not None
    session, _ = _SESSIONS.get(request.credential)
    url = request.api_url.rstrip("/") + path + (f"?{query}" if query else "")
    headers = {"Content-Type": "application/json"} if body else {}
    prepared = requests.Request(method, url, data=body or None, headers=headers).prepare()
    ExecuteApiAuth(session)(prepared)
    return _http().send(prepared, timeout=30)


def _forward(request: _Request, path: str) -> Response:
    body = request.body()
    if body is None:
        return _message(HTTPStatus.BAD_REQUEST, f"send a Content-Length of at most {MAX_BODY_BYTES} bytes")
    try:
        answer = _call_api(request, request.method, path, query=request.raw_query, body=body)
    except requests.RequestException as error:
        return _message(HTTPStatus.BAD_GATEWAY, f"cannot reach the pipelines API at {request.api_url}: "
                                                f"{type(error).__name__}")
    content_type = answer.headers.get("Content-Type", "application/json")
    return answer.status_code, [("Content-Type", content_type), ("Cache-Control", "no-store")], answer.content


def _api_json(request: _Request, path: str, query: str = "") -> tuple[int, Any]:
    answer = _call_api(request, "GET", path, query=query)
    try:
        return answer.status_code, answer.json()
    except ValueError:
        return answer.status_code, {"message": answer.text[:500]}


# Step Functions: an execution of a pipeline the caller may describe.

def _execution(request: _Request) -> Response:
    pipeline_id, arn = request.query.get("pipeline"), request.query.get("arn")
    if not pipeline_id or not arn:
        return _message(HTTPStatus.BAD_REQUEST, "name the pipeline (?pipeline=) and the execution (&arn=)")
    status, pipeline = _api_json(request, f"/pipelines/{quote(pipeline_id, safe='')}")
    if status != HTTPStatus.OK:
        return _json(status, pipeline)
    assert request.credential is not None
    _, stepfunctions = _SESSIONS.get(request.credential)
    try:
        execution = stepfunctions.describe_execution(executionArn=arn)
        # The pipeline's own executions (provision, teardown, pause, resume) all carry its spec as input.
        known = arn in (pipeline.get("execution_arn"), pipeline.get("teardown_execution_arn"),
                        pipeline.get("lifecycle_execution_arn"))
        if not known and _input_pipeline(execution.get("input")) != pipeline_id:
            return _message(HTTPStatus.FORBIDDEN, f"{arn} is not an execution of pipeline {pipeline_id!r}")
        machine = stepfunctions.describe_state_machine_for_execution(executionArn=arn)
        events = full_history(stepfunctions, arn)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code == "ExecutionDoesNotExist":
            return _message(HTTPStatus.NOT_FOUND, f"execution {arn} has not started (or no longer exists)")
        return _message(HTTPStatus.BAD_GATEWAY, f"Step Functions answered {code} for {arn}")
    except BotoCoreError as error:
        return _message(HTTPStatus.BAD_GATEWAY, f"cannot reach Step Functions: {type(error).__name__}")
    view = execution_view(execution, json.loads(machine["definition"]), events)
    return _json(HTTPStatus.OK, redacted_for(view, execution.get("input"), _sees_connections(request, pipeline)))


def _sees_connections(request: _Request, pipeline: Mapping[str, Any]) -> bool:
    """Whether the API shows this caller the pipeline's source connection in full (host, secret name: an admin)
    rather than as its teams' view; without a connection to ask about, no."""
    name = (pipeline.get("spec") or {}).get("source", {}).get("connection")
    if not name:
        return False
    status, connection = _api_json(request, f"/connections/{quote(name, safe='')}")
    return status == HTTPStatus.OK and isinstance(connection, dict) and "host" in connection


def _input_pipeline(execution_input: str | None) -> str | None:
    try:
        document = json.loads(execution_input or "{}")
    except ValueError:
        return None
    spec = document.get("spec") if isinstance(document, dict) else None
    return spec.get("pipeline_id") if isinstance(spec, dict) else None


# Approvals: the pipelines waiting for a person's decision.

def _approvals(request: _Request) -> Response:
    waiting, token = [], None
    while True:
        query = "status=PROVISIONING&limit=100" + (f"&next_token={quote(token, safe='')}" if token else "")
        status, page = _api_json(request, "/pipelines", query)
        if status != HTTPStatus.OK:
            return _json(status, page)
        waiting += [summary for summary in page["pipelines"] if summary.get("current_step") == APPROVAL_STATE]
        token = page.get("next_token")
        if not token:
            break
    assert request.credential is not None
    _, stepfunctions = _SESSIONS.get(request.credential)
    approvals = []
    for summary in waiting:
        pipeline_id = summary["pipeline_id"]
        status, pipeline = _api_json(request, f"/pipelines/{quote(pipeline_id, safe='')}")
        if status != HTTPStatus.OK:
            continue
        source = pipeline.get("spec", {}).get("source", {})
        approval = {"pipeline_id": pipeline_id, "owner": pipeline.get("owner"),
                    "requested_by": pipeline.get("requested_by"), "source_connection": source.get("connection"),
                    "execution_arn": pipeline.get("execution_arn"), "waiting_since": None, "deadline": None,
                    "rds_instance_id": None}
        if source.get("connection"):
            # Callers whose teams may not use the connection see its name alone.
            status, connection = _api_json(request, f"/connections/{quote(source['connection'], safe='')}")
            if status == HTTPStatus.OK:
                approval["rds_instance_id"] = connection.get("rds_instance_id") or (
                    connection.get("document") or {}).get("rds_instance_id")
        try:
            machine = stepfunctions.describe_state_machine_for_execution(executionArn=pipeline["execution_arn"])
            timeout = json.loads(machine["definition"])["States"][APPROVAL_STATE].get("TimeoutSeconds")
            events = full_history(stepfunctions, pipeline["execution_arn"])
        except (ClientError, BotoCoreError, KeyError):
            approvals.append(approval)
            continue
        entered = [event for event in events if event["type"] == "TaskStateEntered"
                   and event.get("stateEnteredEventDetails", {}).get("name") == APPROVAL_STATE]
        if entered:
            since: datetime = entered[-1]["timestamp"]
            approval["waiting_since"] = since.isoformat()
            if timeout:
                approval["deadline"] = datetime.fromtimestamp(since.timestamp() + timeout, UTC).isoformat()
        approvals.append(approval)
    return _json(HTTPStatus.OK, {"approvals": approvals, "now": datetime.now(UTC).isoformat()})
