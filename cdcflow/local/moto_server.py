"""A moto server standing in for the AWS APIs with no local server (Secrets Manager, RDS, CloudWatch).

moto keeps its state in memory, so every `up` seeds the two admin secrets again
(idempotently): `cdcflow-local/source-admin` and `cdcflow-local/sink-admin`, each
holding the PostgreSQL admin login as JSON {"username", "password"}, and
`cdcflow-local/kafka-scram`, the SCRAM login of Kafka's SASL_SSL listener.
"""

import json
import sys
from functools import cache

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cdcflow.local import kafka, postgres
from cdcflow.local.config import (
    AWS_REGION,
    DUMMY_ACCESS_KEY_ID,
    DUMMY_SECRET_ACCESS_KEY,
    KAFKA_SCRAM_SECRET,
    LOOPBACK,
    SINK_ADMIN_SECRET,
    SOURCE_ADMIN_SECRET,
    StackConfig,
)
from cdcflow.local.service import Service
from lambdas.secrets import USE_TAG


def prepare(config: StackConfig) -> None:
    config.service_dir("moto").mkdir(parents=True, exist_ok=True)


def command(config: StackConfig) -> list[str]:
    return [sys.executable, "-m", "moto.server", "--host", LOOPBACK, "--port", str(config.ports.moto)]


@cache
def _secrets_client(port: int):
    return boto3.client(
        "secretsmanager",
        endpoint_url=f"http://{LOOPBACK}:{port}",
        region_name=AWS_REGION,
        aws_access_key_id=DUMMY_ACCESS_KEY_ID,
        aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY,
        config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
    )


def probe(config: StackConfig) -> str | None:
    """None once Secrets Manager answers."""
    try:
        _secrets_client(config.ports.moto).list_secrets(MaxResults=1)
    except (BotoCoreError, ClientError) as error:
        return f"Secrets Manager not answering ({type(error).__name__})"
    return None


def seed_admin_secrets(config: StackConfig) -> None:
    """Store the PostgreSQL admin login under both admin secret names, and Kafka's SCRAM login. Idempotent."""
    client = _secrets_client(config.ports.moto)
    login = json.dumps({"username": postgres.ADMIN_USER, "password": postgres.admin_password(config)})
    kafka_login = json.dumps({"username": kafka.SCRAM_USER, "password": kafka.scram_password(config)})
    for name, value in ((SOURCE_ADMIN_SECRET, login), (SINK_ADMIN_SECRET, login), (KAFKA_SCRAM_SECRET, kafka_login)):
        try:
            current = client.get_secret_value(SecretId=name)["SecretString"]
        except client.exceptions.ResourceNotFoundException:
            client.create_secret(Name=name, SecretString=value, Description="cdcflow local stack login",
                                 Tags=[{"Key": USE_TAG, "Value": "true"}])  # registered in connections
            continue
        if current != value:
            client.put_secret_value(SecretId=name, SecretString=value)


SERVICE = Service(
    name="moto",
    listeners=lambda config: {"moto": config.ports.moto},
    prepare=prepare,
    command=command,
    probe=probe,
    ready_timeout_seconds=60,
    after_ready=seed_admin_secrets,
)
