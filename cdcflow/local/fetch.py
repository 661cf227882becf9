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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cdcflow.local import java
from cdcflow.local.config import StackConfig
from cdcflow.local.errors import FetchFailed, ToolMissing

POM = Path(__file__).with_name("pom.xml")
LAUNCHER_SOURCE = Path(__file__).with_name("dynamodb_launcher") / "LoopbackDynamoDBLocal.java"
LAUNCHER_CLASS = LAUNCHER_SOURCE.stem
MANIFEST = "manifest.json"

# Each profile of the pom and the executions that copy its files.
MAVEN_RUNS = {
    "kafka": ("dependency:copy-dependencies@kafka-classpath", "dependency:copy@connect-plugins"),
    "dynamodb": ("dependency:copy-dependencies@dynamodb-classpath",),
}
# The Connect plugins the stack must offer: folder under plugins/ -> connector class.
CONNECT_PLUGINS = {
    "debezium-connector-postgres": "io.debezium.connector.postgresql.PostgresConnector",
    "debezium-connector-jdbc": "io.debezium.connector.jdbc.JdbcSinkConnector",
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


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for source in (POM, LAUNCHER_SOURCE):
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
        _compile_launcher(partial, log_path)
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
