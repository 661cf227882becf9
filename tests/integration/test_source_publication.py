"""The publication against the local PostgreSQL: exact membership, re-alignment, refusals, dropping."""

import pytest
from psycopg import sql

from lambdas.source.heartbeat import ensure_heartbeat_table
from lambdas.source.publication import (
    PublicationConflict,
    drop_publication,
    ensure_publication,
    publication_tables,
)
from lambdas.source.tables import TablesNotFound, TablesWithoutReplicaIdentity


def _ident(qualified):
    return sql.Identifier(*qualified.split("."))


def _publication_exists(conn, name):
    return conn.execute("SELECT EXISTS (SELECT FROM pg_publication WHERE pubname = %s)", [name]).fetchone()[0]


@pytest.fixture
def spec_with_heartbeat(source_admin, pipeline_spec):
    ensure_heartbeat_table(source_admin, pipeline_spec)
    return pipeline_spec


def test_ensure_publishes_exactly_the_tables_and_the_heartbeat_and_a_second_call_changes_nothing(
    source_admin, spec_with_heartbeat
):
    spec = spec_with_heartbeat
    expected = sorted([*spec.source.tables, spec.names.heartbeat_qualified, spec.names.signal_qualified])

    first = ensure_publication(source_admin, spec)
    second = ensure_publication(source_admin, spec)

    assert first == {"publication": spec.names.publication, "tables": expected, "added": expected, "removed": []}
    assert second == {"publication": spec.names.publication, "tables": expected, "added": [], "removed": []}
    assert publication_tables(source_admin, spec.names.publication) == set(expected)
    actions = source_admin.execute(
        "SELECT pubinsert, pubupdate, pubdelete, pubtruncate, puballtables FROM pg_publication WHERE pubname = %s",
        [spec.names.publication],
    ).fetchone()
    assert actions == (True, True, True, True, False)


def test_a_publication_altered_by_hand_is_realigned_and_the_change_reported(source_admin, spec_with_heartbeat):
    spec = spec_with_heartbeat
    ensure_publication(source_admin, spec)
    dropped = spec.source.tables[0]
    schema = dropped.split(".")[0]
    stray = f"{schema}.stray"
    publication = sql.Identifier(spec.names.publication)
    source_admin.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY)").format(_ident(stray)))
    source_admin.execute(sql.SQL("ALTER PUBLICATION {} DROP TABLE {}").format(publication, _ident(dropped)))
    source_admin.execute(sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(publication, _ident(stray)))
    source_admin.execute(sql.SQL("ALTER PUBLICATION {} SET (publish = 'insert')").format(publication))

    result = ensure_publication(source_admin, spec)

    assert result["added"] == [dropped]
    assert result["removed"] == [stray]
    assert publication_tables(source_admin, spec.names.publication) == set(result["tables"])
    assert stray not in publication_tables(source_admin, spec.names.publication)
    publishes = source_admin.execute(
        "SELECT pubupdate AND pubdelete AND pubtruncate FROM pg_publication WHERE pubname = %s",
        [spec.names.publication],
    ).fetchone()[0]
    assert publishes
    assert ensure_publication(source_admin, spec)["added"] == []


def test_a_whole_schema_added_by_hand_is_reported_and_removed(source_admin, spec_with_heartbeat):
    spec = spec_with_heartbeat
    ensure_publication(source_admin, spec)
    schema = spec.source.tables[0].split(".")[0]
    source_admin.execute(
        sql.SQL("ALTER PUBLICATION {} ADD TABLES IN SCHEMA {}").format(
            sql.Identifier(spec.names.publication), sql.Identifier(schema)
        )
    )

    result = ensure_publication(source_admin, spec)

    assert result["removed"] == [f"{schema}.*"]
    assert publication_tables(source_admin, spec.names.publication) == set(result["tables"])


def test_missing_tables_are_named_and_no_publication_is_created(source_admin, make_source_spec, source_tables):
    spec = make_source_spec([source_tables[0], f"{source_tables[0].split('.')[0]}.absent"])
    ensure_heartbeat_table(source_admin, spec)

    with pytest.raises(TablesNotFound, match=r"\.absent"):
        ensure_publication(source_admin, spec)

    assert not _publication_exists(source_admin, spec.names.publication)


def test_missing_heartbeat_table_is_named(source_admin, pipeline_spec):
    with pytest.raises(TablesNotFound, match=pipeline_spec.names.heartbeat_qualified):
        ensure_publication(source_admin, pipeline_spec)
    assert not _publication_exists(source_admin, pipeline_spec.names.publication)


def test_a_table_without_primary_key_or_identity_is_refused_before_anything_is_created(
    source_admin, make_source_spec, source_tables
):
    schema = source_tables[0].split(".")[0]
    keyless, full = f"{schema}.keyless", f"{schema}.identity_full"
    source_admin.execute(sql.SQL("CREATE TABLE {} (note text)").format(_ident(keyless)))
    source_admin.execute(sql.SQL("CREATE TABLE {} (note text)").format(_ident(full)))
    source_admin.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(_ident(full)))
    spec = make_source_spec([source_tables[0], keyless, full])
    ensure_heartbeat_table(source_admin, spec)

    with pytest.raises(TablesWithoutReplicaIdentity) as raised:
        ensure_publication(source_admin, spec)

    assert keyless in str(raised.value)
    assert full not in str(raised.value)
    assert not _publication_exists(source_admin, spec.names.publication)


def test_a_for_all_tables_publication_of_that_name_is_a_conflict(source_admin, spec_with_heartbeat):
    spec = spec_with_heartbeat
    source_admin.execute(sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(sql.Identifier(spec.names.publication)))

    with pytest.raises(PublicationConflict, match="FOR ALL TABLES"):
        ensure_publication(source_admin, spec)


def test_drop_twice_and_drop_of_what_never_existed_succeed(source_admin, spec_with_heartbeat):
    spec = spec_with_heartbeat
    assert drop_publication(source_admin, spec) is False
    ensure_publication(source_admin, spec)

    assert drop_publication(source_admin, spec) is True
    assert drop_publication(source_admin, spec) is False
    assert not _publication_exists(source_admin, spec.names.publication)
    assert publication_tables(source_admin, spec.names.publication) == set()
