"""The replication role against the local PostgreSQL: what it may do, re-keying, dropping, and bad input."""

import dataclasses
import threading

import psycopg
import pytest
from psycopg import sql

from lambdas.errors import AuthenticationFailed
from lambdas.secrets import Credentials
from lambdas.source.connection import connect_as
from lambdas.source.heartbeat import ensure_heartbeat_table, heartbeat_action_query
from lambdas.source.inventory import cdcflow_roles
from lambdas.source.replication_user import drop_replication_user, ensure_replication_user
from lambdas.source.tables import TablesNotFound

PASSWORD = "Repl-Pa55word-first"
NEW_PASSWORD = "Repl-Pa55word-second"


def _role(conn, name):
    return conn.execute(
        "SELECT rolcanlogin, rolreplication, rolsuper FROM pg_roles WHERE rolname = %s", [name]
    ).fetchone()


def _login(spec, password):
    return connect_as(spec.source, Credentials(spec.names.replication_role, password))


def test_ensure_creates_a_login_that_replicates_reads_the_tables_and_beats(source_admin, pipeline_spec):
    ensure_heartbeat_table(source_admin, pipeline_spec)

    result = ensure_replication_user(source_admin, pipeline_spec, PASSWORD, rds=False)

    names = pipeline_spec.names
    assert result == {
        "role": names.replication_role,
        "replication": "REPLICATION",
        "database": pipeline_spec.source.database,
        "schemas": sorted({table.split(".")[0] for table in pipeline_spec.source.tables}),
        "tables": sorted(pipeline_spec.source.tables),
        "heartbeat_table": names.heartbeat_qualified,
    }
    assert _role(source_admin, names.replication_role) == (True, True, False)
    with _login(pipeline_spec, PASSWORD) as conn:
        for table in pipeline_spec.source.tables:
            conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*table.split("."))))
        conn.execute(heartbeat_action_query(pipeline_spec))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(*pipeline_spec.source.tables[0].split("."))))
    beats = source_admin.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE id = 'heartbeat'").format(
            sql.Identifier(*names.heartbeat_qualified.split("."))
        )
    ).fetchone()[0]
    assert beats == 1


def test_ensure_twice_returns_the_same_and_the_password_still_works(source_admin, pipeline_spec):
    first = ensure_replication_user(source_admin, pipeline_spec, PASSWORD, rds=False)
    second = ensure_replication_user(source_admin, pipeline_spec, PASSWORD, rds=False)

    assert second == first
    assert first["heartbeat_table"] is None  # no heartbeat table yet: granted when it is created
    with _login(pipeline_spec, PASSWORD) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == pipeline_spec.names.replication_role


def test_ensure_with_another_password_rekeys_the_role(source_admin, pipeline_spec):
    ensure_replication_user(source_admin, pipeline_spec, PASSWORD, rds=False)

    ensure_replication_user(source_admin, pipeline_spec, NEW_PASSWORD, rds=False)

    with _login(pipeline_spec, NEW_PASSWORD):
        pass
    with pytest.raises(AuthenticationFailed):
        _login(pipeline_spec, PASSWORD)


def test_the_password_is_stored_as_a_scram_verifier_computed_by_the_client(source_admin, pipeline_spec):
    ensure_replication_user(source_admin, pipeline_spec, PASSWORD, rds=False)

    stored = source_admin.execute(
        "SELECT rolpassword FROM pg_authid WHERE rolname = %s", [pipeline_spec.names.replication_role]
    ).fetchone()[0]
    assert stored.startswith("SCRAM-SHA-256$")
    assert PASSWORD not in stored


def test_missing_tables_are_named_and_nothing_is_created(source_admin, make_source_spec, source_tables):
    spec = make_source_spec([source_tables[0], "public.no_such_table", "nowhere.orders"])

    with pytest.raises(TablesNotFound) as raised:
        ensure_replication_user(source_admin, spec, PASSWORD, rds=False)

    assert "nowhere.orders, public.no_such_table" in str(raised.value)
    assert source_tables[0] not in str(raised.value)
    assert _role(source_admin, spec.names.replication_role) is None


def test_on_rds_the_role_gets_rds_replication_instead_of_the_attribute(source_admin, pipeline_spec):
    source_admin.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_replication') "
        "THEN CREATE ROLE rds_replication; END IF; END $$"
    )

    result = ensure_replication_user(source_admin, pipeline_spec, PASSWORD, rds=True)

    role = pipeline_spec.names.replication_role
    assert result["replication"] == "rds_replication"
    assert _role(source_admin, role) == (True, False, False)
    member = source_admin.execute("SELECT pg_has_role(%s, 'rds_replication', 'MEMBER')", [role]).fetchone()[0]
    assert member


def test_drop_removes_role_and_privileges_and_a_second_drop_is_a_no_op(source_admin, pipeline_spec):
    ensure_heartbeat_table(source_admin, pipeline_spec)
    ensure_replication_user(source_admin, pipeline_spec, PASSWORD, rds=False)

    assert drop_replication_user(source_admin, pipeline_spec) is True
    assert drop_replication_user(source_admin, pipeline_spec) is False

    assert _role(source_admin, pipeline_spec.names.replication_role) is None
    assert pipeline_spec.names.replication_role not in cdcflow_roles(source_admin)


def test_drop_of_a_role_that_never_existed_succeeds(source_admin, pipeline_spec):
    assert drop_replication_user(source_admin, pipeline_spec) is False


def test_drop_ends_the_roles_sessions_and_keeps_objects_it_owned(source_admin, pipeline_spec):
    ensure_replication_user(source_admin, pipeline_spec, PASSWORD, rds=False)
    role = pipeline_spec.names.replication_role
    schema = pipeline_spec.source.tables[0].split(".")[0]
    source_admin.execute(sql.SQL("GRANT CREATE ON SCHEMA {} TO {}").format(sql.Identifier(schema), sql.Identifier(role)))
    session = _login(pipeline_spec, PASSWORD)
    session.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(schema, "made_by_role")))

    assert drop_replication_user(source_admin, pipeline_spec) is True

    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")
    session.close()
    owner = source_admin.execute(
        "SELECT tableowner FROM pg_tables WHERE schemaname = %s AND tablename = 'made_by_role'", [schema]
    ).fetchone()
    assert owner == (source_admin.info.user,)


def test_concurrent_ensures_converge_on_one_role(local_stack, pipeline_spec):
    postgres = local_stack.postgres
    admin = Credentials(postgres.admin_user, postgres.admin_password)
    results, errors = [], []

    def ensure():
        try:
            with connect_as(pipeline_spec.source, admin) as conn:
                results.append(ensure_replication_user(conn, pipeline_spec, PASSWORD, rds=False))
        except Exception as exc:  # collected: the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=ensure) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(results) == 4 and all(result == results[0] for result in results)


def test_an_empty_password_is_refused_before_anything_is_created(source_admin, pipeline_spec):
    with pytest.raises(ValueError, match="must not be empty"):
        ensure_replication_user(source_admin, pipeline_spec, "", rds=False)
    assert _role(source_admin, pipeline_spec.names.replication_role) is None


def test_tables_a_former_spec_captured_are_no_longer_readable(source_admin, pipeline_spec):
    kept, dropped = pipeline_spec.source.tables
    ensure_heartbeat_table(source_admin, pipeline_spec)
    ensure_replication_user(source_admin, pipeline_spec, PASSWORD, rds=False)
    narrowed = dataclasses.replace(pipeline_spec, source=dataclasses.replace(pipeline_spec.source, tables=(kept,)))

    ensure_replication_user(source_admin, narrowed, PASSWORD, rds=False)

    role = pipeline_spec.names.replication_role
    heartbeat = pipeline_spec.names.heartbeat_qualified
    readable = {
        table: source_admin.execute("SELECT has_table_privilege(%s, %s, 'SELECT')", [role, table]).fetchone()[0]
        for table in (kept, dropped, heartbeat)
    }
    assert readable == {kept: True, dropped: False, heartbeat: True}
