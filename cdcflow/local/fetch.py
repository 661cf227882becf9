"""Resolve the service jars from Maven Central and keep them under the state folder.

Maven runs only when the manifest check fails: the manifest, written last, lists
every file a successful fetch produced together with a fingerprint of the pom and
the DynamoDB Local launcher, so a later `up` verifies the copy and downloads
nothing. Maven first tries offline (the ~/.m2 cache may hold everything), then online.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cdcflow.local import java
from cdcflow.local.config import StackConfig
from cdcflow.local.errors import FetchFailed, ToolMissing

POM = Path(__file__).with_name("pom.xml")
LAUNCHER_SOURCE = Path(__file__).with_name("dynamodb_launcher") / "LoopbackDynamoDBLocal.java"
LAUNCHER_CLASS = LAUNCHER_SOURCE.stem
# cdcflow's own OpenSearch sink connector, compiled against the Kafka jars (no sink on Maven Central
# deletes by key: see docs/opensearch.md).
OPENSEARCH_SINK_SOURCES = Path(__file__).with_name("opensearch_sink")
OPENSEARCH_SINK_PLUGIN = "cdcflow-opensearch-sink"
OPENSEARCH_SINK_CONNECTOR = "dev.cdcflow.opensearch.OpenSearchSinkConnector"
# cdcflow's Secrets Manager ConfigProvider, with the AWS SDK jars beside it in its plugin folder: no
# provider on Maven Central reads Secrets Manager through an endpoint override (see docs/security.md).
SECRETS_PROVIDER_SOURCES = Path(__file__).with_name("secrets_provider")
SECRETS_PROVIDER_PLUGIN = "cdcflow-secrets-provider"
SECRETS_PROVIDER_CLASS = "dev.cdcflow.secrets.SecretsManagerConfigProvider"
# cdcflow's JSON converter for the JDBC sink: JsonConverter with the special numbers it would change put back
# (lambdas/connect/converters.py).
EXACT_VALUES_SOURCES = Path(__file__).with_name("exact_values")
EXACT_VALUES_PLUGIN = "cdcflow-exact-values"
EXACT_VALUES_CONVERTER = "dev.cdcflow.connect.ExactJsonConverter"
# OpenSearch loads its transport and HTTP layer as a module from its own class loader.
OPENSEARCH_NETTY_MODULE = "transport-netty4"
OPENSEARCH_NETTY_PLUGIN_CLASS = "org.opensearch.transport.Netty4Plugin"
MANIFEST = "manifest.json"

# Each profile of the pom and the executions that copy its files.
MAVEN_RUNS = {
    "kafka": ("dependency:copy-dependencies@kafka-classpath", "dependency:copy@connect-plugins"),
    "dynamodb": ("dependency:copy-dependencies@dynamodb-classpath",),
    "opensearch": ("dependency:copy-dependencies@opensearch-classpath",),
    "secrets": ("dependency:copy-dependencies@secrets-classpath",),
}
# The Connect plugins the stack must offer: folder under plugins/ -> connector class.
CONNECT_PLUGINS = {
    "debezium-connector-postgres": "io.debezium.connector.postgresql.PostgresConnector",
    "debezium-connector-jdbc": "io.debezium.connector.jdbc.JdbcSinkConnector",
    OPENSEARCH_SINK_PLUGIN: OPENSEARCH_SINK_CONNECTOR,
}
MAVEN_CAUSE = re.compile(
    r"(Could not (?:find|transfer|resolve) artifact \S+|Could not resolve dependencies[^:]*|"
    r"Non-resolvable \S+ POM[^:]*|Unknown host [^\s:]+)"
)


@dataclass(frozen=True)
class Jars:
    """The copied jars of one state folder."""

    root: Path

    @property
    def kafka_classpath(self) -> str:
        return str(self.root / "kafka" / "*")

    @property
    def dynamodb_classpath(self) -> str:
        return f"{self.root / 'dynamodb-launcher'}:{self.root / 'dynamodb' / '*'}"

    @property
    def native_library_dir(self) -> Path:
        """Where sqlite4java finds libsqlite4java-linux-amd64-*.so."""
        return self.root / "dynamodb"

    @property
    def plugin_path(self) -> Path:
        return self.root / "plugins"

    @property
    def opensearch_classpath(self) -> str:
        return str(self.root / "opensearch" / "lib" / "*")

    @property
    def opensearch_modules(self) -> Path:
        return self.root / "opensearch" / "modules"


def _fingerprint() -> str:
    digest = hashlib.sha256()
    java_sources = sorted(path for plugin in PLUGINS for path in plugin.sources.rglob("*.java"))
    for source in (POM, LAUNCHER_SOURCE, *java_sources):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def manifest_problem(root: Path) -> str | None:
    """None when `root` holds exactly what the manifest lists for the current pom, else what is wrong."""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except FileNotFoundError:
        return "no jars fetched yet"
    except ValueError:
        return "the jar manifest is unreadable"
    if manifest.get("fingerprint") != _fingerprint():
        return "the pom or the launcher changed since the last fetch"
    for relative, size in manifest.get("files", {}).items():
        path = root / relative
        if not path.is_file() or path.stat().st_size != size:
            return f"{relative} is missing or changed"
    return None


def _maven_failure(profile: str, log_path: Path, output: str) -> FetchFailed:
    causes = MAVEN_CAUSE.findall(output)
    if causes:
        cause = causes[0]
    else:
        errors = [line for line in output.splitlines() if line.startswith("[ERROR]") and line.strip() != "[ERROR]"]
        cause = errors[0].removeprefix("[ERROR] ") if errors else "Maven failed"
    return FetchFailed(f"could not fetch the {profile} jars: {cause[:300]}; see {log_path}")


def _run_maven(config: StackConfig, profile: str, target: Path, log_path: Path) -> None:
    """Copy one profile's files into `target`: offline first, then from Maven Central."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ToolMissing("Maven (mvn) not found: run scripts/bootstrap (apt-get install maven)")
    command = [mvn, "-B", "-q", "-f", str(POM), "-P", profile, f"-Dcdcflow.jars.dir={target}"]
    if config.maven_repo is not None:
        command.append(f"-Dmaven.repo.local={config.maven_repo}")
    command += MAVEN_RUNS[profile]
    environment = os.environ | {"JAVA_HOME": str(java.java_home())}
    output = ""
    for mode in (["--offline"], []):
        result = subprocess.run(
            command[:1] + mode + command[1:],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=environment,
            check=False,
        )
        output = result.stdout + result.stderr
        with log_path.open("a") as log:
            log.write(f"$ {' '.join(command[:1] + mode + command[1:])}\n{output}\n")
        if result.returncode == 0:
            return
    raise _maven_failure(profile, log_path, output)


def _unpack_plugins(archives: Path, plugin_path: Path) -> None:
    plugin_path.mkdir(parents=True, exist_ok=True)
    for archive in sorted(archives.glob("*.tar.gz")):
        with tarfile.open(archive) as tar:
            tar.extractall(plugin_path, filter="data")
    for folder in CONNECT_PLUGINS:
        if folder == OPENSEARCH_SINK_PLUGIN:
            continue
        if not (plugin_path / folder).is_dir():
            raise FetchFailed(f"the Debezium plugin archives held no {folder}/ folder (archives in {archives})")


def _compile_launcher(target: Path, log_path: Path) -> None:
    classes = target / "dynamodb-launcher"
    classes.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [java.javac(), "-d", str(classes), "-cp", str(target / "dynamodb" / "*"), str(LAUNCHER_SOURCE)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    with log_path.open("a") as log:
        log.write(f"$ javac {LAUNCHER_SOURCE.name}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        raise FetchFailed(f"could not compile {LAUNCHER_SOURCE.name} against DynamoDB Local; see {log_path}")


def _arrange_opensearch(target: Path) -> None:
    """Move the Netty module's jars out of the server's classpath into modules/, with its descriptor.

    OpenSearch refuses a jar that is both on its classpath and in a module (jar hell).
    """
    copied = target / "opensearch"
    lib, module = copied / "lib", copied / "modules" / OPENSEARCH_NETTY_MODULE
    lib.mkdir(parents=True, exist_ok=True)
    module.mkdir(parents=True, exist_ok=True)
    for jar in sorted(copied.glob("*.jar")):
        in_module = jar.name.startswith(("netty-", "transport-netty4-client-"))
        jar.rename((module if in_module else lib) / jar.name)
    version = next(lib.glob("opensearch-[0-9]*.jar")).stem.removeprefix("opensearch-")
    (module / "plugin-descriptor.properties").write_text(
        "description=Netty 4 based transport and HTTP\n"
        f"version={version}\nname={OPENSEARCH_NETTY_MODULE}\nclassname={OPENSEARCH_NETTY_PLUGIN_CLASS}\n"
        f"java.version=11\nopensearch.version={version}\nextended.plugins=\nhas.native.controller=false\n"
    )
    # The grants OpenSearch's own module archive gives Netty under the security manager.
    (module / "plugin-security.policy").write_text(
        "grant {\n"
        '  permission java.lang.RuntimePermission "accessDeclaredMembers";\n'
        '  permission java.lang.reflect.ReflectPermission "suppressAccessChecks";\n'
        '  permission java.lang.RuntimePermission "setContextClassLoader";\n'
        '  permission java.net.SocketPermission "*", "accept,connect";\n'
        "};\n"
    )


@dataclass(frozen=True)
class JavaPlugin:
    """A Connect plugin cdcflow compiles from its own sources: found by Connect through a service manifest."""

    name: str
    sources: Path
    service: str  # the interface Connect's plugin.discovery=service_load looks up
    implementation: str
    # A folder of the fetch's jars that the plugin compiles against and ships beside its own jar.
    libraries: str | None = None


PLUGINS = (
    JavaPlugin(OPENSEARCH_SINK_PLUGIN, OPENSEARCH_SINK_SOURCES, "org.apache.kafka.connect.sink.SinkConnector",
               OPENSEARCH_SINK_CONNECTOR),
    JavaPlugin(SECRETS_PROVIDER_PLUGIN, SECRETS_PROVIDER_SOURCES,
               "org.apache.kafka.common.config.provider.ConfigProvider", SECRETS_PROVIDER_CLASS,
               libraries="secrets-provider"),
    JavaPlugin(EXACT_VALUES_PLUGIN, EXACT_VALUES_SOURCES, "org.apache.kafka.connect.storage.Converter",
               EXACT_VALUES_CONVERTER),
)


def _compile_plugin(plugin: JavaPlugin, target: Path, log_path: Path) -> None:
    """Compile `plugin` against the Kafka jars (and its libraries) into its own folder under plugins/."""
    classes = target / f"{plugin.name}-classes"
    classes.mkdir(parents=True, exist_ok=True)
    classpath = [str(target / "kafka" / "*")]
    if plugin.libraries:
        classpath.append(str(target / plugin.libraries / "*"))
    sources = [str(path) for path in sorted(plugin.sources.rglob("*.java"))]
    result = subprocess.run(
        [java.javac(), "--release", "17", "-d", str(classes), "-cp", os.pathsep.join(classpath), *sources],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    with log_path.open("a") as log:
        log.write(f"$ javac {plugin.sources.name}/\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        raise FetchFailed(f"could not compile {plugin.implementation} ({plugin.sources.name}/); see {log_path}")
    folder = target / "plugins" / plugin.name
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / f"{plugin.name}.jar", "w", zipfile.ZIP_DEFLATED) as jar:
        jar.writestr(f"META-INF/services/{plugin.service}", plugin.implementation + "\n")
        for path in sorted(classes.rglob("*.class")):
            jar.write(path, str(path.relative_to(classes)))
    shutil.rmtree(classes)
    if plugin.libraries:
        for library in sorted((target / plugin.libraries).glob("*.jar")):
            library.rename(folder / library.name)
        (target / plugin.libraries).rmdir()


def fetch(config: StackConfig, progress: Callable[[str], None] = lambda _message: None) -> Jars:
    """Resolve every jar into the state folder, replacing what was there only once all of it succeeded.

    Blocks while Maven downloads (minutes on a cold cache). Raises FetchFailed with the
    artifact or cause and the log path, or ToolMissing for Maven or Java.
    """
    root = config.jars_dir
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = config.log_path("maven")
    log_path.unlink(missing_ok=True)
    try:
        for profile in MAVEN_RUNS:
            progress(f"resolving the {profile} jars with Maven (log: {log_path})")
            _run_maven(config, profile, partial, log_path)
        _unpack_plugins(partial / "plugin-archives", partial / "plugins")
        shutil.rmtree(partial / "plugin-archives")
        _arrange_opensearch(partial)
        _compile_launcher(partial, log_path)
        for plugin in PLUGINS:
            _compile_plugin(plugin, partial, log_path)
        files = {
            str(path.relative_to(partial)): path.stat().st_size for path in sorted(partial.rglob("*")) if path.is_file()
        }
        (partial / MANIFEST).write_text(json.dumps({"fingerprint": _fingerprint(), "files": files}, indent=1))
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    return Jars(root)


def ensure_jars(config: StackConfig, progress: Callable[[str], None] = lambda _message: None) -> Jars:
    """The verified jars, fetched first if the manifest check fails. Idempotent."""
    problem = manifest_problem(config.jars_dir)
    if problem is None:
        return Jars(config.jars_dir)
    progress(f"fetching the service jars: {problem}")
    return fetch(config, progress)
