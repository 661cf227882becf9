"""A single-node Apache Kafka in KRaft combined mode (broker and controller in one JVM).

Run from the Maven Central jars as `java -cp <jars> kafka.Kafka server.properties`,
with storage formatted once by Kafka's storage tool.

Two client listeners: PLAINTEXT, and SASL_SSL with SCRAM-SHA-512 on
`ports.kafka_sasl`, whose certificate (for 127.0.0.1 and localhost) the
stack's CA signs (`cdcflow.local.tls`). The SCRAM user `cdcflow` gets a
generated password (0600 file under `secrets/`; moto holds it in secret
`cdcflow-local/kafka-scram`), upserted on every `up`.
"""

import base64
import os
import secrets
import subprocess
import uuid
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import ScramMechanism, UserScramCredentialUpsertion
from kafka.errors import KafkaConfigurationError, KafkaError

from cdcflow.local import java, tls
from cdcflow.local.config import LOOPBACK, StackConfig
from cdcflow.local.errors import LocalStackError
from cdcflow.local.fetch import Jars
from cdcflow.local.service import Service

HEAP = ("-Xms256m", "-Xmx512m")
SCRAM_USER = "cdcflow"
SCRAM_MECHANISM = "SCRAM-SHA-512"

# How long a probe may wait for the broker to answer at all; the option was renamed in kafka-python 3.
PROBE_BOOTSTRAP_TIMEOUT = (
    {"bootstrap_timeout_ms": 2000}
    if "bootstrap_timeout_ms" in KafkaAdminClient.DEFAULT_CONFIG
    else {"api_version_auto_timeout_ms": 2000}
)

LOG4J = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
log4j.logger.org.reflections=ERROR
"""


def home(config: StackConfig) -> Path:
    return config.service_dir("kafka")


def log4j_file(config: StackConfig) -> Path:
    """The reload4j configuration shared by Kafka and Connect: everything to stdout, which is the log file."""
    return config.state_dir / "log4j.properties"


def keystore_file(config: StackConfig) -> Path:
    """The SASL_SSL listener's PEM keystore: its private key and certificate in one file."""
    return home(config) / "tls" / "broker-keystore.pem"


def scram_password_file(config: StackConfig) -> Path:
    return config.state_dir / "secrets" / "kafka-scram-password"


def scram_password(config: StackConfig) -> str:
    """The SCRAM user's password, generated on first use into a 0600 file. Idempotent."""
    path = scram_password_file(config)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def server_properties(config: StackConfig) -> dict[str, str]:
    ports = config.ports
    sasl = "listener.name.sasl_ssl"
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{LOOPBACK}:{ports.kafka_controller}",
        "listeners": (
            f"PLAINTEXT://{LOOPBACK}:{ports.kafka},CONTROLLER://{LOOPBACK}:{ports.kafka_controller},"
            f"SASL_SSL://{LOOPBACK}:{ports.kafka_sasl}"
        ),
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{ports.kafka},SASL_SSL://{LOOPBACK}:{ports.kafka_sasl}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        f"{sasl}.{SCRAM_MECHANISM.lower()}.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        f"{sasl}.ssl.keystore.type": "PEM",
        f"{sasl}.ssl.keystore.location": str(keystore_file(config)),
        "log.dirs": str(home(config) / "data"),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "min.insync.replicas": "1",
        # Consumers in tests join their group at once instead of waiting 3 s for company.
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        "delete.topic.enable": "true",
    }


def write_properties(path: Path, properties: dict[str, str]) -> None:
    path.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))


def _new_cluster_id() -> str:
    # Kafka's Uuid text form: URL-safe base64 of 16 random bytes, unpadded, never starting with '-'.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def prepare(config: StackConfig) -> None:
    """Write the broker's configuration and format its storage once. Idempotent."""
    folder = home(config)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    log4j_file(config).write_text(LOG4J)
    certificate = tls.ensure_server_certificate(config, folder / "tls")
    keystore = keystore_file(config)
    fd = os.open(keystore, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(certificate.key.read_bytes() + certificate.certificate.read_bytes())
    properties = folder / "server.properties"
    write_properties(properties, server_properties(config))
    if (folder / "data" / "meta.properties").exists():
        return
    log_path = config.log_path("kafka")
    with log_path.open("ab") as log:
        result = subprocess.run(
            [
                java.java(),
                *java.COMMON_JVM_OPTIONS,
                f"-Dlog4j.configuration=file:{log4j_file(config)}",
                "-cp",
                Jars(config.jars_dir).kafka_classpath,
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                _new_cluster_id(),
                "--config",
                str(properties),
                "--ignore-formatted",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode != 0:
        raise LocalStackError(f"formatting Kafka's storage failed (exit {result.returncode}); see {log_path}")


def command(config: StackConfig) -> list[str]:
    return [
        java.java(),
        *HEAP,
        *java.COMMON_JVM_OPTIONS,
        f"-Dlog4j.configuration=file:{log4j_file(config)}",
        "-cp",
        Jars(config.jars_dir).kafka_classpath,
        "kafka.Kafka",
        str(home(config) / "server.properties"),
    ]


def probe(config: StackConfig) -> str | None:
    """None once the broker answers a metadata request."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=f"{LOOPBACK}:{config.ports.kafka}",
            client_id="cdcflow-local-probe",
            request_timeout_ms=5000,
            **PROBE_BOOTSTRAP_TIMEOUT,
        )
    except KafkaConfigurationError:
        raise
    except (KafkaError, OSError) as error:
        return f"no metadata yet ({type(error).__name__})"
    try:
        admin.list_topics()
    except (KafkaError, OSError) as error:
        return f"no metadata yet ({type(error).__name__})"
    finally:
        admin.close()
    return None


def ensure_scram_user(config: StackConfig) -> None:
    """Give the SCRAM user the stack's password (an upsert, over the PLAINTEXT listener). Idempotent."""
    admin = KafkaAdminClient(bootstrap_servers=f"{LOOPBACK}:{config.ports.kafka}", client_id="cdcflow-local-scram",
                             request_timeout_ms=10000)
    try:
        upsert = UserScramCredentialUpsertion(SCRAM_USER, ScramMechanism.SCRAM_SHA_512, scram_password(config))
        errors = {user: error for user, error in admin.alter_user_scram_credentials([upsert]).items() if error}
    finally:
        admin.close()
    if errors:
        raise LocalStackError(f"Kafka refused the SCRAM credential of {SCRAM_USER!r}: {errors[SCRAM_USER]}")


SERVICE = Service(
    name="kafka",
    listeners=lambda config: {
        "kafka": config.ports.kafka,
        "kafka_controller": config.ports.kafka_controller,
        "kafka_sasl": config.ports.kafka_sasl,
    },
    prepare=prepare,
    command=command,
    probe=probe,
    ready_timeout_seconds=120,
    needs_jars=True,
    after_ready=ensure_scram_user,
)
