"""The Step Functions API over HTTP, for boto3 and the AWS CLI with `--endpoint-url`.

AWS JSON 1.0 protocol: every call is a POST with `X-Amz-Target:
AWSStepFunctions.<Operation>` and a JSON body; answers are JSON with
timestamps as epoch seconds; errors are HTTP 400 with
`{"__type": "com.amazonaws.states#<Code>", "message": ...}`, which
botocore turns into `client.exceptions.<Code>`.

StartSyncExecution and TestState are served too, but botocore prefixes
the endpoint's host with `sync-` for them: give clients
`Config(inject_host_prefix=False)` (or `AWS_DISABLE_HOST_PREFIX_INJECTION=true`,
or the `disable_host_prefix_injection` profile setting for the AWS CLI).
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from localsfn.diagnostics import diagnostics
from localsfn.engine import DEFAULT_ROLE_ARN, Engine
from localsfn.errors import DefinitionInvalid, ServiceError
from localsfn.test_state import run_test_state

DEFAULT_PORT = 8600  # cdcflow's engine port; not 8083, which is Kafka Connect's
_TARGET_PREFIX = "AWSStepFunctions."
_DEFAULT_PAGE = 100
_MAX_PAGE = 1000


class _HttpServer(ThreadingHTTPServer):
    # socketserver's default backlog of 5 resets connections when a burst of clients arrives at once.
    request_queue_size = 128


class LocalServer:
    """A running API server; `endpoint_url` is what clients pass as `--endpoint-url`."""

    def __init__(self, engine: Engine, host: str, port: int) -> None:
        self.engine = engine
        self._httpd = _HttpServer((host, port), _handler_class(engine))
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self.endpoint_url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="localsfn-api", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop answering requests (the engine stays open). Idempotent."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def serve(engine: Engine, host: str = "127.0.0.1", port: int = 0) -> LocalServer:
    """Serve the Step Functions API for `engine` on host:port (0 picks a free port); returns at once."""
    return LocalServer(engine, host, port)


# ---------------------------------------------------------------------- operations


def _operations(engine: Engine) -> dict[str, Callable[[dict], dict]]:
    def create_state_machine(request: dict) -> dict:
        arn, version = engine.create_state_machine_published(
            _required(request, "name"), _required(request, "definition"), request.get("roleArn") or DEFAULT_ROLE_ARN,
            request.get("type") or "STANDARD", _tags(request.get("tags") or []), bool(request.get("publish")), request.get("versionDescription"),
        )
        answer = {"stateMachineArn": arn, "creationDate": engine.describe_state_machine(arn)["creationDate"]}
        if version:
            answer["stateMachineVersionArn"] = version
        return answer

    def update_state_machine(request: dict) -> dict:
        updated, revision, version = engine.update_state_machine_published(
            _required(request, "stateMachineArn"), request.get("definition"), request.get("roleArn"),
            bool(request.get("publish")), request.get("versionDescription"),
        )
        answer = {"updateDate": updated, "revisionId": revision}
        if version:
            answer["stateMachineVersionArn"] = version
        return answer

    def publish_state_machine_version(request: dict) -> dict:
        version, created = engine.publish_state_machine_version(_required(request, "stateMachineArn"), request.get("revisionId"), request.get("description"))
        return {"stateMachineVersionArn": version, "creationDate": created}

    def create_state_machine_alias(request: dict) -> dict:
        arn, created = engine.create_state_machine_alias(_required(request, "name"), _required(request, "routingConfiguration"), request.get("description"))
        return {"stateMachineAliasArn": arn, "creationDate": created}

    def update_state_machine_alias(request: dict) -> dict:
        updated = engine.update_state_machine_alias(_required(request, "stateMachineAliasArn"), request.get("routingConfiguration"), request.get("description"))
        return {"updateDate": updated}

    def validate_definition(request: dict) -> dict:
        problems = engine.validate_state_machine_definition(_required(request, "definition"), request.get("type") or "STANDARD")
        return diagnostics(problems, request.get("severity") or "ERROR", request.get("maxResults"))

    def redrive_execution(request: dict) -> dict:
        return {"redriveDate": engine.redrive_execution(_required(request, "executionArn"))}

    def start_sync_execution(request: dict) -> dict:
        return engine.start_sync_execution(_required(request, "stateMachineArn"), request.get("input", "{}"), request.get("name"))

    def test_state(request: dict) -> dict:
        return run_test_state(engine, request)

    def list_state_machines(request: dict) -> dict:
        return _page(engine.list_state_machines(), request, "stateMachines")

    def delete_state_machine(request: dict) -> dict:
        engine.delete_state_machine(_required(request, "stateMachineArn"))
        return {}

    def start_execution(request: dict) -> dict:
        arn = engine.start_execution(_required(request, "stateMachineArn"), request.get("input", "{}"), request.get("name"))
        return {"executionArn": arn, "startDate": engine.start_date(arn)}

    def list_executions(request: dict) -> dict:
        executions = engine.list_executions(request.get("stateMachineArn"), request.get("statusFilter"), request.get("mapRunArn"))
        return _page(executions, request, "executions")

    def stop_execution(request: dict) -> dict:
        return {"stopDate": engine.stop_execution(_required(request, "executionArn"), request.get("error"), request.get("cause"))}

    def get_execution_history(request: dict) -> dict:
        events = engine.get_execution_history(
            _required(request, "executionArn"),
            reverse_order=bool(request.get("reverseOrder", False)),
            include_execution_data=bool(request.get("includeExecutionData", True)),
        )
        return _page(events, request, "events")

    def send_task_success(request: dict) -> dict:
        engine.send_task_success(_required(request, "taskToken"), _required(request, "output"))
        return {}

    def send_task_failure(request: dict) -> dict:
        engine.send_task_failure(_required(request, "taskToken"), request.get("error"), request.get("cause"))
        return {}

    def send_task_heartbeat(request: dict) -> dict:
        engine.send_task_heartbeat(_required(request, "taskToken"))
        return {}

    return {
        "CreateStateMachine": create_state_machine,
        "UpdateStateMachine": update_state_machine,
        "DescribeStateMachine": lambda request: engine.describe_state_machine(_required(request, "stateMachineArn")),
        "ListStateMachines": list_state_machines,
        "DeleteStateMachine": delete_state_machine,
        "StartExecution": start_execution,
        "DescribeExecution": lambda request: engine.describe_execution(_required(request, "executionArn")),
        "ListExecutions": list_executions,
        "StopExecution": stop_execution,
        "GetExecutionHistory": get_execution_history,
        "SendTaskSuccess": send_task_success,
        "SendTaskFailure": send_task_failure,
        "SendTaskHeartbeat": send_task_heartbeat,
        "PublishStateMachineVersion": publish_state_machine_version,
        "ListStateMachineVersions": lambda request: _page(engine.list_state_machine_versions(_required(request, "stateMachineArn")), request, "stateMachineVersions"),
        "DeleteStateMachineVersion": lambda request: engine.delete_state_machine_version(_required(request, "stateMachineVersionArn")) or {},
        "CreateStateMachineAlias": create_state_machine_alias,
        "UpdateStateMachineAlias": update_state_machine_alias,
        "DescribeStateMachineAlias": lambda request: engine.describe_state_machine_alias(_required(request, "stateMachineAliasArn")),
        "ListStateMachineAliases": lambda request: _page(engine.list_state_machine_aliases(_required(request, "stateMachineArn")), request, "stateMachineAliases"),
        "DeleteStateMachineAlias": lambda request: engine.delete_state_machine_alias(_required(request, "stateMachineAliasArn")) or {},
        "TagResource": lambda request: engine.tag_resource(_required(request, "resourceArn"), _tags(_required(request, "tags"))) or {},
        "UntagResource": lambda request: engine.untag_resource(_required(request, "resourceArn"), _required(request, "tagKeys")) or {},
        "ListTagsForResource": lambda request: {"tags": engine.list_tags_for_resource(_required(request, "resourceArn"))},
        "ValidateStateMachineDefinition": validate_definition,
        "RedriveExecution": redrive_execution,
        "DescribeStateMachineForExecution": lambda request: engine.describe_state_machine_for_execution(_required(request, "executionArn")),
        "StartSyncExecution": start_sync_execution,
        "TestState": test_state,
        "DescribeMapRun": lambda request: engine.describe_map_run(_required(request, "mapRunArn")),
        "ListMapRuns": lambda request: _page(engine.list_map_runs(_required(request, "executionArn")), request, "mapRuns"),
        "UpdateMapRun": lambda request: engine.update_map_run(
            _required(request, "mapRunArn"), request.get("maxConcurrency"), request.get("toleratedFailurePercentage"), request.get("toleratedFailureCount"),
        ) or {},
    }


def _required(request: dict, name: str) -> Any:
    value = request.get(name)
    if value is None:
        raise ServiceError("ValidationException", f"1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null")
    return value


def _tags(tags: list) -> dict[str, str]:
    if not isinstance(tags, list) or not all(isinstance(tag, dict) and "key" in tag for tag in tags):
        raise ServiceError("ValidationException", "tags must be a list of {key, value} objects")
    return {tag["key"]: tag.get("value", "") for tag in tags}


def _page(items: list, request: dict, key: str) -> dict:
    """One page of `items` from the request's nextToken, at most maxResults long (0 or absent: the default)."""
    size = request.get("maxResults") or _DEFAULT_PAGE
    if not isinstance(size, int) or not 0 < size <= _MAX_PAGE:
        raise ServiceError("ValidationException", f"maxResults must be between 0 and {_MAX_PAGE}, got {size!r}")
    start = _decode_token(request["nextToken"]) if request.get("nextToken") else 0
    page = {key: items[start : start + size]}
    if start + size < len(items):
        page["nextToken"] = base64.urlsafe_b64encode(json.dumps({"offset": start + size}).encode()).decode()
    return page


def _decode_token(token: str) -> int:
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, TypeError, KeyError):
        raise ServiceError("InvalidToken", f"Invalid Token: '{token}'") from None
    if not isinstance(offset, int) or offset < 0:
        raise ServiceError("InvalidToken", f"Invalid Token: '{token}'")
    return offset


# ---------------------------------------------------------------------- HTTP


def _handler_class(engine: Engine) -> type[BaseHTTPRequestHandler]:
    operations = _operations(engine)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "localsfn"
        # One send per response and no Nagle: headers and body written apart, the body
        # waited for the client's delayed ACK of the headers (about 40 ms per call).
        wbufsize = -1
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            try:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = self.headers.get("X-Amz-Target", "")
                operation = operations.get(target.removeprefix(_TARGET_PREFIX)) if target.startswith(_TARGET_PREFIX) else None
                if operation is None:
                    raise ServiceError("UnknownOperationException", f"Unknown operation {target!r}")
                try:
                    request = json.loads(body or b"{}")
                except json.JSONDecodeError as error:
                    raise ServiceError("SerializationException", f"The request body is not JSON: {error}") from None
                self._answer(200, operation(request))
            except DefinitionInvalid as invalid:
                self._error("InvalidDefinition", f"Invalid State Machine Definition: '{'; '.join(invalid.problems)}'")
            except ServiceError as error:
                self._error(error.code, error.message)

        def _error(self, code: str, message: str) -> None:
            self._answer(400, {"__type": f"com.amazonaws.states#{code}", "message": message})

        def _answer(self, status: int, document: dict) -> None:
            body = json.dumps(document, default=_epoch_seconds, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            # Requests carry execution input and task output: do not log them.
            return

    return Handler


def _epoch_seconds(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
