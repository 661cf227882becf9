"""Kafka Connect in distributed mode with the Debezium PostgreSQL source and JDBC sink plugins.

The plugins live in their own folders under `plugin.path`, never on the worker's
classpath, so each loads in its own class loader as in production.

Connector configs hold `${secretsmanager:<secret name>:<key>}` references, never
secret values: the worker resolves them through cdcflow's Secrets Manager
ConfigProvider (a plugin too), pointed at the stack's moto server. Its AWS
credentials are the stack's dummies, given as JVM system properties (the SDK's
default chain reads them first), never as worker properties.

The worker, and through it every connector's producer, consumer and admin
client, talks to Kafka over the broker's SASL_SSL listener as SCRAM user
`cdcflow`, verifying the broker against the stack's CA; the SCRAM password in
`worker.properties` is a reference the same provider resolves at start-up.
"""

from pathlib import Path

import requests

from cdcflow.local import java, kafka, moto_server
from cdcflow.local.config import (
    AWS_REGION,
    DUMMY_ACCESS_KEY_ID,
    DUMMY_SECRET_ACCESS_KEY,
    KAFKA_SCRAM_SECRET,
    LOOPBACK,
    StackConfig,
)
from cdcflow.local.fetch import CONNECT_PLUGINS, SECRETS_PROVIDER_CLASS, Jars
from cdcflow.local.service import Service

HEAP = ("-Xms256m", "-Xmx1g")
GROUP_ID = "cdcflow-local-connect"
# The provider name in `${secretsmanager:<secret name>:<key>}`; lambdas.connect.secret_refs writes the references.
SECRETS_PROVIDER = "secretsmanager"


def url(config: StackConfig) -> str:
    return f"http://{LOOPBACK}:{config.ports.connect}"


def kafka_client_security(config: StackConfig) -> dict[str, str]:
    """SASL_SSL with SCRAM to the broker's second listener; the password a `${secretsmanager:...}` reference."""
    login = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{kafka.SCRAM_USER}" password="${{{SECRETS_PROVIDER}:{KAFKA_SCRAM_SECRET}:password}}";'
    )
    return {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": kafka.SCRAM_MECHANISM,
        "sasl.jaas.config": login,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(config.ca_file),
        "ssl.endpoint.identification.algorithm": "https",
    }


def worker_properties(config: StackConfig) -> dict[str, str]:
    ports = config.ports
    json_converter = "org.apache.kafka.connect.json.JsonConverter"
    security = kafka_client_security(config)
    return {
        "bootstrap.servers": f"{LOOPBACK}:{ports.kafka_sasl}",
        # The worker's own clients, then the connectors' (Connect passes them only the prefixed settings).
        **security,
        **{f"{client}.{key}": value for client in ("producer", "consumer", "admin") for key, value in security.items()},
        "group.id": GROUP_ID,
        "key.converter": json_converter,
        "value.converter": json_converter,
        "key.converter.schemas.enable": "true",
        "value.converter.schemas.enable": "true",
        "config.storage.topic": f"{GROUP_ID}-configs",
        "offset.storage.topic": f"{GROUP_ID}-offsets",
        "status.storage.topic": f"{GROUP_ID}-status",
        "config.storage.replication.factor": "1",
        "offset.storage.replication.factor": "1",
        "status.storage.replication.factor": "1",
        "offset.storage.partitions": "5",
        # Source offsets (and so the slot's confirmed LSN) advance within a second of each batch.
        "offset.flush.interval.ms": "1000",
        # A worker that left its group (its poll timed out while Kafka was restarting) gets its own tasks back at
        # once when it rejoins: by default its "lost" tasks wait 5 minutes before they are assigned again, and
        # meanwhile nothing runs while their last status still reads RUNNING. This stack has a single worker.
        "scheduled.rebalance.max.delay.ms": "0",
        "listeners": f"http://{LOOPBACK}:{ports.connect}",
        "rest.advertised.host.name": LOOPBACK,
        "rest.advertised.port": str(ports.connect),
        "plugin.path": str(Jars(config.jars_dir).plugin_path),
        # Both Debezium plugins ship ServiceLoader manifests: no reflective scan of every jar at start-up.
        "plugin.discovery": "service_load",
        "topic.creation.enable": "true",
        "config.providers": SECRETS_PROVIDER,
        f"config.providers.{SECRETS_PROVIDER}.class": SECRETS_PROVIDER_CLASS,
        f"config.providers.{SECRETS_PROVIDER}.param.endpoint": f"http://{LOOPBACK}:{ports.moto}",
        f"config.providers.{SECRETS_PROVIDER}.param.region": AWS_REGION,
    }


def home(config: StackConfig) -> Path:
    return config.service_dir("connect")


def prepare(config: StackConfig) -> None:
    """Write the worker's configuration; make sure its SCRAM login exists in Kafka and in moto. Idempotent.

    Both are also done after those services are ready, but only once every
    service has started, which is too late for a worker that logs in at start-up.
    """
    kafka.ensure_scram_user(config)
    moto_server.seed_admin_secrets(config)
    home(config).mkdir(parents=True, exist_ok=True)
    kafka.log4j_file(config).write_text(kafka.LOG4J)
    kafka.write_properties(home(config) / "worker.properties", worker_properties(config))


def command(config: StackConfig) -> list[str]:
    return [
        java.java(),
        *HEAP,
        *java.COMMON_JVM_OPTIONS,
        f"-Dlog4j.configuration=file:{kafka.log4j_file(config)}",
        # The local stack's dummy credentials (moto checks none), for the Secrets Manager ConfigProvider.
        f"-Daws.accessKeyId={DUMMY_ACCESS_KEY_ID}",
        f"-Daws.secretAccessKey={DUMMY_SECRET_ACCESS_KEY}",
        "-cp",
        Jars(config.jars_dir).kafka_classpath,
        "org.apache.kafka.connect.cli.ConnectDistributed",
        str(home(config) / "worker.properties"),
    ]


def probe(config: StackConfig) -> str | None:
    """None once the REST API lists both Debezium plugins and the worker serves its connectors.

    A worker started without the Secrets Manager ConfigProvider (before it was
    configured) cannot resolve the connectors' secret references: it is reported, not ready.
    """
    properties = home(config) / "worker.properties"
    if properties.exists() and f"config.providers={SECRETS_PROVIDER}" not in properties.read_text():
        return "the worker runs without the Secrets Manager ConfigProvider: `cdcflow local down` and `up` again"
    try:
        # /health (KIP-1017) answers 200 only once the worker has joined its group and read the config
        # topic: before that, /connectors answers from an empty memory and a rollback would find nothing.
        health = requests.get(f"{url(config)}/health", timeout=5)
        plugins = requests.get(f"{url(config)}/connector-plugins", timeout=5)
        connectors = requests.get(f"{url(config)}/connectors", timeout=5)
    except requests.RequestException as error:
        return f"REST API not answering ({type(error).__name__})"
    if health.status_code != 200:
        return f"worker not started yet (/health answered {health.status_code})"
    if plugins.status_code != 200 or connectors.status_code != 200:
        return f"REST API answered {plugins.status_code}/{connectors.status_code}"
    offered = {plugin.get("class") for plugin in plugins.json()}
    missing = sorted(set(CONNECT_PLUGINS.values()) - offered)
    if missing:
        return f"plugins not loaded: {', '.join(missing)}"
    return None


SERVICE = Service(
    name="connect",
    listeners=lambda config: {"connect": config.ports.connect},
    prepare=prepare,
    command=command,
    probe=probe,
    # Scanning the plugin folders takes a while on a busy two-core machine.
    ready_timeout_seconds=240,
    needs=("kafka", "moto"),
    needs_jars=True,
)
