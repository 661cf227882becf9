"""The replication slot against the local PostgreSQL: bounded creation, conflicts, and dropping a slot in use."""

import os
import subprocess
import time

import psycopg
import pytest
from psycopg import sql

from lambdas.source.heartbeat import ensure_heartbeat_table
from lambdas.source.publication import ensure_publication
from lambdas.source.slot import (
    PLUGIN,
    SlotBlockedByLongTransaction,
    SlotConflict,
    SlotInfo,
    drop_slot,
    ensure_slot,
    slot_lag_bytes,
)

# Short, as the brief wait of a test; the workflow passes its own.
SLOT_WAIT_SECONDS = 2.0
# Generous bound for a walsender to attach, or WAL to be written, on a shared two-core machine; reaching it fails.
ATTACH_WITHIN_SECONDS = 60
SECRET_NOTE = "row-text-that-must-not-leak"


def _slot_row(conn, name):
    return conn.execute(
        "SELECT plugin, active, active_pid FROM pg_replication_slots WHERE slot_name = %s", [name]
    ).fetchone()


def _connect(stack, autocommit=True):
    postgres = stack.postgres
    return psycopg.connect(
        host=postgres.host, port=postgres.port, dbname=postgres.source_database,
        user=postgres.admin_user, password=postgres.admin_password, autocommit=autocommit,
    )


@pytest.fixture
def published_spec(source_admin, pipeline_spec):
    """A pipeline whose heartbeat table and publication exist, as when the slot step runs."""
    ensure_heartbeat_table(source_admin, pipeline_spec)
    ensure_publication(source_admin, pipeline_spec)
    return pipeline_spec


def test_ensure_creates_a_pgoutput_slot_and_a_second_call_returns_it_unchanged(source_admin, published_spec):
    first = ensure_slot(source_admin, published_spec, SLOT_WAIT_SECONDS)
    second = ensure_slot(source_admin, published_spec, SLOT_WAIT_SECONDS)

    assert isinstance(first, SlotInfo)
    assert first == second
    assert first.name == published_spec.names.replication_slot
    assert first.plugin == PLUGIN
    assert first.restart_lsn and first.confirmed_flush_lsn
    assert first.to_dict()["name"] == first.name
    assert _slot_row(source_admin, first.name) == (PLUGIN, False, None)


def test_a_long_transaction_blocks_creation_which_fails_naming_it_and_succeeds_once_it_ends(
    local_stack, source_admin, published_spec
):
    table = sql.Identifier(*published_spec.source.tables[0].split("."))
    blocker = _connect(local_stack, autocommit=False)
    try:
        blocker.execute(sql.SQL("INSERT INTO {} VALUES (1, %s)").format(table), [SECRET_NOTE])
        blocker_pid = blocker.info.backend_pid

        with pytest.raises(SlotBlockedByLongTransaction) as raised:
            ensure_slot(source_admin, published_spec, SLOT_WAIT_SECONDS)

        message = str(raised.value)
        assert f"pid {blocker_pid} (idle in transaction for " in message
        assert f"within {SLOT_WAIT_SECONDS:g}s" in message
        assert SECRET_NOTE not in message and "INSERT" not in message
        assert _slot_row(source_admin, published_spec.names.replication_slot) is None
    finally:
        blocker.commit()
        blocker.close()

    created = ensure_slot(source_admin, published_spec, SLOT_WAIT_SECONDS)
    assert created.name == published_spec.names.replication_slot


def test_a_same_named_slot_with_another_plugin_is_a_conflict(source_admin, published_spec):
    name = published_spec.names.replication_slot
    source_admin.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", [name])

    with pytest.raises(SlotConflict, match="'test_decoding'"):
        ensure_slot(source_admin, published_spec, SLOT_WAIT_SECONDS)

    assert _slot_row(source_admin, name)[0] == "test_decoding"


def test_drop_twice_and_drop_of_what_never_existed_succeed(source_admin, published_spec):
    assert drop_slot(source_admin, published_spec) is False
    ensure_slot(source_admin, published_spec, SLOT_WAIT_SECONDS)

    assert drop_slot(source_admin, published_spec) is True
    assert drop_slot(source_admin, published_spec) is False
    assert _slot_row(source_admin, published_spec.names.replication_slot) is None


def test_drop_ends_the_walsender_reading_the_slot(local_stack, source_admin, published_spec):
    slot = ensure_slot(source_admin, published_spec, SLOT_WAIT_SECONDS).name
    postgres = local_stack.postgres
    reader = subprocess.Popen(
        [
            "pg_recvlogical", "--host", postgres.host, "--port", str(postgres.port),
            "--username", postgres.admin_user, "--dbname", postgres.source_database,
            "--slot", slot, "--start", "--file", "/dev/null",
            "--option", "proto_version=1", "--option", f"publication_names={published_spec.names.publication}",
        ],
        env={**os.environ, "PGPASSWORD": postgres.admin_password},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + ATTACH_WITHIN_SECONDS
        while not (row := _slot_row(source_admin, slot))[1]:
            assert reader.poll() is None, "pg_recvlogical exited before attaching to the slot"
            assert time.monotonic() < deadline, "pg_recvlogical did not attach to the slot"
            time.sleep(0.2)
        walsender_pid = row[2]

        assert drop_slot(source_admin, published_spec) is True

        assert _slot_row(source_admin, slot) is None
        alive = source_admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [walsender_pid])
        assert alive.fetchone()[0] == 0
        assert drop_slot(source_admin, published_spec) is False
    finally:
        reader.terminate()
        reader.wait(timeout=30)


def test_lag_grows_with_writes_nobody_reads_and_is_none_for_no_slot(source_admin, published_spec):
    name = published_spec.names.replication_slot
    assert slot_lag_bytes(source_admin, name) is None
    ensure_slot(source_admin, published_spec, SLOT_WAIT_SECONDS)
    before = slot_lag_bytes(source_admin, name)
    table = sql.Identifier(*published_spec.source.tables[0].split("."))

    source_admin.execute(
        sql.SQL("INSERT INTO {} SELECT g, repeat('x', 100) FROM generate_series(1, 200) g").format(table)
    )

    # The inserts count once the WAL writer has written them out (synchronous_commit is off locally).
    deadline = time.monotonic() + ATTACH_WITHIN_SECONDS
    while (after := slot_lag_bytes(source_admin, name)) <= before:
        assert time.monotonic() < deadline, f"slot lag stayed at {after} bytes after 200 inserts"
        time.sleep(0.1)
    assert before >= 0
