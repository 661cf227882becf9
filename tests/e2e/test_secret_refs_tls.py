"""An ACTIVE pipeline's connectors hold secret references only, and every database connection is verify-full TLS.

The workflows run on an in-process engine with this process set up as the
stack's functions (`workflow_env`). After the provision neither
Connect's REST API nor any record of its config topic (read from the first
offset with kafka-python) contains the replication or the sink password, the
connectors still deliver a row to the sink, and PostgreSQL reports each of
the pipeline's connections (Debezium's, the JDBC sink's) as TLS. A rotated
replication password reaches the running connector without a config change:
after the restart it replicates with the new password. A provision
whose functions trust another CA fails at Preflight with `SourceTlsRejected`
naming the host, and leaves nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from kafka import KafkaConsumer, TopicPartition

from cdcflow.engine_cli import load_workflows
from cdcflow.local import connect as local_connect
from cdcflow.local.tls import write_foreign_ca
from lambdas import registry
from lambdas.connect.client import ConnectClient
from lambdas.connect.rotation import rotate_replication_password
from lambdas.registry import PipelineStatus
from lambdas.secrets import read_credentials
from lambdas.spec import parse_spec
from localsfn import Engine
from statemachines.catalogue import resolve_local_function
from tests.footprint import footprint

pytestmark = pytest.mark.slow

RUN = uuid.uuid4().hex[:6]
EXECUTION_TIMEOUT_SECONDS = 600
DELIVERY_TIMEOUT_SECONDS = 120
CONFIG_TOPIC = f"{local_connect.GROUP_ID}-configs"


def config_topic_records(bootstrap_servers: str) -> list[tuple[str, str]]:
    """Every record (key, value) of Connect's config topic, from offset 0 to its end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers.split(","), enable_auto_commit=False,
                             consumer_timeout_ms=5000)
    try:
        partitions = [TopicPartition(CONFIG_TOPIC, p) for p in consumer.partitions_for_topic(CONFIG_TOPIC) or ()]
        assert partitions, f"no partitions for {CONFIG_TOPIC}"
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        values: list[tuple[str, str]] = []
        while any(consumer.position(partition) < end[partition] for partition in partitions):
            for records in consumer.poll(timeout_ms=2000).values():
                values += [(record.key.decode(), record.value.decode()) for record in records if record.value]
        return values
    finally:
        consumer.close()


def delivered(sink_dsn: str, table: str, item: str) -> bool:
    deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        with psycopg.connect(sink_dsn, autocommit=True) as conn:
            exists = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0]
            if exists and conn.execute(f"SELECT count(*) FROM {table} WHERE item = %s", (item,)).fetchone()[0]:
                return True
        time.sleep(1)
    return False


def run(engine: Engine, machine_arn: str, document: dict[str, Any], name: str) -> dict[str, Any]:
    arn = engine.start_execution(machine_arn, json.dumps(document), name=name)
    return engine.wait_for_execution(arn, EXECUTION_TIMEOUT_SECONDS)


@pytest.fixture(scope="module")
def active_pipeline(workflow_env, spec_for, tmp_path_factory):
    """A pipeline provisioned to ACTIVE on an in-process engine; torn down on it afterwards, leaving nothing."""
    pipeline_id = f"refs_{RUN}"
    spec = spec_for(pipeline_id)
    engine = Engine(tmp_path_factory.mktemp("refs") / "journal.sqlite", resolve_local_function)
    try:
        machines = load_workflows(engine)
        execution = run(engine, machines["ProvisionPipeline"], {"spec": spec}, pipeline_id)
        assert execution["status"] == "SUCCEEDED", execution.get("cause")
        assert registry.get(pipeline_id).status is PipelineStatus.ACTIVE
        yield workflow_env, parse_spec(spec)
        teardown = run(engine, machines["TeardownPipeline"], {"spec": spec, "keep_topics": False, "keep_index": False},
                       f"teardown-{pipeline_id}")
        assert teardown["status"] == "SUCCEEDED", teardown.get("cause")
    finally:
        engine.close()
    assert footprint(parse_spec(spec)).present() == {}


def test_connector_configs_and_the_config_topic_hold_no_password(active_pipeline):
    stack, spec = active_pipeline
    names = spec.names
    passwords = {
        "replication": read_credentials(names.replication_secret).password,
        "sink": read_credentials(spec.sink.secret).password,
    }
    for connector in (names.source_connector, names.sink_connector):
        config = requests.get(f"{stack.connect.url}/connectors/{connector}/config", timeout=30).json()
        text = json.dumps(config)
        for which, password in passwords.items():
            assert password not in text, f"the {which} password is in {connector}'s config"
        password_values = [value for key, value in config.items() if key.endswith("password")]
        assert password_values and all(value.startswith("${secretsmanager:") for value in password_values)

    records = config_topic_records(stack.kafka.bootstrap_servers)
    # Keys: connector-<name>, task-<name>-<n>, commit-<name>, target-state-<name>.
    ours = [value for key, value in records if key.endswith((names.source_connector, names.sink_connector))
            or f"{names.source_connector}-" in key or f"{names.sink_connector}-" in key]
    assert len(ours) >= 4, f"the config topic holds too few records of the pipeline's connectors: {len(ours)}"
    # Task configs too: Connect writes the references back into them.
    assert any("secretsmanager:" in value and '"database.password"' in value and "task.class" in value
               for value in ours)
    for which, password in passwords.items():
        assert not [value for value in ours if password in value], f"the {which} password is in {CONFIG_TOPIC}"
    # The replication password is the pipeline's own: no record of any connector holds it. (The sink's is the
    # local stack's admin login, which tests that put connectors by hand may have written in plain text.)
    assert not [value for _key, value in records if passwords["replication"] in value]


def test_the_connectors_run_over_verify_full_tls_and_deliver(active_pipeline, captured_table):
    stack, spec = active_pipeline
    names = spec.names
    source = requests.get(f"{stack.connect.url}/connectors/{names.source_connector}/config", timeout=30).json()
    sink = requests.get(f"{stack.connect.url}/connectors/{names.sink_connector}/config", timeout=30).json()
    assert source["database.sslmode"] == "verify-full"
    assert source["database.sslrootcert"] == stack.postgres.ca_file
    assert f"sslmode=verify-full&sslrootcert={stack.postgres.ca_file}" in sink["connection.url"]

    item = f"tls-{RUN}"
    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        conn.execute(f"INSERT INTO {captured_table} (item, qty) VALUES (%s, 1)", (item,))
    sink_table = f"{spec.sink.schema}.{names.sink_table(captured_table)}"
    assert delivered(stack.postgres.sink_dsn(), sink_table, item)

    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        rows = conn.execute(
            """
            SELECT a.usename, a.backend_type, s.ssl
            FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
            WHERE a.usename = %s OR a.application_name LIKE 'PostgreSQL JDBC%%'
            """,
            (names.replication_role,),
        ).fetchall()
    walsenders = [row for row in rows if row[0] == names.replication_role and row[1] == "walsender"]
    assert walsenders, f"no walsender of {names.replication_role}: {rows}"
    assert all(ssl for _user, _type, ssl in rows), rows


def replication_sessions_since(source_dsn: str, role: str, since: Any) -> int:
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND backend_type = 'walsender' "
            "AND backend_start > %s",
            (role, since),
        ).fetchone()[0]


def test_a_rotated_replication_password_reaches_the_connector_through_its_reference(active_pipeline, captured_table):
    stack, spec = active_pipeline
    names = spec.names
    old_password = read_credentials(names.replication_secret).password
    config_before = requests.get(f"{stack.connect.url}/connectors/{names.source_connector}/config", timeout=30).json()
    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        rotated_at = conn.execute("SELECT now()").fetchone()[0]

    with ConnectClient(stack.connect.url) as client:
        result = rotate_replication_password(spec, client)

    new_password = read_credentials(names.replication_secret).password
    assert new_password != old_password
    assert old_password not in json.dumps(result) and new_password not in json.dumps(result)
    config_after = requests.get(f"{stack.connect.url}/connectors/{names.source_connector}/config", timeout=30).json()
    assert config_after == config_before
    # The old password no longer logs in, so a replication session opened after the rotation used the new one.
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host=stack.postgres.host, port=stack.postgres.port, dbname="source",
                        user=names.replication_role, password=old_password, sslmode="require").close()
    deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
    while not replication_sessions_since(stack.postgres.source_dsn(), names.replication_role, rotated_at):
        assert time.monotonic() < deadline, "Debezium did not open a replication session after the rotation"
        time.sleep(1)
    item = f"rotated-{RUN}"
    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        conn.execute(f"INSERT INTO {captured_table} (item, qty) VALUES (%s, 2)", (item,))
    assert delivered(stack.postgres.sink_dsn(), f"{spec.sink.schema}.{names.sink_table(captured_table)}", item)


def test_a_wrong_ca_fails_at_preflight_naming_the_host_and_leaves_nothing(
    workflow_env, spec_for, engine_with, monkeypatch, tmp_path: Path
):
    spec = spec_for(f"tlsca_{RUN}")
    monkeypatch.setenv("CDCFLOW_DATABASE_CA_FILE", str(write_foreign_ca(tmp_path / "other-ca.crt")))

    with engine_with() as (engine, machines):
        execution = run(engine, machines["ProvisionPipeline"], {"spec": spec}, spec["pipeline_id"])

    assert execution["status"] == "FAILED"
    assert execution["error"] == "SourceTlsRejected"
    postgres = workflow_env.postgres
    assert f"{postgres.host}:{postgres.port}" in execution["cause"]
    assert "certificate verify failed" in execution["cause"]

    entry = registry.get(spec["pipeline_id"])
    assert entry.status is PipelineStatus.FAILED
    assert entry.current_step == "Preflight"
    assert "cleanup incomplete" not in entry.last_error["cause"]
    monkeypatch.setenv("CDCFLOW_DATABASE_CA_FILE", postgres.ca_file)
    assert footprint(parse_spec(spec)).present() == {}
