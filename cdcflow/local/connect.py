"""Kafka Connect in distributed mode with the Debezium PostgreSQL source and JDBC sink plugins.

The plugins live in their own folders under `plugin.path`, never on the worker's
classpath, so each loads in its own class loader as in production.
"""

from pathlib import Path

import requests

from cdcflow.local import java, kafka
from cdcflow.local.config import LOOPBACK, StackConfig
from cdcflow.local.fetch import CONNECT_PLUGINS, Jars
from cdcflow.local.service import Service

HEAP = ("-Xms256m", "-Xmx1g")
GROUP_ID = "cdcflow-local-connect"


def url(config: StackConfig) -> str:
    return f"http://{LOOPBACK}:{config.ports.connect}"


def worker_properties(config: StackConfig) -> dict[str, str]:
    ports = config.ports
    json_converter = "org.apache.kafka.connect.json.JsonConverter"
    return {
        "bootstrap.servers": f"{LOOPBACK}:{ports.kafka}",
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
        "listeners": f"http://{LOOPBACK}:{ports.connect}",
        "rest.advertised.host.name": LOOPBACK,
        "rest.advertised.port": str(ports.connect),
        "plugin.path": str(Jars(config.jars_dir).plugin_path),
        # Both Debezium plugins ship ServiceLoader manifests: no reflective scan of every jar at start-up.
        "plugin.discovery": "service_load",
        "topic.creation.enable": "true",
    }


def home(config: StackConfig) -> Path:
    return config.service_dir("connect")


def prepare(config: StackConfig) -> None:
    """Write the worker's configuration. Idempotent."""
    home(config).mkdir(parents=True, exist_ok=True)
    kafka.log4j_file(config).write_text(kafka.LOG4J)
    kafka.write_properties(home(config) / "worker.properties", worker_properties(config))


def command(config: StackConfig) -> list[str]:
    return [
        java.java(),
        *HEAP,
        *java.COMMON_JVM_OPTIONS,
        f"-Dlog4j.configuration=file:{kafka.log4j_file(config)}",
        "-cp",
        Jars(config.jars_dir).kafka_classpath,
        "org.apache.kafka.connect.cli.ConnectDistributed",
        str(home(config) / "worker.properties"),
    ]


def probe(config: StackConfig) -> str | None:
    """None once the REST API lists both Debezium plugins and the worker serves its connectors."""
    try:
        plugins = requests.get(f"{url(config)}/connector-plugins", timeout=5)
        connectors = requests.get(f"{url(config)}/connectors", timeout=5)
    except requests.RequestException as error:
        return f"REST API not answering ({type(error).__name__})"
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
    needs=("kafka",),
    needs_jars=True,
)
