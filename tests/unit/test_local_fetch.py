"""The jar cache: manifest verification and Maven failures reported in one line."""

import json
import os
import stat
from pathlib import Path

import pytest

from cdcflow.local import fetch
from cdcflow.local.config import StackConfig
from cdcflow.local.errors import FetchFailed, ToolMissing

MAVEN_MISSING_ARTIFACT = """\
[ERROR] Failed to execute goal org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy (connect-plugins) \
on project cdcflow-local-stack: Unable to find/resolve artifact. Could not find artifact \
io.debezium:debezium-connector-jdbc:tar.gz:plugin:3.1.3.Final in central (https://repo.maven.apache.org/maven2) -> [Help 1]
[ERROR] 
[ERROR] To see the full stack trace of the errors, re-run Maven with the -e switch.
"""


def write_jars(root: Path) -> None:
    (root / "kafka").mkdir(parents=True)
    (root / "kafka" / "kafka-clients.jar").write_bytes(b"x" * 10)
    (root / "plugins" / "debezium-connector-jdbc").mkdir(parents=True)
    (root / "plugins" / "debezium-connector-jdbc" / "postgresql.jar").write_bytes(b"y" * 5)
    files = {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}
    (root / fetch.MANIFEST).write_text(json.dumps({"fingerprint": fetch._fingerprint(), "files": files}))


def test_a_complete_copy_verifies(tmp_path):
    write_jars(tmp_path)

    assert fetch.manifest_problem(tmp_path) is None


def test_nothing_fetched_yet_is_reported(tmp_path):
    assert fetch.manifest_problem(tmp_path) == "no jars fetched yet"


def test_a_missing_or_truncated_jar_fails_the_check(tmp_path):
    write_jars(tmp_path)
    (tmp_path / "kafka" / "kafka-clients.jar").write_bytes(b"x")
    assert fetch.manifest_problem(tmp_path) == "kafka/kafka-clients.jar is missing or changed"

    write_jars(tmp_path / "again")
    (tmp_path / "again" / "plugins" / "debezium-connector-jdbc" / "postgresql.jar").unlink()
    assert (
        fetch.manifest_problem(tmp_path / "again")
        == "plugins/debezium-connector-jdbc/postgresql.jar is missing or changed"
    )


def test_a_manifest_of_another_pom_fails_the_check(tmp_path):
    write_jars(tmp_path)
    manifest = json.loads((tmp_path / fetch.MANIFEST).read_text())
    (tmp_path / fetch.MANIFEST).write_text(json.dumps(manifest | {"fingerprint": "0" * 64}))

    assert fetch.manifest_problem(tmp_path) == "the pom or the launcher changed since the last fetch"


def test_maven_output_is_reduced_to_the_artifact_it_could_not_find(tmp_path):
    error = fetch._maven_failure("kafka", tmp_path / "maven.log", MAVEN_MISSING_ARTIFACT)

    assert str(error) == (
        "could not fetch the kafka jars: Could not find artifact "
        f"io.debezium:debezium-connector-jdbc:tar.gz:plugin:3.1.3.Final; see {tmp_path / 'maven.log'}"
    )


def test_without_a_known_cause_the_first_maven_error_line_is_shown(tmp_path):
    error = fetch._maven_failure(
        "dynamodb", tmp_path / "m.log", "[INFO] x\n[ERROR] The goal you specified requires a project\n"
    )

    assert "could not fetch the dynamodb jars: The goal you specified requires a project; see" in str(error)


def test_a_failing_maven_leaves_no_partial_copy_and_names_the_log(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_mvn = bin_dir / "mvn"
    fake_mvn.write_text("#!/bin/sh\ncat <<'EOF'\n" + MAVEN_MISSING_ARTIFACT + "EOF\nexit 1\n")
    fake_mvn.chmod(fake_mvn.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config = StackConfig(state_dir=tmp_path / "state")

    with pytest.raises(FetchFailed) as raised:
        fetch.ensure_jars(config)

    assert "Could not find artifact io.debezium:debezium-connector-jdbc" in str(raised.value)
    assert str(config.log_path("maven")) in str(raised.value)
    assert "\n" not in str(raised.value)
    assert not config.jars_dir.exists()
    assert not (config.state_dir / "jars.partial").exists()
    assert "--offline" in config.log_path("maven").read_text()  # the cache was tried before the network


def test_without_maven_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(ToolMissing, match=r"Maven \(mvn\) not found: run scripts/bootstrap"):
        fetch.fetch(StackConfig(state_dir=tmp_path / "state"))


def test_the_pom_names_the_kafka_and_debezium_versions_that_go_together():
    pom = fetch.POM.read_text()

    assert "<kafka.version>3.9.0</kafka.version>" in pom
    assert "<debezium.version>3.1.2.Final</debezium.version>" in pom
    assert pom.count("<classifier>plugin</classifier>") == 2
