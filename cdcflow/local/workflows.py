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

from cdcflow.errors import ServiceUnreachable
from cdcflow.local import postgres
from cdcflow.local.config import LOOPBACK, StackConfig, aws_environment, endpoints_for
from cdcflow.local.credentials import (
    ADMIN_PROFILE, CredentialsFileInvalid, CredentialStore, ensure_credentials, register_principals,
)
from cdcflow.local.service import Service

REGISTRY_TABLE = "cdcflow-registry"
PRINCIPALS_TABLE = "cdcflow-principals"
IDEMPOTENCY_TABLE = "cdcflow-idempotency"
CONNECTIONS_TABLE = "cdcflow-connections"
STATE_MACHINE_ARN_PREFIX = "arn:aws:states:us-east-1:000000000000:stateMachine:"
# The workflows the engine loads (one per statemachines/*.asl.json), each with the variable naming its ARN.
WORKFLOW_ARN_VARIABLES = {
    "ProvisionPipeline": "PROVISION_STATE_MACHINE_ARN",
    "TeardownPipeline": "TEARDOWN_STATE_MACHINE_ARN",
    "PausePipeline": "PAUSE_STATE_MACHINE_ARN",
    "ResumePipeline": "RESUME_STATE_MACHINE_ARN",
    "UpdatePipeline": "UPDATE_STATE_MACHINE_ARN",
    "ResyncPipeline": "RESYNC_STATE_MACHINE_ARN",
    "RebuildPipeline": "REBUILD_STATE_MACHINE_ARN",
}
WORKFLOWS = tuple(WORKFLOW_ARN_VARIABLES)
REPO_ROOT = Path(__file__).resolve().parents[2]


def engine_url(config: StackConfig) -> str:
    return f"http://{LOOPBACK}:{config.ports.engine}"


def api_url(config: StackConfig) -> str:
    return f"http://{LOOPBACK}:{config.ports.api}"


LOCAL_ALARM_TOPIC_ARN = "arn:aws:sns:us-east-1:000000000000:cdcflow-alarms"


def lambda_environment(config: StackConfig) -> dict[str, str]:
    """The variables the Lambda functions and the API get on AWS, with the local stack's values."""
    endpoints = endpoints_for(config, postgres.ADMIN_USER, "")
    return {
        **aws_environment(endpoints),
        "AWS_ENDPOINT_URL_SFN": engine_url(config),
        "REGISTRY_TABLE": REGISTRY_TABLE,
        "IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE,
        "PRINCIPALS_TABLE": PRINCIPALS_TABLE,
        "CONNECTIONS_TABLE": CONNECTIONS_TABLE,
        **{variable: STATE_MACHINE_ARN_PREFIX + name for name, variable in WORKFLOW_ARN_VARIABLES.items()},
        "POWERTOOLS_SERVICE_NAME": "cdcflow",
        "POWERTOOLS_METRICS_NAMESPACE": "cdcflow",
        # The pipelines' alarms live in moto, which evaluates none: reconciliation sets their states.
        "ALARM_TOPIC_ARN": LOCAL_ALARM_TOPIC_ARN,
        "CDCFLOW_EVALUATE_ALARMS": "1",
    }


def _command(config: StackConfig, role: str) -> list[str]:
    # Run this checkout's code whatever the working folder and whichever tree pip installed last.
    bootstrap = f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); from cdcflow.local.workflows import main; main()"
    return [sys.executable, "-c", bootstrap, role, str(config.state_dir)]


def _stepfunctions(config: StackConfig):
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
    """None once `GET /pipelines`, signed by the local admin, answers 200.

    Makes sure the credentials file exists first (idempotent, as the API's
    `prepare` does): an API process started before the file existed is
    probed, and answers, all the same.
    """
    from cdcflow.api_client import ExecuteApiAuth, profile_session

    try:
        ensure_credentials(config.credentials_file)
        auth = ExecuteApiAuth(profile_session(ADMIN_PROFILE, credentials_file=config.credentials_file))
    except (BotoCoreError, ServiceUnreachable, CredentialsFileInvalid) as error:
        return f"no {ADMIN_PROFILE} credentials in {config.credentials_file} ({type(error).__name__})"
    try:
        response = requests.get(f"{api_url(config)}/pipelines", auth=auth, timeout=5)
    except requests.RequestException as error:
        return f"API not answering ({type(error).__name__})"
    return None if response.status_code == 200 else f"GET /pipelines answered {response.status_code}"


def _prepare(name: str):
    def prepare(config: StackConfig) -> None:
        config.service_dir(name).mkdir(parents=True, exist_ok=True)

    return prepare


def _prepare_api(config: StackConfig) -> None:
    """The API's folder and the local users' credentials file (created once, then kept)."""
    config.service_dir("api").mkdir(parents=True, exist_ok=True)
    ensure_credentials(config.credentials_file)


def main() -> None:
    """`<role> <state dir>`: run the engine or the API with the stack's environment until SIGTERM."""
    role, state_dir = sys.argv[1], sys.argv[2]
    os.environ["CDCFLOW_LOCAL_STATE_DIR"] = state_dir
    from cdcflow.local.config import config_from_env

    config = config_from_env()
    os.environ.update(lambda_environment(config))
    if role == "engine":
        from cdcflow.engine_cli import serve
        from cdcflow.local.tables import ensure_tables

        from cdcflow.local.connections import register_local_connections

        from cdcflow.local.reconcile_schedule import start_from_env

        ensure_tables(boto3.client("dynamodb"), REGISTRY_TABLE, IDEMPOTENCY_TABLE)
        register_local_connections(config, boto3.client("dynamodb"))
        # Reconciliation on a schedule, as EventBridge runs it on AWS (CDCFLOW_LOCAL_RECONCILE_INTERVAL_SECONDS).
        start_from_env(os.environ)
        serve(port=config.ports.engine, db=config.service_dir("engine") / "journal.sqlite", host=LOOPBACK)
    elif role == "api":
        import signal
        import threading

        from cdcflow.api_server import serve_api
        from cdcflow.local.tables import ensure_principals_table

        # The local users and their teams and roles, as the platform registers its principals on AWS.
        ensure_principals_table(boto3.client("dynamodb"), PRINCIPALS_TABLE)
        register_principals(ensure_credentials(config.credentials_file))
        server = serve_api(config.ports.api, host=LOOPBACK,
                           credentials=CredentialStore.from_file(config.credentials_file))
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
    prepare=_prepare_api,
    command=lambda config: _command(config, "api"),
    probe=probe_api,
    ready_timeout_seconds=60,
    needs=("engine",),
)
