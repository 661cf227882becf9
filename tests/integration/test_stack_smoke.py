"""The local stack is real: a CDC round trip through it, and `up`'s idempotency and repair."""

import os
import signal
import socket
import stat
import time
import uuid
from pathlib import Path

import boto3
import psycopg
import pytest
import requests

import cdcflow.local
from cdcflow.local import process
from cdcflow.local.config import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY, Ports, StackConfig
from cdcflow.local.errors import PortTaken
from cdcflow.local.smoke import EXPECTED_SINK_ROWS, run_smoke

pytestmark = pytest.mark.slow


def pids() -> dict[str, int | None]:
    return {service.name: service.pid for service in cdcflow.local.status()}


def test_change_events_and_sink_rows_follow_insert_update_delete(local_stack):
    result = run_smoke(local_stack)

    assert [event.op for event in result.events] == ["c", "c", "u", "d"]
    assert [event.after for event in result.events[:3]] == [
        {"id": 1, "item": "apple", "quantity": 3},
        {"id": 2, "item": "pear", "quantity": 5},
        {"id": 1, "item": "apple", "quantity": 4},
    ]
    assert result.events[3].before["id"] == 2 and result.events[3].after is None
    assert result.sink_rows == EXPECTED_SINK_ROWS


def test_smoke_leaves_no_connector_slot_or_publication_behind(local_stack):
    result = run_smoke(local_stack)

    suffix = result.topic.split(".")[0]
    connectors = requests.get(f"{local_stack.connect.url}/connectors", timeout=10).json()
    assert not [name for name in connectors if suffix.replace("_", "-") in name]
    with psycopg.connect(local_stack.postgres.source_dsn()) as conn:
        assert conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (suffix,)).fetchone() is None
        assert conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (suffix,)).fetchone() is None


def test_every_service_is_up_with_cdc_settings(local_stack):
    services = cdcflow.local.status()
    # An optional service (OpenSearch) runs only for the tests that start it; earlier tests may have stopped it.
    optional = {service.name: service.state for service in services if service.optional}
    assert set(optional.values()) <= {"up", "down"}, optional

    assert {service.name: service.state for service in services if not service.optional} == {
        "postgres": "up",
        "kafka": "up",
        "dynamodb": "up",
        "moto": "up",
        "connect": "up",
        "engine": "up",
        "api": "up",
    }
    with psycopg.connect(local_stack.postgres.source_dsn()) as conn:
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('wal_level', 'max_replication_slots', 'max_wal_senders', 'listen_addresses')"
            ).fetchall()
        )
    assert settings == {
        "wal_level": "logical",
        "max_replication_slots": "64",
        "max_wal_senders": "64",
        "listen_addresses": "127.0.0.1",
    }


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state held by `pid`."""
    held = process.socket_inodes(pid)
    return {address for inode, address in process.listening_sockets().items() if inode in held}


def test_every_service_listens_on_loopback_only(local_stack):
    running = [service for service in cdcflow.local.status() if not (service.optional and service.state == "down")]
    assert {"postgres", "kafka", "connect", "dynamodb", "moto", "engine", "api"} <= {s.name for s in running}
    for service in running:
        addresses = listening_addresses(service.pid)
        assert addresses, f"{service.name} listens nowhere"
        assert {address for address, _port in addresses} == {"127.0.0.1"}, (service.name, addresses)
        assert set(service.listeners.values()) <= {port for _address, port in addresses}


def test_the_admin_password_is_kept_private_and_out_of_every_log(local_stack):
    run_smoke(local_stack)  # connectors carry the password in their configs
    config = cdcflow.local.config_from_env()
    password_file = config.state_dir / "secrets" / "postgres-admin-password"

    assert password_file.read_text().strip() == local_stack.postgres.admin_password
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(password_file.parent.stat().st_mode) == 0o700
    for log in config.logs_dir.glob("*.log"):
        assert local_stack.postgres.admin_password not in log.read_text(errors="replace"), log


def test_up_again_starts_nothing_and_keeps_every_pid(local_stack):
    before = pids()

    again = cdcflow.local.up()

    assert again.started == ()
    assert pids() == before
    assert again.endpoints == local_stack


def test_a_killed_connect_shows_as_down_and_up_brings_it_back(local_stack):
    connect_pid = pids()["connect"]
    record = process.read_record(cdcflow.local.config_from_env().run_dir / "connect.pid")
    assert record is not None and record.pid == connect_pid

    os.kill(connect_pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while process.is_running(record) and time.monotonic() < deadline:
        time.sleep(0.1)

    assert {s.name: s.state for s in cdcflow.local.status()}["connect"] == "down"
    restored = cdcflow.local.up()
    assert restored.started == ("connect",)
    after = {s.name: s for s in cdcflow.local.status()}
    assert after["connect"].state == "up" and after["connect"].pid != connect_pid


def test_dynamodb_tables_outlive_a_restart_like_the_rest_of_the_stack(local_stack):
    # The registry must survive `down` and `up` with the slots and connectors it describes.
    dynamodb = boto3.client(
        "dynamodb", endpoint_url=local_stack.dynamodb.url, region_name=local_stack.aws.region,
        aws_access_key_id=DUMMY_ACCESS_KEY_ID, aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY,
    )
    table = f"restart-probe-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    try:
        dynamodb.put_item(TableName=table, Item={"id": {"S": "kept"}})

        cdcflow.local.down(only=["dynamodb"])
        assert {s.name: s.state for s in cdcflow.local.status()}["dynamodb"] == "down"
        assert cdcflow.local.up().started == ("dynamodb",)

        assert dynamodb.get_item(TableName=table, Key={"id": {"S": "kept"}}).get("Item") == {"id": {"S": "kept"}}
    finally:
        dynamodb.delete_table(TableName=table)


def test_a_port_taken_by_another_process_is_named_and_nothing_is_created(tmp_path: Path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        free = [free_port() for _ in range(5)]
        config = StackConfig(
            state_dir=tmp_path / "state",
            ports=Ports(
                postgres=taken, kafka=free[0], kafka_controller=free[1], connect=free[2], dynamodb=free[3], moto=free[4]
            ),
        )

        with pytest.raises(PortTaken) as raised:
            cdcflow.local.up(config)

    assert f"port {taken} needed by postgres" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "state" / "postgres").exists()
    assert not (tmp_path / "state" / "jars").exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
