"""DynamoDB Local, bound to 127.0.0.1, its tables kept under the service's folder.

DynamoDB Local has no bind-address option; a small launcher
(dynamodb_launcher/LoopbackDynamoDBLocal.java) serves its handler on loopback only.
The tables live on disk (DynamoDB Local's SQLite file) because the rest of the
stack's state does: the pipeline registry and the idempotency records must
survive `down` and `up` together with the slots, topics, connectors and
executions they describe, or a restarted stack would see live pipelines as
orphans.
"""

from functools import cache

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cdcflow.local import java
from cdcflow.local.config import AWS_REGION, DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY, LOOPBACK, StackConfig
from cdcflow.local.fetch import LAUNCHER_CLASS, Jars
from cdcflow.local.service import Service

HEAP = ("-Xms64m", "-Xmx256m")


def prepare(config: StackConfig) -> None:
    config.service_dir("dynamodb").mkdir(parents=True, exist_ok=True)


def command(config: StackConfig) -> list[str]:
    jars = Jars(config.jars_dir)
    return [
        java.java(),
        *HEAP,
        *java.COMMON_JVM_OPTIONS,
        f"-Djava.library.path={jars.native_library_dir}",
        "-cp",
        jars.dynamodb_classpath,
        LAUNCHER_CLASS,
        LOOPBACK,
        str(config.ports.dynamodb),
        str(config.service_dir("dynamodb")),
    ]


@cache
def _client(port: int):
    return boto3.client(
        "dynamodb",
        endpoint_url=f"http://{LOOPBACK}:{port}",
        region_name=AWS_REGION,
        aws_access_key_id=DUMMY_ACCESS_KEY_ID,
        aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY,
        config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
    )


def probe(config: StackConfig) -> str | None:
    """None once ListTables answers."""
    try:
        _client(config.ports.dynamodb).list_tables(Limit=1)
    except (BotoCoreError, ClientError) as error:
        return f"ListTables failed ({type(error).__name__})"
    return None


SERVICE = Service(
    name="dynamodb",
    listeners=lambda config: {"dynamodb": config.ports.dynamodb},
    prepare=prepare,
    command=command,
    probe=probe,
    ready_timeout_seconds=90,
    needs_jars=True,
)
