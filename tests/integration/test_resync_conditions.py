"""A resync's WHERE conditions, checked by the local PostgreSQL: counted when valid, refused by name when not,
and never able to change anything while they are checked."""

import uuid

import pytest
from psycopg import sql

from lambdas.resync import ResyncRefused, ResyncRequest, check_conditions

RUN = uuid.uuid4().hex[:6]


@pytest.fixture
def orders(source_admin):
    table = f"public.resync_orders_{RUN}"
    name = sql.Identifier("public", f"resync_orders_{RUN}")
    source_admin.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, qty int NOT NULL, note text)").format(name))
    source_admin.execute(sql.SQL("INSERT INTO {} SELECT n, n % 10, 'row ' || n FROM generate_series(1, 500) n")
                         .format(name))
    source_admin.execute(sql.SQL("CREATE SEQUENCE {}").format(sql.Identifier("public", f"resync_seq_{RUN}")))
    yield table
    source_admin.execute(sql.SQL("DROP TABLE {}").format(name))
    source_admin.execute(sql.SQL("DROP SEQUENCE {}").format(sql.Identifier("public", f"resync_seq_{RUN}")))


def counts(conn, table, condition=None):
    return check_conditions(conn, ResyncRequest((table,), {table: condition} if condition else {}))


def test_a_condition_counts_the_rows_it_matches(source_admin, orders):
    assert counts(source_admin, orders, "qty = 3") == {orders: 50}
    assert counts(source_admin, orders, "qty = 3 OR id <= 5") == {orders: 54}  # id 3 is in both
    assert counts(source_admin, orders) == {orders: 500}


@pytest.mark.parametrize(("condition", "reason"), [
    ("qty >", "syntax error"),
    ("nope = 1", 'column "nope" does not exist'),
    ("qty", "argument of WHERE must be type boolean"),
    ("qty = 'many'", "invalid input syntax for type integer"),
    ("id IN (SELECT id FROM public.no_such_table)", 'relation "public.no_such_table" does not exist'),
])
def test_postgresql_refuses_a_bad_condition_and_names_why(source_admin, orders, condition, reason):
    with pytest.raises(ResyncRefused) as refused:
        counts(source_admin, orders, condition)

    assert refused.value.field == f"where.{orders}"
    assert orders in str(refused.value) and reason in str(refused.value)


def test_a_condition_that_would_write_is_refused_and_writes_nothing(source_admin, orders):
    sequence = f"public.resync_seq_{RUN}"

    with pytest.raises(ResyncRefused, match="read-only transaction"):
        counts(source_admin, orders, f"nextval('{sequence}') > 0")

    # The sequence was never advanced: its first nextval is still 1.
    assert source_admin.execute(sql.SQL("SELECT nextval({})").format(sql.Literal(sequence))).fetchone()[0] == 1
    assert not source_admin.info.transaction_status  # the connection is usable, nothing left open
