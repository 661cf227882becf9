"""lambdas.identity: the caller's principal from API Gateway's event, in the form the principals table uses."""

import pytest

from lambdas.identity import Unauthenticated, caller_arn, normalise_principal
from tests.unit.factories import proxy_event

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("arn, principal", [
    ("arn:aws:sts::123456789012:assumed-role/orders-ci/github-run-42",
     "arn:aws:iam::123456789012:role/orders-ci"),
    ("arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0a1b/alice@example.com",
     "arn:aws:iam::123456789012:role/AWSReservedSSO_Admin_0a1b"),
    ("arn:aws:iam::123456789012:role/orders-ci", "arn:aws:iam::123456789012:role/orders-ci"),
    ("arn:aws:iam::123456789012:role/teams/orders/orders-ci", "arn:aws:iam::123456789012:role/orders-ci"),
    ("arn:aws-cn:sts::123456789012:assumed-role/ops/s", "arn:aws-cn:iam::123456789012:role/ops"),
    ("arn:aws:iam::123456789012:user/alice", "arn:aws:iam::123456789012:user/alice"),
    ("arn:aws:iam::123456789012:user/division/alice", "arn:aws:iam::123456789012:user/division/alice"),
    ("arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:root"),
])
def test_sessions_and_paths_normalise_to_the_role_and_users_stay_as_they_are(arn, principal):
    assert normalise_principal(arn) == principal
    assert normalise_principal(principal) == principal


def test_two_sessions_of_one_role_are_one_principal():
    first = normalise_principal("arn:aws:sts::123456789012:assumed-role/approvers/alice")
    second = normalise_principal("arn:aws:sts::123456789012:assumed-role/approvers/bob")
    assert first == second == normalise_principal("arn:aws:iam::123456789012:role/ops/approvers")


@pytest.mark.parametrize("value", [
    "", "alice", "AIDAEXAMPLE", "arn:aws:s3:::bucket", "arn:aws:iam::12345:user/alice",
    "arn:aws:iam::123456789012:", "arn:aws:sts::123456789012:assumed-role/only-role",
    "arn:aws:iam::123456789012:role/", "arn:aws:iam::123456789012:user/al ice", "arn:evil:iam::123456789012:user/a",
    " arn:aws:iam::123456789012:user/alice", None, 42,
])
def test_anything_not_an_iam_or_sts_arn_is_refused_naming_it(value):
    with pytest.raises(ValueError, match="ARN"):
        normalise_principal(value)


def test_the_caller_is_the_events_user_arn_normalised():
    event = proxy_event("GET", "/pipelines", caller="arn:aws:sts::123456789012:assumed-role/orders-ci/run-7")
    assert caller_arn(event) == "arn:aws:iam::123456789012:role/orders-ci"


def test_a_local_users_event_names_the_local_user():
    assert caller_arn(proxy_event("GET", "/pipelines")) == "arn:aws:iam::000000000000:user/cdcflow-admin"


@pytest.mark.parametrize("event", [
    {},
    {"requestContext": {}},
    {"requestContext": {"identity": None}},
    {"requestContext": {"identity": {"sourceIp": "127.0.0.1", "userArn": None}}},
    {"requestContext": {"identity": {"userArn": "anonymous"}}},
    "not an event",
])
def test_an_event_without_an_iam_identity_is_unauthenticated(event):
    with pytest.raises(Unauthenticated, match="identity"):
        caller_arn(event)


def test_a_proxy_event_without_a_caller_is_unauthenticated():
    with pytest.raises(Unauthenticated):
        caller_arn(proxy_event("GET", "/pipelines", caller=None))
