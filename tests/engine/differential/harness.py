"""Run one corpus case on moto's Step Functions interpreter or on localsfn.

Each case in `cases/*.json` holds a definition, its input, the names of
the Python callables behind its Task states (see `tasks.py`), the
outcome AWS documents (`expected`), and whether its history has a fixed
order (Parallel branches and concurrent Map iterations interleave).

What is patched in moto, and why
--------------------------------
moto 5 ships LocalStack's ASL interpreter. Every Lambda call it makes,
for `arn:aws:lambda:...:function:X` resources and for
`arn:aws:states:::lambda:invoke`, goes through one function:
`moto.stepfunctions.parser.asl.component.state.exec.state_task.
lambda_eval_utils._invoke_lambda_function(parameters, region,
state_credentials)`, which would call moto's Lambda backend and so need
Docker. `moto_lambda_bridge` replaces it with a call to the case's
Python callable and returns what Lambda's Invoke returns: a 200 with the
JSON result as Payload, or, when the callable raises, `FunctionError:
"Unhandled"` and the Python runtime's error document (`errorMessage`,
`errorType`, `requestId`, `stackTrace`). moto then takes the error name
from `errorType` and the cause from the document, as it does for a real
function.

The retrier's `time.sleep` (in `...common.retry.retrier_decl`) is
replaced by a no-op so retry intervals cost no wall time; the outcome
and history do not depend on the delay.
"""

from __future__ import annotations

import json
import time
import traceback
import types
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

CASES_DIR = Path(__file__).parent / "cases"
REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/cdcflow-differential"
EXECUTION_NAME = "differential-run"
TIMEOUT_SECONDS = 60.0

Functions = Mapping[str, Callable[[Any], Any]]


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    definition: dict
    input: Any
    functions: list[str]
    expected: dict
    ordered_history: bool
    moto_diverges: dict | None = None

    @classmethod
    def load(cls, path: Path) -> Case:
        document = json.loads(path.read_text())
        return cls(
            name=path.stem,
            description=document["description"],
            definition=document["definition"],
            input=document["input"],
            functions=document["functions"],
            expected=document["expected"],
            ordered_history=document["ordered_history"],
            moto_diverges=document.get("moto_diverges"),
        )


@dataclass
class Outcome:
    """What an execution ended with, in a form both engines can be compared in."""

    status: str
    output: Any = None
    error: str | None = None
    cause: Any = None
    event_types: list[str] = field(default_factory=list)

    def result(self) -> dict:
        """The status with the output or the error and cause, as `expected` spells it."""
        if self.status == "SUCCEEDED":
            return {"status": self.status, "output": self.output}
        return {"status": self.status, "error": self.error, "cause": self.cause}

    def history(self, ordered: bool) -> list[str]:
        return self.event_types if ordered else sorted(self.event_types)


def load_cases() -> list[Case]:
    return [Case.load(path) for path in sorted(CASES_DIR.glob("*.json"))]


def function_name(resource_arn: str) -> str:
    return resource_arn.rsplit(":", 1)[-1]


def invoke(function: Callable[[Any], Any], payload: Any) -> tuple[Any, str | None]:
    """Call a task function the way Lambda's Python runtime does: (payload, FunctionError)."""
    try:
        return function(payload), None
    except Exception as error:  # noqa: BLE001 - every exception becomes a Lambda error document
        return {
            "errorMessage": str(error),
            "errorType": type(error).__name__,
            "requestId": str(uuid.uuid4()),
            "stackTrace": traceback.format_tb(error.__traceback__),
        }, "Unhandled"


@contextmanager
def moto_lambda_bridge(functions: Functions) -> Iterator[None]:
    """Route moto's Lambda invocations to Python callables and skip retry sleeps (see module docstring)."""

    def invoke_lambda_function(parameters: dict, region: str, state_credentials: Any) -> dict:
        name = function_name(parameters["FunctionName"])
        payload = json.loads(parameters["Payload"])
        if name not in functions:
            raise KeyError(f"no task function {name!r} in this case")
        result, function_error = invoke(functions[name], payload)
        response = {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": json.loads(json.dumps(result))}
        if function_error:
            response["FunctionError"] = function_error
        return response

    original_invoke = lambda_eval_utils._invoke_lambda_function
    original_time = retrier_decl.time
    lambda_eval_utils._invoke_lambda_function = invoke_lambda_function
    retrier_decl.time = types.SimpleNamespace(sleep=lambda seconds: None)
    try:
        yield
    finally:
        lambda_eval_utils._invoke_lambda_function = original_invoke
        retrier_decl.time = original_time


def run_on_moto(case: Case, functions: Functions) -> Outcome:
    """Run `case` on moto's interpreter through boto3 and return its outcome. Blocks until it ends."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), moto_lambda_bridge(functions):
        client = boto3.client("stepfunctions", region_name=REGION)
        machine_arn = client.create_state_machine(
            name=f"differential-{case.name}"[:80], definition=json.dumps(case.definition), roleArn=ROLE_ARN
        )["stateMachineArn"]
        execution_arn = client.start_execution(
            stateMachineArn=machine_arn, name=EXECUTION_NAME, input=json.dumps(case.input)
        )["executionArn"]
        deadline = time.monotonic() + TIMEOUT_SECONDS
        description = client.describe_execution(executionArn=execution_arn)
        while description["status"] == "RUNNING":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{case.name} still RUNNING on moto after {TIMEOUT_SECONDS} s")
            time.sleep(0.01)
            description = client.describe_execution(executionArn=execution_arn)
        events = _moto_history(client, execution_arn)
    return _outcome(description, [event["type"] for event in events])


def _moto_history(client: Any, execution_arn: str) -> list[dict]:
    events: list[dict] = []
    kwargs: dict = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = client.get_execution_history(**kwargs)
        events += page["events"]
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def run_on_localsfn(case: Case, functions: Functions, journal_path: Path) -> Outcome:
    """Run `case` on localsfn with each Lambda ARN mapped to its Python callable. Blocks until it ends."""
    from localsfn import Engine, VirtualClock

    # Virtual time: Wait states and retry intervals cost nothing, as they cost nothing on moto here.
    engine = Engine(journal_path, lambda arn: functions.get(function_name(arn)), clock=VirtualClock())
    try:
        machine_arn = engine.create_state_machine(
            f"differential-{case.name}"[:80], json.dumps(case.definition), role_arn=ROLE_ARN
        )
        execution_arn = engine.start_execution(machine_arn, json.dumps(case.input), name=EXECUTION_NAME)
        description = engine.wait_for_execution(execution_arn, timeout=TIMEOUT_SECONDS)
        events = engine.get_execution_history(execution_arn)
    finally:
        engine.close()
    return _outcome(description, [event["type"] for event in events])


def _outcome(description: Mapping[str, Any], event_types: list[str]) -> Outcome:
    output = description.get("output")
    return Outcome(
        status=description["status"],
        output=_normalize(json.loads(output)) if output is not None else None,
        error=description.get("error"),
        cause=_normalize_text(description.get("cause")),
        event_types=event_types,
    )


def _normalize(value: Any) -> Any:
    """Make outputs comparable: a Lambda error document inside a Cause keeps only its type and message.

    The request id and stack trace differ on every run and between engines.
    """
    if isinstance(value, dict):
        return {key: _normalize_text(item) if key == "Cause" else _normalize(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalize(item) for item in value]
    return value


def _normalize_text(cause: Any) -> Any:
    if not isinstance(cause, str):
        return cause
    try:
        document = json.loads(cause)
    except json.JSONDecodeError:
        return cause
    if isinstance(document, dict) and "errorType" in document:
        return {"errorType": document["errorType"], "errorMessage": document.get("errorMessage")}
    return cause
