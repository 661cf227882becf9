"""Which captured tables pre-flight refuses, against the local PostgreSQL: each problem names table, column, type."""

import uuid

import pytest
from psycopg import sql

from lambdas.source.tables import capture_refusals

RUN = uuid.uuid4().hex[:6]


@pytest.fixture
def tables(source_admin):
    schema = f"Refusals {RUN}"
    source_admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    source_admin.execute(sql.SQL("CREATE DOMAIN {} AS circle").format(sql.Identifier(schema, "shape")))
    made = {
        "Fine": "id int PRIMARY KEY, amount numeric(38, 2), tags text[], doc jsonb",
        "Shapes": "id int PRIMARY KEY, spot point, areas polygon[], words tsvector, price money, at timetz",
        "Wide": "id int PRIMARY KEY, total numeric(60, 10), via_domain {schema}.shape",
        "Grids": "id int PRIMARY KEY, row_tags text[], grid int[][], cube numeric[][][]",
        "Binary": "id int PRIMARY KEY, photo bytea, thumbs bytea[]",
        "Binary Full": "id int PRIMARY KEY, photo bytea",
        "No Key": "code text, qty int",
        "Keyed": "code text, qty int",
    }
    for name, columns in made.items():
        source_admin.execute(sql.SQL("CREATE TABLE {} (" + columns.replace("{schema}", "{}") + ")").format(
            sql.Identifier(schema, name), *([sql.Identifier(schema)] if "{schema}" in columns else [])))
    for full in ("Keyed", "Binary Full"):
        source_admin.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(sql.Identifier(schema, full)))
    yield {name: f"{schema}.{name}" for name in made}
    source_admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_a_table_of_representable_types_with_a_primary_key_is_accepted(source_admin, tables):
    assert capture_refusals(source_admin, [tables["Fine"]]) == []


def test_geometric_and_text_search_columns_are_refused_by_name_and_type(source_admin, tables):
    problems = capture_refusals(source_admin, [tables["Shapes"]])
    assert [p.split(" cannot")[0] for p in problems] == [
        f"{tables['Shapes']}: column 'spot' of type point",
        f"{tables['Shapes']}: column 'areas' of type polygon[]",
        f"{tables['Shapes']}: column 'words' of type tsvector",
        f"{tables['Shapes']}: column 'price' of type money",
        f"{tables['Shapes']}: column 'at' of type time with time zone",
    ]


def test_a_refused_type_is_found_under_a_domain_and_wide_numerics_are_accepted(source_admin, tables):
    (problem,) = capture_refusals(source_admin, [tables["Wide"]])
    assert problem.startswith(f"{tables['Wide']}: column 'via_domain' of type \"Refusals {RUN}\".shape cannot")


def test_arrays_declared_with_more_than_one_dimension_are_refused(source_admin, tables):
    problems = capture_refusals(source_admin, [tables["Grids"]])
    assert [p.split(" and cannot")[0] for p in problems] == [
        f"{tables['Grids']}: column 'grid' of type integer[] is declared with 2 dimensions",
        f"{tables['Grids']}: column 'cube' of type numeric[] is declared with 3 dimensions",
    ]
    assert all("jsonb" in p for p in problems)


def test_bytea_columns_need_replica_identity_full(source_admin, tables):
    problems = capture_refusals(source_admin, [tables["Binary"]])
    assert [p.split(" cannot")[0] for p in problems] == [
        f"{tables['Binary']}: column 'photo' of type bytea",
        f"{tables['Binary']}: column 'thumbs' of type bytea[]",
    ]
    assert all(f'ALTER TABLE "Refusals {RUN}"."Binary" REPLICA IDENTITY FULL' in p for p in problems)
    assert capture_refusals(source_admin, [tables["Binary Full"]]) == []


def test_a_table_without_a_primary_key_needs_chosen_key_columns_and_replica_identity_full(source_admin, tables):
    (no_key,) = capture_refusals(source_admin, [tables["No Key"]])
    assert "no primary key" in no_key and "sink.key_columns" in no_key and "REPLICA IDENTITY FULL" in no_key

    (not_full,) = capture_refusals(source_admin, [tables["No Key"]], {tables["No Key"]: ["code"]})
    assert "needs REPLICA IDENTITY FULL" in not_full and f'"Refusals {RUN}"."No Key"' in not_full

    assert capture_refusals(source_admin, [tables["Keyed"]], {tables["Keyed"]: ["code"]}) == []
    (unknown,) = capture_refusals(source_admin, [tables["Keyed"]], {tables["Keyed"]: ["code", "nope"]})
    assert "does not have: nope" in unknown
