"""lambdas.principals against moto's DynamoDB: the table mapping principals to teams and roles."""

import pytest

from lambdas import principals
from lambdas.principals import Principal, delete_principal, get_principal, list_principals, put_principal

pytestmark = pytest.mark.unit

ROLE = "arn:aws:iam::123456789012:role/orders-ci"


def test_a_principal_is_stored_and_read_back(principals_table):
    stored = put_principal(ROLE, teams=["team-orders"], roles=["requester", "approver"])

    assert stored == Principal(ROLE, frozenset({"team-orders"}), frozenset({"requester", "approver"}))
    assert get_principal(ROLE) == stored
    assert not stored.is_admin


def test_the_arn_is_normalised_on_write_and_on_read(principals_table):
    put_principal("arn:aws:iam::123456789012:role/ci/orders-ci", teams=["team-orders"], roles=["requester"])

    session = get_principal("arn:aws:sts::123456789012:assumed-role/orders-ci/run-1")
    assert session is not None and session.arn == ROLE
    item = principals_table.get_item(TableName=principals.table_name(), Key={"principal": {"S": ROLE}})["Item"]
    assert item["teams"] == {"L": [{"S": "team-orders"}]}


def test_an_admin_needs_no_team(principals_table):
    admin = put_principal("arn:aws:iam::123456789012:user/platform", teams=[], roles=["admin"])

    assert admin.is_admin
    assert get_principal(admin.arn) == admin


def test_putting_again_replaces_the_teams_and_roles(principals_table):
    put_principal(ROLE, teams=["team-orders"], roles=["requester"])
    put_principal(ROLE, teams=["team-payments"], roles=["approver"])

    assert get_principal(ROLE) == Principal(ROLE, frozenset({"team-payments"}), frozenset({"approver"}))


@pytest.mark.parametrize("teams, roles, named", [
    (["team-orders"], ["owner"], "unknown role 'owner'"),
    (["team-orders"], ["requester", "root"], "unknown role 'root'"),
    (["team orders"], ["requester"], "team 'team orders'"),
    ([""], ["requester"], "team ''"),
    ("team-orders", ["requester"], "teams must be a list"),
])
def test_an_invalid_role_or_team_is_refused_and_nothing_is_written(principals_table, teams, roles, named):
    with pytest.raises(ValueError, match=named):
        put_principal(ROLE, teams=teams, roles=roles)

    assert get_principal(ROLE) is None


def test_a_value_that_is_not_an_arn_is_refused(principals_table):
    with pytest.raises(ValueError, match="not an IAM or STS ARN"):
        put_principal("alice", teams=["team-orders"], roles=["requester"])
    assert list_principals() == []


def test_an_unknown_principal_is_none(principals_table):
    assert get_principal("arn:aws:iam::123456789012:user/nobody") is None


def test_listing_pages_through_every_principal_in_arn_order(principals_table, monkeypatch):
    arns = [f"arn:aws:iam::123456789012:user/u{index:02d}" for index in range(7)]
    for arn in reversed(arns):
        put_principal(arn, teams=["team-orders"], roles=["requester"])
    scan = principals_table.scan
    pages = []

    def small_pages(**request):
        pages.append(request)
        return scan(**request, Limit=3)

    from lambdas import aws
    monkeypatch.setattr(aws.client("dynamodb"), "scan", small_pages)

    assert [principal.arn for principal in list_principals()] == arns
    assert len(pages) == 3


def test_deleting_removes_the_principal_and_is_idempotent(principals_table):
    put_principal(ROLE, teams=["team-orders"], roles=["requester"])

    delete_principal("arn:aws:sts::123456789012:assumed-role/orders-ci/any")
    delete_principal(ROLE)

    assert get_principal(ROLE) is None


def test_the_table_name_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("PRINCIPALS_TABLE", raising=False)
    assert principals.table_name() == "cdcflow-principals"
    monkeypatch.setenv("PRINCIPALS_TABLE", "other")
    assert principals.table_name() == "other"
