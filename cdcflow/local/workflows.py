"""The local engine and the local pipelines API, as two services of the local stack.

On AWS the Lambda functions get their settings from their environment (the
tables, the state machine ARNs) and reach AWS's endpoints. Here both
processes get the same variables, pointed at the local stack: DynamoDB Local,
moto, and the engine's own Step Functions API. The engine runs every Lambda
handler in its own process; the API serves the API handler.

Each is a process of its own, so a test can SIGKILL the engine and `up`
starts it again on the same journal, where its executions resume.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import boto3
import requests
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cdcflow.local import postgres
from cdcflow.local.config import LOOPBACK, StackConfig, aws_environment, endpoints_for
from cdcflow.local.service import Service

REGISTRY_TABLE = "cdcflow-registry"
IDEMPOTENCY_TABLE = "cdcflow-idempotency"
STATE_MACHINE_ARN_PREFIX = "arn:aws:states:us-east-1:000000000000:stateMachine:"
WORKFLOWS = ("ProvisionPipeline", "TeardownPipeline")
REPO_ROOT = Path(__file__).resolve().parents[2]


def engine_url(config: StackConfig) -> str:
    return f"http://{LOOPBACK}:{config.ports.engine}"


def api_url(config: StackConfig) -> str:
    return f"http://{LOOPBACK}:{config.ports.api}"


def lambda_environment(config: StackConfig) -> dict[str, str]:
    """The variables the Lambda functions and the API get on AWS, with the local stack's values."""
    endpoints = endpoints_for(config, postgres.ADMIN_USER, "")
    return {
        **aws_environment(endpoints),
        "AWS_ENDPOINT_URL_SFN": engine_url(config),
        "REGISTRY_TABLE": REGISTRY_TABLE,
        "IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE,
        "PROVISION_STATE_MACHINE_ARN": STATE_MACHINE_ARN_PREFIX + "ProvisionPipeline",
        "TEARDOWN_STATE_MACHINE_ARN": STATE_MACHINE_ARN_PREFIX + "TeardownPipeline",
        "POWERTOOLS_SERVICE_NAME": "cdcflow",
        "POWERTOOLS_METRICS_NAMESPACE": "cdcflow",
    }


def _command(config: StackConfig, role: str) -> list[str]:
    # Run this checkout's code whatever the working folder and whichever tree pip installed last.
    bootstrap = f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); from cdcflow.local.workflows import main; main()"
    return [sys.executable, "-c", bootstrap, role, str(config.state_dir)]


def _stepfunctions(config: StackConfig):  # noqa: ANN202 - a boto3 client
    return boto3.client(
        "stepfunctions",
        endpoint_url=engine_url(config),
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
    )


def probe_engine(config: StackConfig) -> str | None:
    """None once the Step Functions API lists both workflows."""
    try:
        machines = {machine["name"] for machine in _stepfunctions(config).list_state_machines()["stateMachines"]}
    except (BotoCoreError, ClientError) as error:
        return f"Step Functions API not answering ({type(error).__name__})"
    missing = [name for name in WORKFLOWS if name not in machines]
    return f"{', '.join(missing)} not loaded yet" if missing else None


def probe_api(config: StackConfig) -> str | None:
    """None once `GET /pipelines` answers 200."""
    try:
        response = requests.get(f"{api_url(config)}/pipelines", timeout=5)
    except requests.RequestException as error:
        return f"API not answering ({type(error).__name__})"
    return None if response.status_code == 200 else f"GET /pipelines answered {response.status_code}"


def _prepare(name: str):  # noqa: ANN202
    def prepare(config: StackConfig) -> None:
        config.service_dir(name).mkdir(parents=True, exist_ok=True)

    return prepare


def main() -> None:
    """`<role> <state dir>`: run the engine or the API with the stack's environment until SIGTERM."""
    role, state_dir = sys.argv[1], sys.argv[2]
    os.environ["CDCFLOW_LOCAL_STATE_DIR"] = state_dir
    from cdcflow.local.config import config_from_env

    config = config_from_env()
    os.environ.update(lambda_environment(config))
    if role == "engine":
        from cdcflow.engine_cli import serve
        from lambdas.local_tables import ensure_tables

        ensure_tables(boto3.client("dynamodb"), REGISTRY_TABLE, IDEMPOTENCY_TABLE)
        serve(port=config.ports.engine, db=config.service_dir("engine") / "journal.sqlite", host=LOOPBACK)
    elif role == "api":
        import signal
        import threading

        from cdcflow.api_server import serve_api

        server = serve_api(config.ports.api, host=LOOPBACK)
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        signal.signal(signal.SIGINT, lambda *_: stopped.set())
        stopped.wait()
        server.shutdown()
    else:
        raise SystemExit(f"unknown role {role!r}: engine or api")


ENGINE = Service(
    name="engine",
    listeners=lambda config: {"engine": config.ports.engine},
    prepare=_prepare("engine"),
    command=lambda config: _command(config, "engine"),
    probe=probe_engine,
    ready_timeout_seconds=60,
    needs=("dynamodb", "moto"),
)

API = Service(
    name="api",
    listeners=lambda config: {"api": config.ports.api},
    prepare=_prepare("api"),
    command=lambda config: _command(config, "api"),
    probe=probe_api,
    ready_timeout_seconds=60,
    needs=("engine",),
)
