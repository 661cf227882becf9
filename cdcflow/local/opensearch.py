"""A single-node OpenSearch 2.19 on loopback, from the Maven Central jars, without the security plugin.

Started only when asked for (`cdcflow local up --with opensearch`, or the tests and
the demo mode that need it): with its 512 MiB heap it is the heaviest service of the
stack, and only an OpenSearch sink uses it. OpenSearch refuses to run as root, so a
root caller runs it as PostgreSQL's unprivileged OS user, like the database.
"""

import os
import pwd
import shutil
from pathlib import Path

import requests

from cdcflow.local import java
from cdcflow.local.config import LOOPBACK, StackConfig
from cdcflow.local.errors import ToolMissing
from cdcflow.local.fetch import Jars
from cdcflow.local.service import Service

# A fixed heap (Xms = Xmx), as OpenSearch's own jvm.options asks, sized for a test index.
HEAP = ("-Xms512m", "-Xmx512m")
OS_USER = "postgres"
CLUSTER_NAME = "cdcflow-local"

LOG4J2 = """\
status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
logger.deprecation.name = org.opensearch.deprecation
logger.deprecation.level = error
"""


def url(config: StackConfig) -> str:
    return f"http://{LOOPBACK}:{config.ports.opensearch}"


def home(config: StackConfig) -> Path:
    return config.service_dir("opensearch")


def _run_as() -> str | None:
    return OS_USER if os.geteuid() == 0 else None


def settings(config: StackConfig) -> dict[str, str]:
    folder = home(config)
    return {
        "cluster.name": CLUSTER_NAME,
        "node.name": CLUSTER_NAME,
        "network.host": LOOPBACK,
        "http.port": str(config.ports.opensearch),
        "transport.port": str(config.ports.opensearch_transport),
        "discovery.type": "single-node",
        "path.data": str(folder / "data"),
        "path.logs": str(folder / "logs"),
        # A developer's disk is often fuller than a server's: don't turn indices read-only at 95%.
        "cluster.routing.allocation.disk.threshold_enabled": "false",
        "action.auto_create_index": "true",
    }


def prepare(config: StackConfig) -> None:
    """Write the node's configuration and give its folders to the user it runs as. Idempotent."""
    folder = home(config)
    for sub in ("config", "data", "logs", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "config" / "opensearch.yml").write_text("".join(f"{k}: {v}\n" for k, v in settings(config).items()))
    (folder / "config" / "log4j2.properties").write_text(LOG4J2)
    # The security manager's set-up creates <home>/bin and <home>/plugins if they are missing, and
    # <home> (the jars) is not the node's to write: they must exist even though both stay empty.
    for empty in ("bin", "plugins"):
        (Jars(config.jars_dir).opensearch_modules.parent / empty).mkdir(exist_ok=True)
    user = _run_as()
    if user is not None:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            raise ToolMissing(f"OS user {user!r} not found: run scripts/bootstrap (the postgresql package creates it)")
        for path in [folder, *folder.rglob("*")]:
            shutil.chown(path, entry.pw_uid, entry.pw_gid)


def command(config: StackConfig) -> list[str]:
    jars = Jars(config.jars_dir)
    folder = home(config)
    return [
        java.java(),
        *HEAP,
        *java.COMMON_JVM_OPTIONS,
        # OpenSearch 2.x's jvm.options for Java 17: its date formats expect the COMPAT locale data.
        "-Djava.locale.providers=SPI,COMPAT",
        f"-Djava.io.tmpdir={folder / 'tmp'}",
        "-Dlog4j2.disable.jmx=true",
        "-Djna.nosys=true",
        f"-Dopensearch.path.home={jars.opensearch_modules.parent}",
        f"-Dopensearch.path.conf={folder / 'config'}",
        "-Dopensearch.distribution.type=tar",
        "-cp",
        jars.opensearch_classpath,
        "org.opensearch.bootstrap.OpenSearch",
    ]


def probe(config: StackConfig) -> str | None:
    """None once the cluster's health is green or yellow (a single node cannot place replicas)."""
    try:
        response = requests.get(f"{url(config)}/_cluster/health", timeout=5)
    except requests.RequestException as error:
        return f"REST API not answering ({type(error).__name__})"
    if response.status_code != 200:
        return f"cluster health answered {response.status_code}"
    health = response.json().get("status")
    return None if health in ("green", "yellow") else f"cluster health {health}"


SERVICE = Service(
    name="opensearch",
    listeners=lambda config: {"opensearch": config.ports.opensearch, "opensearch_transport": config.ports.opensearch_transport},
    prepare=prepare,
    command=command,
    probe=probe,
    ready_timeout_seconds=180,
    user=_run_as(),
    needs_jars=True,
    optional=True,
)
